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
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from flanlab.core.config import dump_config
from flanlab.core.errors import UserError
from flanlab.core.io import atomic_write_json, atomic_write_text

__all__ = ["RunDir", "check_same_settings", "default_run_name", "setting_differences"]

_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


def default_run_name(prefix: str) -> str:
    """``<prefix>-YYYYmmdd-HHMMSS``, safe as a folder name."""
    return f"{_SAFE.sub('-', prefix).strip('-') or 'run'}-{time.strftime('%Y%m%d-%H%M%S')}"


@dataclass(frozen=True)
class RunDir:
    """A run's folder and the conventional files in it."""

    path: Path

    @classmethod
    def locate(cls, name: str | None, runs_dir: str | Path = "runs", prefix: str = "run") -> RunDir:
        """The run folder ``create`` would open, without creating it (to check inputs first)."""
        if name is not None and ("/" in name or name in {"", ".", ".."}):
            # A path was given: use it as the run folder itself.
            return cls(Path(name))
        return cls(Path(runs_dir) / (name or default_run_name(prefix)))

    @classmethod
    def create(cls, name: str | None, runs_dir: str | Path = "runs", prefix: str = "run") -> RunDir:
        """Open (creating if needed) ``runs_dir/name``; a name is generated when None.

        An explicit ``name`` that already exists is reopened, which is how runs resume.
        """
        run = cls.locate(name, runs_dir, prefix)
        run.path.mkdir(parents=True, exist_ok=True)
        return run

    def recorded_config(self) -> dict[str, Any] | None:
        """The config recorded in ``config.yaml``, or None when the folder has none yet."""
        import yaml

        if not self.config_file.is_file():
            return None
        data = yaml.safe_load(self.config_file.read_text(encoding="utf-8"))
        return data if isinstance(data, dict) else {}

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


def _plain(config: BaseModel | Mapping[str, Any]) -> dict[str, Any]:
    """``config`` as the YAML ``write_config`` records would read back (tuples as lists, ...)."""
    import yaml

    if isinstance(config, BaseModel):
        return yaml.safe_load(dump_config(config)) or {}
    return yaml.safe_load(yaml.safe_dump(dict(config), sort_keys=False, allow_unicode=True)) or {}


def setting_differences(recorded: Mapping[str, Any], current: BaseModel | Mapping[str, Any],
                        ignore: Iterable[str] = ()) -> list[str]:
    """Dotted keys whose values differ between a recorded config and ``current``; keys in
    ``ignore`` (dotted, a key ignores everything under it) are settings that do not change results.
    Keys absent from ``recorded`` (settings added to the schema since) are not compared."""
    skip = tuple(ignore)

    def walk(old: Any, new: Any, prefix: str) -> list[str]:
        key = prefix.rstrip(".")
        if key and any(key == s or key.startswith(s + ".") for s in skip):
            return []
        if isinstance(old, dict) and isinstance(new, dict):
            # A key the record lacks came with a later schema: the record predates that setting.
            return [k for name in sorted(set(old) | set(new), key=str) if name in old
                    for k in walk(old.get(name), new.get(name), f"{prefix}{name}.")]
        return [] if old == new else [key]

    return walk(_plain(recorded), _plain(current), "")


def check_same_settings(run: RunDir, current: BaseModel | Mapping[str, Any], *, ignore: Iterable[str] = (),
                        what: str = "run") -> None:
    """Refuse to resume ``run`` under settings other than the ones its ``config.yaml`` records.

    Called before anything is written, so a refused rerun leaves the folder as it was. Raises a
    one-line :class:`UserError` naming the differing keys with their recorded and new values.
    """
    recorded = run.recorded_config()
    if recorded is None:
        return
    changed = setting_differences(recorded, current, ignore)
    if not changed:
        return
    new = _plain(current)

    def value(tree: Mapping[str, Any], key: str) -> Any:
        for part in key.split("."):
            tree = tree.get(part) if isinstance(tree, Mapping) else None
        return tree

    shown = "; ".join(f"{k}: {value(recorded, k)!r} -> {value(new, k)!r}" for k in changed[:6])
    more = f" (+{len(changed) - 6} more)" if len(changed) > 6 else ""
    article = "an" if what[:1] in "aeiou" else "a"
    raise UserError(f"{run.path}: holds {article} {what} made with other settings ({shown}{more}); pass --no-resume "
                    "to start it over with the new settings, or a new --run-name")
