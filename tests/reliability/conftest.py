"""Helpers for the reliability tests: run the real CLI in a subprocess, have it freeze itself at a
deterministic point of progress, SIGKILL it there; tiny benchmark data of our own."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]


def cli_env(**extra: str) -> dict[str, str]:
    """The environment of a CLI subprocess: offline, no progress bars, the repo importable."""
    # COLUMNS: rich wraps log lines at 80 columns when not on a terminal; tests read them back whole.
    env = {**os.environ, "FLANLAB_PROGRESS": "0", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1", "COLUMNS": "400"}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO / "src"), str(REPO), env.get("PYTHONPATH")) if p)
    env.update(extra)
    return env


def start(args: Sequence[str], log: Path, env: dict[str, str] | None = None,
          stop_at: dict[str, Any] | None = None) -> subprocess.Popen:
    """``python -m flanlab ARGS`` in the background, output to ``log``. With ``stop_at`` (a spec of
    ``tests/reliability/stop_at.py``) the process freezes itself once that holds on disk: wait for
    it with ``wait_stopped``, then ``sigkill`` it at that exact point."""
    out = open(log, "wb")  # noqa: SIM115 (closed by the caller through proc.wait)
    prefix = ["-m", "flanlab"] if stop_at is None else ["-m", "tests.reliability.stop_at", json.dumps(stop_at)]
    return subprocess.Popen([sys.executable, *prefix, *args], stdout=out, stderr=subprocess.STDOUT,
                            env=env or cli_env(), cwd=REPO)


def wait_stopped(proc: subprocess.Popen, what: str, timeout: float = 240) -> None:
    """Wait until a ``start(..., stop_at=...)`` process has frozen itself (state T)."""

    def stopped() -> bool:
        try:
            stat = Path(f"/proc/{proc.pid}/stat").read_text()
        except FileNotFoundError:
            return False
        return stat[stat.rindex(")") + 2] in "Tt"

    wait_for(proc, stopped, what, timeout)


def run(args: Sequence[str], env: dict[str, str] | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """``python -m flanlab ARGS`` to completion; stdout and stderr captured as text."""
    return subprocess.run([sys.executable, "-m", "flanlab", *args], capture_output=True, text=True,
                          env=env or cli_env(), cwd=REPO, timeout=timeout)


def wait_for(proc: subprocess.Popen, ready: Callable[[], bool], what: str, timeout: float = 240) -> None:
    """Poll ``ready`` every 20 ms until it holds; fail if the process exits first or time runs out
    (a guard against hangs, not a timing assertion)."""
    end = time.monotonic() + timeout
    while not ready():
        if proc.poll() is not None:
            raise AssertionError(f"process exited ({proc.returncode}) before {what}")
        if time.monotonic() > end:
            proc.kill()
            raise AssertionError(f"no {what} within {timeout}s")
        time.sleep(0.02)


def serve_url(proc: subprocess.Popen, log: Path, timeout: float = 240) -> str:
    """The ``http://127.0.0.1:PORT/v1`` a ``flanlab serve --port 0`` child logged once bound. Port 0
    lets the kernel pick a free port at bind time: probing for a free port first and passing it
    would race with anything else binding in between."""
    found: list[str] = []

    def bound() -> bool:
        m = re.search(r"http://127\.0\.0\.1:(\d+)/v1", log.read_text(errors="replace") if log.exists() else "")
        found[:] = [m.group(0)] if m and m.group(1) != "0" else []
        return bool(found)

    wait_for(proc, bound, "the 'serving ... at http://127.0.0.1:PORT/v1' line", timeout)
    return found[0]


def sigkill(proc: subprocess.Popen) -> None:
    """SIGKILL the process (no cleanup handlers run) and reap it."""
    os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait(timeout=60) == -signal.SIGKILL


def count_lines(path: Path) -> int:
    """Complete lines in ``path`` (0 when absent)."""
    try:
        return path.read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


@pytest.fixture
def mmlu_data(tmp_path: Path) -> Path:
    """An MMLU-layout data dir: one subject, 5 dev shots, 160 test questions (made up)."""
    root = tmp_path / "data"
    (root / "mmlu" / "dev").mkdir(parents=True)
    (root / "mmlu" / "test").mkdir(parents=True)
    dev = "".join(f"What is {i} plus {i}?,{2 * i},{2 * i + 1},{i},{i + 3},A\n" for i in range(5))
    (root / "mmlu" / "dev" / "arithmetic_dev.csv").write_text(dev, encoding="utf-8")
    letters = "ABCD"
    test = "".join(f"Which number is {i} times 3?,{3 * i - 1},{3 * i},{3 * i + 2},{i},{letters[i % 4]}\n"
                   for i in range(160))
    (root / "mmlu" / "test" / "arithmetic_test.csv").write_text(test, encoding="utf-8")
    return root
