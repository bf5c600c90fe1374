"""The mixture's view of the task catalog (:mod:`flanlab.tasks`): expand names and globs, count
and render a task's examples in one format, and each task's default submixture."""

from __future__ import annotations

import fnmatch
from collections.abc import Iterator
from dataclasses import dataclass

from flanlab.core.errors import UserError
from flanlab.core.log import get_logger
from flanlab.mixture.rates import flan2022
from flanlab.mixture.sources import Rendered

__all__ = ["TaskInfo", "count_task", "expand", "iter_task"]

log = get_logger("mixture.catalog")


@dataclass(frozen=True)
class TaskInfo:
    name: str
    submixture: str
    category: str
    formats: tuple[str, ...]
    tags: tuple[str, ...]  # held-out tags as ``heldout:<benchmark>``, then the task's own tags


def _catalog(data_dir: str | None):
    from flanlab.tasks.catalog import catalog

    return catalog(data_dir)


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


def _usable(task, split: str) -> str | None:
    """Why a task matched by a glob cannot be used (no data here, no such split), or None."""
    if split not in task.splits():
        return f"no split {split!r}"
    try:
        next(iter(task.records(split)))
    except (UserError, OSError) as e:
        return str(e).splitlines()[0]
    return None


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
        why = _usable(task, split)
        if why:
            skipped.append(f"{name} ({why})")
            continue
        infos.append(info)
    if skipped:
        log.info("%s: %r skips %d task(s): %s", where, pattern, len(skipped), "; ".join(skipped))
    if not infos:
        raise UserError(f"{where}.task: pattern {pattern!r} matches no usable task"
                        + (f" (skipped: {'; '.join(skipped[:5])})" if skipped else ""))
    return infos


def count_task(name: str, split: str, data_dir: str | None = None) -> int:
    """Examples in a task's split, counted by streaming its records."""
    task = _catalog(data_dir).get(name)
    return sum(1 for _ in task.records(split))


def iter_task(name: str, fmt: str, split: str, seed: int, data_dir: str | None = None) -> Iterator[Rendered]:
    """A task's split rendered in ``fmt`` (templates and exemplars picked by ``seed``)."""
    from flanlab.tasks.task import render

    task = _catalog(data_dir).get(name)
    for r in render(task, fmt, split=split, seed=seed):
        yield Rendered(r.inputs, r.targets, r.template_id)
