"""Logging and progress bars (rich), with secrets kept out of every log line."""

from __future__ import annotations

import logging
import os
import re
import sys
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TypeVar

from rich.console import Console
from rich.logging import RichHandler
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

__all__ = ["console", "get_logger", "progress", "redact", "register_secret", "setup_logging", "track"]

T = TypeVar("T")
console = Console(stderr=True)
_SECRET_ENV = re.compile(r"(API_KEY|TOKEN|SECRET|PASSWORD)", re.IGNORECASE)
_BEARER = re.compile(r"(Bearer\s+)[A-Za-z0-9._\-]{8,}")


_REGISTERED: set[str] = set()


def register_secret(value: str) -> None:
    """Redact ``value`` from every log line from now on (for secrets read from variables whose
    names do not look secret, e.g. an API key in ``$MY_ENDPOINT_CRED``)."""
    if value and len(value) >= 6:
        _REGISTERED.add(value)


def _secrets() -> list[str]:
    found = {v for k, v in os.environ.items() if _SECRET_ENV.search(k) and v and len(v) >= 6}
    return sorted(found | _REGISTERED, key=len, reverse=True)


def redact(text: str) -> str:
    """Replace the values of secret-looking environment variables and bearer tokens with ``***``."""
    for secret in _secrets():
        text = text.replace(secret, "***")
    return _BEARER.sub(r"\1***", text)


class _RedactFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact(record.getMessage())
        record.args = None
        return True


def get_logger(name: str) -> logging.Logger:
    """A logger under the ``flanlab`` namespace."""
    return logging.getLogger(name if name.startswith("flanlab") else f"flanlab.{name}")


def setup_logging(verbose: bool = False, log_file: str | Path | None = None) -> None:
    """Rich logging to stderr, plus a plain log file in the run folder when given; secrets redacted."""
    root = logging.getLogger("flanlab")
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    for handler in list(root.handlers):
        root.removeHandler(handler)
        handler.close()
    handler: logging.Handler = RichHandler(console=console, show_path=False, rich_tracebacks=False)
    handler.addFilter(_RedactFilter())
    root.addHandler(handler)
    if log_file is not None:
        from flanlab.core.io import _explain

        try:
            Path(log_file).parent.mkdir(parents=True, exist_ok=True)
            fh = logging.FileHandler(log_file, encoding="utf-8")
        except OSError as e:  # a read-only or full run folder: one clear message, not a traceback
            raise _explain(Path(log_file), e) from None
        fh.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        fh.addFilter(_RedactFilter())
        root.addHandler(fh)
    root.propagate = False


HEARTBEAT_S = 30.0


class _Progress(Progress):
    """rich's Progress, plus, when stderr is not a terminal (a log file, CI, ``nohup``), one plain
    log line per task at least every ``heartbeat_s`` seconds (description — where callers put step,
    loss and tokens/s —, count, elapsed and ETA): rich draws nothing live there."""

    def __init__(self, *columns, heartbeat_s: float | None, **kwargs) -> None:
        super().__init__(*columns, **kwargs)
        self._heartbeat_s = heartbeat_s
        self._stop_beat = threading.Event()
        self._beat: threading.Thread | None = None

    def start(self) -> None:
        super().start()
        if self._heartbeat_s and self._beat is None:
            self._beat = threading.Thread(target=self._beats, name="flanlab-progress", daemon=True)
            self._beat.start()

    def stop(self) -> None:
        if self._beat is not None:
            self._stop_beat.set()
            self._beat.join(timeout=5)
            self._beat = None
            self.heartbeat()  # the final state, once
        super().stop()

    def _beats(self) -> None:
        while not self._stop_beat.wait(self._heartbeat_s):
            self.heartbeat()

    def heartbeat(self) -> None:
        """Log one line per unfinished (or just finished) task."""
        log = get_logger("progress")
        for task in self.tasks:
            if task.total is None:
                log.info("%s: %d done, %s elapsed", task.description, task.completed, _hms(task.elapsed))
                continue
            remaining = task.time_remaining
            log.info("%s: %d/%d (%.0f%%), %s elapsed, eta %s", task.description, task.completed, task.total,
                     task.percentage, _hms(task.elapsed),
                     "done" if task.finished else _hms(remaining))


def _hms(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    s = int(seconds)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def progress(transient: bool = False) -> Progress:
    """A rich progress display with count, bar, elapsed time and ETA (quiet when not a terminal
    and FLANLAB_PROGRESS=0). Without a terminal it also logs a line per task every 30 s
    (``FLANLAB_PROGRESS_EVERY`` seconds), so a log shows a long stage moving."""
    disable = os.environ.get("FLANLAB_PROGRESS", "1") == "0"
    heartbeat = None
    if not console.is_terminal and not disable:
        heartbeat = float(os.environ.get("FLANLAB_PROGRESS_EVERY", HEARTBEAT_S))
    return _Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        console=console,
        transient=transient,
        disable=disable,
        heartbeat_s=heartbeat,
        # ETA from the last 10 minutes, not rich's 30 s: a CPU training step can take longer than that.
        speed_estimate_period=600.0,
    )


def track(items: Iterable[T], description: str, total: int | None = None) -> Iterator[T]:
    """Iterate with a progress bar."""
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    with progress() as p:
        task = p.add_task(description, total=total)
        for item in items:
            yield item
            p.advance(task)
    sys.stderr.flush()
