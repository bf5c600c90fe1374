"""Run folders: one folder per run holding its resolved config, log and results.

Layout (``runs/<name>/`` by default)::

    config.yaml      the resolved config, written when the run starts
    log.txt          the run's log
    results.json     machine-readable results (written atomically)
    ...              stage outputs (JSONL, markdown tables, plots)
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from flanlab.core.config import dump_config
from flanlab.core.io import atomic_write_json, atomic_write_text

__all__ = ["RunDir", "default_run_name"]

_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


def default_run_name(prefix: str) -> str:
    """``<prefix>-YYYYmmdd-HHMMSS``, safe as a folder name."""
    return f"{_SAFE.sub('-', prefix).strip('-') or 'run'}-{time.strftime('%Y%m%d-%H%M%S')}"


@dataclass(frozen=True)
class RunDir:
    """A run's folder and the conventional files in it."""

    path: Path

    @classmethod
    def create(cls, name: str | None, runs_dir: str | Path = "runs", prefix: str = "run") -> RunDir:
        """Open (creating if needed) ``runs_dir/name``; a name is generated when None.

        An explicit ``name`` that already exists is reopened, which is how runs resume.
        """
        if name is not None and ("/" in name or name in {"", ".", ".."}):
            # A path was given: use it as the run folder itself.
            path = Path(name)
        else:
            path = Path(runs_dir) / (name or default_run_name(prefix))
        path.mkdir(parents=True, exist_ok=True)
        return cls(path)

    @property
    def config_file(self) -> Path:
        return self.path / "config.yaml"

    @property
    def log_file(self) -> Path:
        return self.path / "log.txt"

    @property
    def results_file(self) -> Path:
        return self.path / "results.json"

    def file(self, *parts: str) -> Path:
        """A path inside the run folder (parents created)."""
        p = self.path.joinpath(*parts)
        p.parent.mkdir(parents=True, exist_ok=True)
        return p

    def write_config(self, config: BaseModel | dict[str, Any], name: str = "config.yaml") -> Path:
        """Record the resolved config (atomically)."""
        import yaml

        text = dump_config(config) if isinstance(config, BaseModel) else yaml.safe_dump(
            config, sort_keys=False, allow_unicode=True)
        target = self.path / name
        atomic_write_text(target, text)
        return target

    def write_results(self, results: dict[str, Any], name: str = "results.json") -> Path:
        """Write machine-readable results (atomically)."""
        target = self.path / name
        atomic_write_json(target, results)
        return target

    def read_results(self, name: str = "results.json") -> dict[str, Any] | None:
        """The results written earlier, or None."""
        target = self.path / name
        if not target.exists():
            return None
        return json.loads(target.read_text(encoding="utf-8"))
