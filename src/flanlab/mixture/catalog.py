"""The mixture's view of the task catalog (:mod:`flanlab.tasks`): expand names and globs, count
and render a task's examples in one format, and each task's default submixture.

Two things here keep large mixtures fast and bounded in memory:

- BIG-bench task files are read from a one-time unpacked copy of the sdist's ``task.json`` files
  (``cache_dir("bigbench-1.0.0-tasks")``): seeking inside the 358 MB ``.tar.gz`` decompresses
  everything before the member, for every task.
- Every stream gets a fresh task object (dropped when the stream ends, with its loaded examples),
  and only the examples a stream selected go through preprocessing and rendering.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import os
import shutil
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flanlab.core.errors import UserError
from flanlab.core.log import get_logger
from flanlab.core.paths import cache_dir
from flanlab.mixture.rates import flan2022
from flanlab.mixture.sources import Rendered

__all__ = ["TaskInfo", "count_task", "expand", "iter_task", "unpacked_bigbench"]

log = get_logger("mixture.catalog")
_UNPACKED = "bigbench-1.0.0-tasks"
_MARKER = "/benchmark_tasks/"


@dataclass(frozen=True)
class TaskInfo:
    name: str
    submixture: str
    category: str
    formats: tuple[str, ...]
    tags: tuple[str, ...]  # held-out tags as ``heldout:<benchmark>``, then the task's own tags
    size: int | None = None  # examples in the split, when already counted


# ---------------------------------------------------------------- BIG-bench, unpacked once


def unpacked_bigbench(sdist: Path) -> Path:
    """A folder of ``PATH/task.json`` files extracted from the sdist in one streaming pass (cached;
    extracted into a temporary folder and renamed, so a half-done extraction is never used)."""
    root = cache_dir(_UNPACKED)
    done = root / ".complete"
    stamp = f"{sdist.stat().st_size}:{sdist.stat().st_mtime_ns}"
    if done.is_file() and done.read_text() == stamp:
        return root / "tasks"
    log.info("unpacking BIG-bench task.json files from %s into %s (once)", sdist, root)
    tmp = root / f".tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    with tarfile.open(sdist, "r:gz") as tf:
        for member in tf:
            if not (member.isfile() and member.name.endswith("/task.json") and _MARKER in member.name):
                continue
            rel = member.name.split(_MARKER, 1)[1]
            src = tf.extractfile(member)
            if src is None or ".." in Path(rel).parts:
                continue
            target = tmp / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            with open(target, "wb") as f:
                shutil.copyfileobj(src, f)
    shutil.rmtree(root / "tasks", ignore_errors=True)
    tmp.rename(root / "tasks")
    done.write_text(stamp)
    return root / "tasks"


def _bigbench_store(fetch: bool):
    from flanlab.tasks.bigbench import BigBenchTarball, fetch_sdist
    from flanlab.tasks.sources import SourceError

    sdist = fetch_sdist(download=fetch)
    if sdist is None:
        return None
    folder = unpacked_bigbench(sdist)

    class Unpacked(BigBenchTarball):
        """The sdist's cached index, with task files read from the unpacked copy."""

        def load(self, path: str) -> dict[str, Any]:
            from flanlab.tasks.bigbench import _parse  # noqa: PLC2701 - the tasks stage's own parser

            file = folder / path / "task.json"
            if not file.is_file():
                raise SourceError(f"{folder}: no BIG-bench JSON task {path!r}")
            return _parse(file.read_bytes(), str(file))

    return Unpacked(sdist)


class _Catalog:
    """Task names → factories making a fresh task object each time."""

    def __init__(self, data_dir: str | None, fetch: bool = True) -> None:
        from flanlab.tasks.bigbench import task_name
        from flanlab.tasks.catalog import build_catalog

        self.shipped = build_catalog(data_dir, bigbench=False)
        self.store = _bigbench_store(fetch)
        self.bigbench = {task_name(p): info for p, info in self.store.index().items()} if self.store else {}

    def names(self) -> list[str]:
        return sorted({*self.shipped.names(), *self.bigbench})

    def get(self, name: str):
        if name in self.bigbench:
            from flanlab.tasks.bigbench import make_task

            return make_task(self.bigbench[name], self.store)
        task = self.shipped.get(name)  # a miss names close matches
        return dataclasses.replace(task, _pool={})  # fresh caches: dropped with the stream


_CATALOGS: dict[str | None, _Catalog] = {}


def _catalog(data_dir: str | None) -> _Catalog:
    if data_dir not in _CATALOGS:
        _CATALOGS[data_dir] = _Catalog(data_dir)
    return _CATALOGS[data_dir]


# ---------------------------------------------------------------- metadata and expansion


def default_submixture(task) -> str:
    kinds = flan2022().source_kinds
    if task.source_kind in kinds:
        return kinds[task.source_kind]
    if task.task_type == "cot":
        return "cot"
    return task.source_kind or "custom"


def _info(task, split: str) -> TaskInfo:
    heldout = [f"heldout:{t}" for t in task.heldout]
    if split in task.heldout_splits:
        heldout.append(f"heldout:{task.heldout_splits[split]}")
    return TaskInfo(task.name, default_submixture(task), task.category, tuple(task.formats()),
                    (*heldout, *task.tags))


def _count(task, split: str) -> int | str:
    """Examples in the split, or why a task matched by a glob cannot be used (no data here, no
    such split, empty)."""
    if split not in task.splits():
        return f"no split {split!r}"
    try:
        n = sum(1 for _ in task.source.records(split))
    except (UserError, OSError) as e:
        return str(e).splitlines()[0]
    return n if n else f"split {split!r} is empty"


def expand(pattern: str, exclude: list[str], where: str, split: str = "train",
           data_dir: str | None = None, allow: frozenset[str] = frozenset()) -> list[TaskInfo]:
    """The tasks a member names. A plain name must exist (and is refused later if held out);
    a glob skips, with a log line, tasks that are held out (unless allowed by name), excluded, or
    have no data for ``split`` here."""
    reg = _catalog(data_dir)
    if not any(c in pattern for c in "*?["):
        try:
            task = reg.get(pattern)
        except KeyError as e:
            raise UserError(f"{where}.task: {e}") from None
        return [_info(task, split)]
    infos, skipped = [], []
    for name in reg.names():
        if not fnmatch.fnmatchcase(name, pattern) or any(fnmatch.fnmatchcase(name, x) for x in exclude):
            continue
        task = reg.get(name)
        info = _info(task, split)
        if any(t.startswith("heldout:") for t in info.tags) and name not in allow:
            skipped.append(f"{name} (held out: {', '.join(t for t in info.tags if t.startswith('heldout:'))})")
            continue
        size = _count(task, split)
        if isinstance(size, str):
            skipped.append(f"{name} ({size})")
            continue
        infos.append(dataclasses.replace(info, size=size))
    if skipped:
        log.info("%s: %r skips %d task(s): %s", where, pattern, len(skipped), "; ".join(skipped))
    if not infos:
        raise UserError(f"{where}.task: pattern {pattern!r} matches no usable task"
                        + (f" (skipped: {'; '.join(skipped[:5])})" if skipped else ""))
    return infos


# ---------------------------------------------------------------- counting and rendering


def count_task(name: str, split: str, data_dir: str | None = None) -> int:
    """Examples in a task's split, counted by streaming its raw records."""
    task = _catalog(data_dir).get(name)
    return sum(1 for _ in task.source.records(split))


class _Selected:
    """A view of a source whose ``split`` yields only the records at the chosen indices, so that
    unselected examples are never preprocessed or rendered."""

    def __init__(self, source, split: str, keep: bytearray) -> None:
        self.source, self.split, self.keep = source, split, keep
        self.name = source.name

    def splits(self) -> list[str]:
        return self.source.splits()

    def records(self, split: str):
        if split != self.split:
            yield from self.source.records(split)
            return
        keep = self.keep
        for i, record in enumerate(self.source.records(split)):
            if i < len(keep) and keep[i]:
                yield record


def iter_task(name: str, fmt: str, split: str, seed: int, data_dir: str | None = None,
              keep: bytearray | None = None) -> Iterator[Rendered]:
    """A task's split rendered in ``fmt`` (templates and exemplars picked by ``seed``); with
    ``keep``, only the examples whose index is marked."""
    from flanlab.tasks.formats import is_fewshot
    from flanlab.tasks.task import render

    task = _catalog(data_dir).get(name)
    if keep is not None:
        # Few-shot exemplars still come from the whole training split: build the pool first.
        pool = {"pool": task.exemplar_pool()} if is_fewshot(fmt) else {}
        task = dataclasses.replace(task, source=_Selected(task.source, split, keep), _pool=pool)
    for r in render(task, fmt, split=split, seed=seed):
        yield Rendered(r.inputs, r.targets, r.template_id)
