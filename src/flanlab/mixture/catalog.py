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
import functools
import hashlib
import json
import os
import shutil
import sys
import tarfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flanlab.core.errors import UserError
from flanlab.core.io import atomic_write_json
from flanlab.core.log import get_logger, track
from flanlab.core.paths import cache_dir
from flanlab.mixture.rates import flan2022
from flanlab.mixture.sources import Rendered

__all__ = ["TaskInfo", "count_task", "expand", "iter_task", "unpacked_bigbench"]

log = get_logger("mixture.catalog")
_UNPACKED = "bigbench-1.0.0-tasks"
_KEPT_MAX = 4096  # BIG-bench rows a task keeps once read ...
_KEPT_BYTES = 4 << 20  # ... and the memory of their texts (4,096 paragraphs would hold ~100 MB; see docs/mixture_scale.md)
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
    unpacked = unpacked_bigbench(sdist)

    class Unpacked(BigBenchTarball):
        """The sdist's cached index, with task files read from the unpacked copy."""

        folder = unpacked

        def load(self, path: str) -> dict[str, Any]:
            file = unpacked / path / "task.json"
            if not file.is_file():
                raise SourceError(f"{unpacked}: no BIG-bench JSON task {path!r}")
            try:
                data = json.loads(file.read_bytes())
            except (UnicodeDecodeError, json.JSONDecodeError) as e:
                raise SourceError(f"{file}: not a JSON task file ({e})") from None
            if not isinstance(data, dict):
                raise SourceError(f"{file}: expected a JSON object with 'examples'")
            return data

    return Unpacked(sdist)


class _Catalog:
    """Task names → factories making a fresh task object each time."""

    def __init__(self, data_dir: Path | None, fetch: bool = True, flan_repo: str | None = None) -> None:
        from flanlab.tasks.bigbench import task_name

        self.data_dir, self.flan_repo = data_dir, flan_repo
        self._shipped: Any = None
        self._catalog_file: dict[str, Any] | None = None
        self.store = _bigbench_store(fetch)
        self.folder: Path | None = getattr(self.store, "folder", None)
        self.bigbench = {task_name(p): info for p, info in self.store.index().items()} if self.store else {}

    @property
    def shipped(self):
        """Every task but BIG-bench's (the Flan collection's families are parsed here: ~0.6 CPU-s,
        so a render worker builds it only when it renders such a task)."""
        if self._shipped is None:
            from flanlab.tasks.catalog import build_catalog

            self._shipped = build_catalog(self.data_dir, bigbench=False, flan_repo=self.flan_repo)
        return self._shipped

    def _from_catalog_file(self, name: str):
        """A task of flanlab's own catalog file (Flan CoT, GSM8K ...) without the rest of the collection:
        the same task ``shipped`` has (without a FLAN checkout, which changes the CoT tasks), or None."""
        if self.flan_repo is not None or self._shipped is not None:
            return None
        if self._catalog_file is None:
            from flanlab.tasks.catalog import _root, _shipped

            self._catalog_file = {t.name: t for t in _shipped(_root(self.data_dir))}
        return self._catalog_file.get(name)

    def names(self) -> list[str]:
        return sorted({*self.shipped.names(), *self.bigbench})

    def get(self, name: str):
        if name in self.bigbench:
            from flanlab.tasks.bigbench import make_task

            return make_task(self.bigbench[name], self.store)
        task = self._from_catalog_file(name) or self.shipped.get(name)  # a miss names close matches
        return dataclasses.replace(task, _pool={})  # fresh caches: dropped with the stream


_CATALOGS: dict[tuple[str | None, str | None], _Catalog] = {}


def _catalog(data_dir: Path | None, flan_repo: str | None = None) -> _Catalog:
    """The catalog of a data dir and FLAN checkout (None: flanlab's own templates), built once."""
    key = (data_dir, flan_repo)
    if key not in _CATALOGS:
        _CATALOGS[key] = _Catalog(data_dir, flan_repo=flan_repo)
    return _CATALOGS[key]


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
        # BIG-bench sources count from their record file's header (written on first use).
        counter = getattr(task.source, "count", None)
        n = counter(split) if counter is not None else sum(1 for _ in task.source.records(split))
    except (UserError, OSError) as e:
        return str(e).splitlines()[0]
    return n if n else f"split {split!r} is empty"


@functools.cache
def _code_stamp() -> str:
    """A digest of what decides BIG-bench splits (the tasks stage's converter and its config)."""
    from importlib import resources

    h = hashlib.sha256()
    for part in ("bigbench.py", "data/bigbench.yaml"):
        h.update(resources.files("flanlab.tasks").joinpath(part).read_bytes())
    return h.hexdigest()[:16]


def _count_key(cat: _Catalog, name: str, split: str) -> str | None:
    """Cache key of a BIG-bench task's split count: its task.json's size and mtime plus the code
    stamp. None for other tasks (cheap to count, so never cached)."""
    info = cat.bigbench.get(name)
    if info is None or cat.folder is None:
        return None
    try:
        st = (cat.folder / info.path / "task.json").stat()
    except OSError:
        return None
    return f"{name}|{split}|{st.st_size}|{st.st_mtime_ns}|{_code_stamp()}"


def _counts_file() -> Path:
    return cache_dir("mixture") / "bigbench-counts.json"


def _load_counts() -> dict[str, int]:
    try:
        data = json.loads(_counts_file().read_text(encoding="utf-8"))
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _save_counts(new: dict[str, int]) -> None:
    if not new:
        return
    merged = {**_load_counts(), **new}
    try:
        atomic_write_json(_counts_file(), merged, indent=None)
    except OSError as e:  # a read-only cache only costs the next run a recount
        log.warning("could not cache task counts: %s", e)


def _count_job(args: tuple[str, str, str | None, str | None]) -> int | str:
    name, split, data_dir, flan_repo = args
    return _count(_catalog(data_dir, flan_repo).get(name), split)


def count_many(names: list[str], split: str, data_dir: Path | None, workers: int = 1,
               flan_repo: str | None = None) -> dict[str, int | str]:
    """Split sizes (or why unusable) of many tasks: cached BIG-bench counts first, the rest counted
    in ``workers`` processes."""
    cat = _catalog(data_dir, flan_repo)
    cached = _load_counts()
    out: dict[str, int | str] = {}
    todo = []
    for name in names:
        key = _count_key(cat, name, split)
        if key is not None and key in cached:
            out[name] = cached[key]
        else:
            todo.append(name)
    if todo:
        jobs = [(n, split, data_dir, flan_repo) for n in todo]
        if workers > 1 and len(todo) > 1:
            import multiprocessing as mp
            from concurrent.futures import ProcessPoolExecutor

            with ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn")) as pool:
                results = list(pool.map(_count_job, jobs, chunksize=4))
        else:
            results = [_count_job(j) for j in track(jobs, f"counting {len(jobs)} task(s)")]
        fresh = {}
        for name, n in zip(todo, results, strict=True):
            out[name] = n
            key = _count_key(cat, name, split)
            if key is not None and isinstance(n, int):
                fresh[key] = n
        _save_counts(fresh)
    return out


def expand(pattern: str, exclude: list[str], where: str, split: str = "train",
           data_dir: Path | None = None, allow: frozenset[str] = frozenset(), workers: int = 1,
           flan_repo: str | None = None) -> list[TaskInfo]:
    """The tasks a member names. A plain name must exist (and is refused later if held out);
    a glob skips, with a log line, tasks that are held out (unless allowed by name), excluded, or
    have no data for ``split`` here, and views that would count data twice (``flan_variant``:
    with a FLAN checkout, ``muffin/NAME:inverted`` repeats inversions ``muffin/NAME`` has)."""
    reg = _catalog(data_dir, flan_repo)
    if not any(c in pattern for c in "*?["):
        try:
            task = reg.get(pattern)
        except KeyError as e:
            raise UserError(f"{where}.task: {e}") from None
        return [_info(task, split)]
    candidates, skipped = [], []
    for name in reg.names():
        if not fnmatch.fnmatchcase(name, pattern) or any(fnmatch.fnmatchcase(name, x) for x in exclude):
            continue
        info = _info(reg.get(name), split)
        if "flan_variant" in info.tags:
            continue
        if any(t.startswith("heldout:") for t in info.tags) and name not in allow:
            skipped.append(f"{name} (held out: {', '.join(t for t in info.tags if t.startswith('heldout:'))})")
            continue
        candidates.append(info)
    sizes = count_many([i.name for i in candidates], split, data_dir, workers, flan_repo)
    infos = []
    for info in candidates:
        size = sizes[info.name]
        if isinstance(size, str):
            skipped.append(f"{info.name} ({size})")
            continue
        infos.append(dataclasses.replace(info, size=size))
    if skipped:
        log.info("%s: %r skips %d task(s): %s", where, pattern, len(skipped), "; ".join(skipped))
    if not infos:
        raise UserError(f"{where}.task: pattern {pattern!r} matches no usable task"
                        + (f" (skipped: {'; '.join(skipped[:5])})" if skipped else ""))
    return infos


# ---------------------------------------------------------------- counting and rendering


def count_task(name: str, split: str, data_dir: Path | None = None, flan_repo: str | None = None) -> int:
    """Examples in a task's split (cached for BIG-bench), counted by streaming its raw records."""
    n = count_many([name], split, data_dir, flan_repo=flan_repo)[name]
    if isinstance(n, str):
        raise UserError(f"task {name!r}: {n}")
    return n


class _KeptRows(Sequence):
    """A lazily read training split (BIG-bench's exemplar pool, read from its record file on access)
    whose rows, once read, are kept (up to _KEPT_MAX rows or _KEPT_BYTES of text, then forgotten all
    at once) and given again: an exemplar drawn again, or a query rendered in another format, is
    then neither parsed nor fingerprinted again (``fingerprints`` is the memo
    :meth:`Task._fingerprint` keeps by example object, shared by every pass over the task). Rows
    are never changed in place: preprocessors and renders make new dicts."""

    def __init__(self, rows: Sequence[dict[str, Any]]) -> None:
        self.rows = rows
        self.kept: dict[int, dict[str, Any]] = {}
        self.fingerprints: dict[int, tuple[Any, str]] = {}
        self.held = 0  # bytes of the kept rows' texts

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i):  # type: ignore[override]
        row = self.kept.get(i)
        if row is None:
            row = self.rows[i]
            size = _text_bytes(row)
            if len(self.kept) >= _KEPT_MAX or self.held + size > _KEPT_BYTES:
                self.kept.clear()
                self.fingerprints.clear()
                self.held = 0
            self.kept[i] = row
            self.held += size
        return row


def _text_bytes(row: dict[str, Any]) -> int:
    """The memory of a row's texts (strings, and strings in lists such as ``options``): Python
    keeps a text at 1, 2 or 4 bytes a character."""
    n = 0
    for v in row.values():
        if isinstance(v, str):
            n += sys.getsizeof(v)
        elif isinstance(v, list):
            n += sum(sys.getsizeof(x) for x in v if isinstance(x, str))
    return n


class _Selected:
    """A view of a source whose ``split`` yields only the records at the chosen indices, so that
    unselected examples are never preprocessed or rendered. ``rows``: the split's :class:`_KeptRows`,
    read from there (the same records as the source's ``records_at``)."""

    def __init__(self, source, split: str, keep: bytearray, rows: _KeptRows | None = None) -> None:
        self.source, self.split, self.keep, self.rows = source, split, keep, rows
        self.name = source.name

    def splits(self) -> list[str]:
        return self.source.splits()

    def records(self, split: str):
        if split != self.split:
            yield from self.source.records(split)
            return
        keep = self.keep
        if self.rows is not None:
            rows, end = self.rows, min(len(self.rows), len(keep))
            i = keep.find(1, 0, end)
            while i != -1:
                yield f"{self.name}[{split}] example {i}", rows[i]
                i = keep.find(1, i + 1, end)
            return
        at = getattr(self.source, "records_at", None)
        if at is not None:  # in-memory sources jump to the marked records
            yield from at(split, keep)
            return
        for i, record in enumerate(self.source.records(split)):
            if i < len(keep) and keep[i]:
                yield record


_RECENT: dict[tuple[str, str | None], Any] = {}


def _recent_task(name: str, data_dir: Path | None, flan_repo: str | None = None):
    """The task object, reused while consecutive streams render the same task (its formats share
    one load of its examples); only one is kept, so memory stays at one task's worth."""
    key = (name, data_dir, flan_repo)
    if key not in _RECENT:
        _RECENT.clear()
        task = _RECENT[key] = _catalog(data_dir, flan_repo).get(name)
        pool = task._pool.get("pool")
        if pool is not None and not isinstance(pool, list) and hasattr(task.source, "records_at"):
            task._pool["pool"] = _KeptRows(pool)  # BIG-bench: its training split, read on access
    return _RECENT[key]


def iter_task(name: str, fmt: str, split: str, seed: int, data_dir: Path | None = None,
              keep: bytearray | None = None, flan_repo: str | None = None, tokenizer: Any = None) -> Iterator[Rendered]:
    """A task's split rendered in ``fmt`` (templates and exemplars picked by ``seed``); with
    ``keep``, only the examples whose index is marked. With ``tokenizer`` the Flan token budgets
    apply (inputs, targets, exemplars plus query)."""
    from flanlab.tasks.formats import is_fewshot
    from flanlab.tasks.task import render

    task = _recent_task(name, data_dir, flan_repo)
    if keep is not None:
        # Few-shot exemplars still come from the whole training split: build the pool first.
        pool = {"pool": task.exemplar_pool()} if is_fewshot(fmt) else {}
        if split == task.train_split and ("records" in task._pool or not hasattr(task.source, "records_at")):
            # The records are kept in memory after the first read (a source that cannot jump to the
            # marked records reads them all anyway): take the marked ones from there.
            pool["records"] = [r for i, r in enumerate(task.train_records()) if i < len(keep) and keep[i]]
            pool["fingerprints"] = task._pool.setdefault("fingerprints", {})
        # BIG-bench queries come from the kept rows too, in every format (read once for all).
        kept = task._pool.get("pool") if split == task.train_split and "records" not in pool else None
        rows = kept if isinstance(kept, _KeptRows) else None
        task = dataclasses.replace(task, source=_Selected(task.source, split, keep, rows), _pool=pool)
    # An example flan/v2 would drop (few-shot, no exemplar fits the budget) is dropped here too;
    # the build draws a replacement so the stream still fills its planned count.
    for r in render(task, fmt, split=split, seed=seed, tokenizer=tokenizer, drop_unfit=True, ids=False):
        yield Rendered(r.inputs, r.targets, r.template_id)
