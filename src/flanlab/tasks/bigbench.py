"""BIG-bench ``task.json`` tasks, read from a folder or straight from the ``bigbench==1.0.0`` sdist.

The sdist (358 MB, ``bigbench-1.0.0/bigbench/benchmark_tasks/NAME[/SUBTASK]/task.json``) is never
unpacked: one streaming pass builds an index (task path, tar member offset and size, type, number
of examples), cached as JSON next to the tarball, so listing is instant; a task's JSON is then read
by seeking to its member. Multiple-choice examples (``target_scores``) become ``options`` and
``answer`` (the best-scored option); generative ones (``target``) become ``answer`` (the first
target) and ``targets`` (all). ``task_prefix``, ``example_input_prefix`` and
``example_output_prefix`` are kept as fields for templates. Examples split into ``train`` and
``validation`` by a stable hash of their input; generative examples without input are dropped and
multiple-choice ones without input get the task's instruction as their question.

Converted examples of a task read from the sdist are cached once per task in a compact record file
(:class:`TaskRecords`: a header, a table of offsets, one JSON line per converted example, train then
validation), keyed by the sdist's SHA-256 and the converter's version, so opening a task reads a
header and the few examples a stream selects instead of converting its whole task.json.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import subprocess
import sys
import tarfile
import weakref
from array import array
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from flanlab.core.errors import UserError
from flanlab.core.io import atomic_write_bytes, atomic_write_json, read_at
from flanlab.core.log import get_logger, progress
from flanlab.core.paths import cache_dir
from flanlab.tasks.sources import SourceError
from flanlab.tasks.task import Task
from flanlab.tasks.template import builtin_family

__all__ = [
    "SDIST_NAME",
    "BigBenchFolder",
    "BigBenchSource",
    "BigBenchTarball",
    "TaskInfo",
    "TaskRecords",
    "bbh_map",
    "convert_examples",
    "converter_version",
    "encode_records",
    "fetch_sdist",
    "make_task",
    "open_store",
    "task_name",
]

SDIST_NAME = "bigbench-1.0.0.tar.gz"
_MARKER = "/benchmark_tasks/"
_INDEX_VERSION = 1
log = get_logger("tasks.bigbench")


@dataclass(frozen=True)
class TaskInfo:
    """One index entry: a task.json with examples."""

    path: str  # e.g. "logical_deduction/five_objects"
    task_type: str  # multiple_choice | generation
    n_examples: int
    description: str = ""
    keywords: tuple[str, ...] = ()
    member: str = ""
    offset: int = 0
    size: int = 0


@cache
def _config() -> dict[str, Any]:
    text = resources.files("flanlab.tasks").joinpath("data/bigbench.yaml").read_text("utf-8")
    data = yaml.safe_load(text)
    for key in ("bbh", "other"):
        if not isinstance(data.get(key), dict):
            raise UserError(f"flanlab/tasks/data/bigbench.yaml: key {key!r}: expected a mapping")
    return data


def bbh_map() -> dict[str, str]:
    """BBH subtask → BIG-bench task path."""
    return dict(_config()["bbh"])


def heldout_tags(path: str) -> tuple[str, ...]:
    """Held-out tags of a BIG-bench task path (``bbh`` for the BBH sources)."""
    cfg = _config()
    groups = {"bbh": list(cfg["bbh"].values())}
    for tag, paths in cfg["other"].items():
        groups[tag] = list(paths)
    return tuple(sorted(tag for tag, paths in groups.items()
                        if any(path == p or path.startswith(p + "/") for p in paths)))


def task_name(path: str) -> str:
    """Catalog name of a BIG-bench task path: ``bigbench.logical_deduction.five_objects``."""
    return "bigbench." + path.replace("/", ".")


# -- converting examples ------------------------------------------------------------------------
def _prefix(value: Any, default: str) -> str:
    return (str(value) if value is not None else default).strip()


def task_type_of(data: Mapping[str, Any]) -> str | None:
    """``multiple_choice`` when every example has ``target_scores``, ``generation`` otherwise;
    None for a task without examples (a parent of subtasks)."""
    examples = data.get("examples") or []
    if not examples:
        return None
    return "multiple_choice" if all("target_scores" in e for e in examples) else "generation"


def convert_examples(data: Mapping[str, Any], where: str) -> list[dict[str, Any]]:
    """A task.json's examples as template fields (see the module docstring)."""
    kind = task_type_of(data)
    common = {
        "task_prefix": str(data.get("task_prefix", "") or "").strip(),
        "input_prefix": _prefix(data.get("example_input_prefix"), "Q:"),
        "output_prefix": _prefix(data.get("example_output_prefix"), "A:"),
        "description": str(data.get("description", "")).strip(),
    }
    out = []
    for i, ex in enumerate(data.get("examples") or []):
        spot = f"{where}: examples[{i}]"
        if "input" not in ex:
            raise SourceError(f"{spot}: missing field 'input'")
        text = str(ex["input"]).strip()
        if not text:
            if kind != "multiple_choice":
                continue  # a handful of generative examples have no input at all: nothing to learn
            # Some multiple-choice tasks (cause_and_effect, misconceptions_russian) put everything
            # in the options; the task's own instruction then serves as the question.
            text = common["task_prefix"] or common["description"] or "Choose the right option."
        row = {**common, "input": text}
        scores = ex.get("target_scores")
        target = ex.get("target")
        if kind == "multiple_choice":
            if not isinstance(scores, dict):
                raise SourceError(f"{spot}: field 'target_scores': expected a mapping option -> score")
            if len(scores) < 2:
                continue  # a few real examples have a single option: not a choice, nothing to render
            options = [str(k) for k in scores]
            values = [float(v) for v in scores.values()]
            best = values.index(max(values))
            row |= {"options": options, "answer": options[best], "targets": [options[best]]}
        else:
            if target is None and isinstance(scores, dict) and scores:
                target = max(scores, key=lambda k: float(scores[k]))
            targets = [str(t) for t in target] if isinstance(target, list) else [str(target)]
            if target is None or not targets:
                raise SourceError(f"{spot}: missing field 'target' (or 'target_scores')")
            row |= {"answer": targets[0], "targets": targets}
        out.append(row)
    return out


def split_of(example: Mapping[str, Any], fraction: float | None = None) -> str:
    """``validation`` for a stable ``fraction`` of examples (by a hash of the content), else ``train``."""
    frac = _config().get("validation_fraction", 0.2) if fraction is None else fraction
    # The input alone is not enough: some tasks share one input across all examples.
    key = "\x1f".join([str(example["input"]), *map(str, example.get("options") or example.get("targets") or [])])
    h = int.from_bytes(hashlib.sha256(key.encode("utf-8")).digest()[:4], "big")
    return "validation" if h / 2**32 < frac else "train"


# -- compact record files -----------------------------------------------------------------------
_RECORDS_MAGIC = b"flanlab-bigbench-records 1 " + sys.byteorder.encode() + b"\n"
_COMMON = ("task_prefix", "input_prefix", "output_prefix", "description")
SPLITS = ("train", "validation")


@cache
def converter_version() -> str:
    """A digest of what decides converted examples and their splits (this module and its config):
    record files written by another version are never read."""
    h = hashlib.sha256()
    for part in ("bigbench.py", "data/bigbench.yaml"):
        h.update(resources.files("flanlab.tasks").joinpath(part).read_bytes())
    return h.hexdigest()[:16]


def _line(row: Mapping[str, Any]) -> bytes:
    text = json.dumps(row, ensure_ascii=False, separators=(",", ":"))
    try:
        return text.encode("utf-8") + b"\n"
    except UnicodeEncodeError:  # a lone surrogate (from a JSON escape) survives only as an escape
        return json.dumps(row, separators=(",", ":")).encode("ascii") + b"\n"


def encode_records(data: Mapping[str, Any], where: str, stamp: Mapping[str, Any]) -> bytes:
    """A task.json converted (:func:`convert_examples`), split (:func:`split_of`) and encoded as a
    record file: magic line, JSON header line (``stamp``, the count of each split, the fields every
    example shares), ``n + 1`` native uint64 offsets, then one JSON line per example (train first)."""
    split: dict[str, list[dict[str, Any]]] = {name: [] for name in SPLITS}
    common: dict[str, Any] | None = None
    for ex in convert_examples(data, where):
        split[split_of(ex)].append(ex)
        common = common or {k: ex[k] for k in _COMMON}
    lines: list[bytes] = []
    for name in SPLITS:
        for ex in split[name]:
            # The shared fields lead every converted example (same values, same key order), so a
            # record stores only the rest and reading puts them back in front.
            lines.append(_line({k: v for k, v in ex.items() if k not in _COMMON}))
    offsets = array("Q", [0])
    for b in lines:
        offsets.append(offsets[-1] + len(b))
    header = {"stamp": dict(stamp), "counts": {name: len(split[name]) for name in SPLITS}, "common": common or {}}
    return b"".join([_RECORDS_MAGIC, json.dumps(header, ensure_ascii=True).encode() + b"\n",
                     offsets.tobytes(), *lines])


class TaskRecords:
    """A task's converted examples from a record file (see :func:`encode_records`): counting is free
    and example ``i`` of a split costs one small read and JSON parse, whatever the task's size."""

    def __init__(self, buf: bytes, where: str) -> None:
        """The records of a whole record file held in ``buf``."""
        self._setup(lambda start, end: buf[start:end], len(buf), where)

    @classmethod
    def open(cls, file: Path) -> TaskRecords:
        """``file``'s records, each read from the file when asked for. Not mapped into memory: a
        mapped file's pages stay in the process's resident memory once read, so rendering thousands
        of examples of a 70 MB task (an image task) would grow it by the whole file. Reads may come
        from several threads."""
        f = open(file, "rb", buffering=0)  # noqa: SIM115 - closed when the records are dropped
        records = cls.__new__(cls)
        weakref.finalize(records, f.close)

        def read(start: int, end: int) -> bytes:
            return read_at(f, start, end - start)

        records._setup(read, os.fstat(f.fileno()).st_size, str(file))
        return records

    def _setup(self, read: Callable[[int, int], bytes], size: int, where: str) -> None:
        """Read the header and the offset table; ``read(start, end)``: bytes ``start:end`` of the file."""
        self.where = where
        head = read(0, min(size, 1 << 16))
        if not head.startswith(_RECORDS_MAGIC):
            raise ValueError(f"{where}: not a record file of this version")
        end = head.find(b"\n", len(_RECORDS_MAGIC))
        if end < 0 and len(head) < size:  # a header over 64 KiB (long common fields)
            head = read(0, size)
            end = head.find(b"\n", len(_RECORDS_MAGIC))
        if end < 0:
            raise ValueError(f"{where}: truncated record file")
        header = json.loads(head[len(_RECORDS_MAGIC): end])
        self.stamp: dict[str, Any] = header["stamp"]
        self.counts: dict[str, int] = header["counts"]
        self.common: dict[str, Any] = header["common"]
        total = sum(self.counts.values())
        start = end + 1
        table = read(start, start + 8 * (total + 1))
        if len(table) != 8 * (total + 1):
            raise ValueError(f"{where}: truncated record file")
        self._read = read
        self._offsets = memoryview(table).cast("Q")
        self._base = start + 8 * (total + 1)
        self._first = {"train": 0, "validation": self.counts["train"]}
        if self._base + self._offsets[total] != size:
            raise ValueError(f"{where}: truncated record file")

    def count(self, split: str) -> int:
        return self.counts[split]

    def get(self, split: str, i: int) -> dict[str, Any]:
        """Example ``i`` of ``split``, equal to what converting the whole task.json gives."""
        if not 0 <= i < self.counts[split]:
            raise IndexError(i)
        k = self._first[split] + i
        rec = json.loads(self._read(self._base + self._offsets[k], self._base + self._offsets[k + 1]))
        return {**self.common, **rec}


class LazyExamples(Sequence):
    """A split's examples as a sequence read on access (a few-shot exemplar pool: only the drawn
    exemplars are ever read). Converted examples always have the fields and options the BIG-bench
    families need (see :func:`convert_examples`), as :meth:`Task.records` would check."""

    def __init__(self, source: BigBenchSource, split: str) -> None:
        self.source, self.split = source, split

    def __len__(self) -> int:
        return self.source.count(self.split)

    def __getitem__(self, i):  # type: ignore[override]
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        if i < 0:
            i += len(self)
        return self.source.example(self.split, i)


# -- stores ------------------------------------------------------------------------------------
def _info_from(path: str, data: Mapping[str, Any], **where: Any) -> TaskInfo | None:
    kind = task_type_of(data)
    if kind is None:
        return None
    return TaskInfo(path=path, task_type=kind, n_examples=len(data["examples"]),
                    description=str(data.get("description", ""))[:300],
                    keywords=tuple(str(k) for k in data.get("keywords", [])), **where)


def _parse(raw: bytes, where: str) -> dict[str, Any]:
    try:
        data = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise SourceError(f"{where}:{line}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    except json.JSONDecodeError as e:
        raise SourceError(f"{where}:{e.lineno}: malformed JSON ({e.msg} at column {e.colno})") from None
    if not isinstance(data, dict):
        raise SourceError(f"{where}: expected a JSON object with 'examples'")
    return data


class BigBenchTarball:
    """The BIG-bench sdist, read without unpacking; the index is cached next to it."""

    def __init__(self, tarball: str | Path, index_file: str | Path | None = None) -> None:
        self.tarball = Path(tarball)
        if not self.tarball.is_file():
            raise SourceError(f"{self.tarball}: BIG-bench sdist not found (fetch it with "
                              "`pip download --no-deps bigbench==1.0.0 -d DIR`)")
        self.index_file = Path(index_file) if index_file else self.tarball.with_name(
            self.tarball.name + ".index.json")
        self._index: dict[str, TaskInfo] | None = None
        self._sha256: str | None = None

    def _stamp(self) -> dict[str, int]:
        st = self.tarball.stat()
        return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}

    def index(self) -> dict[str, TaskInfo]:
        """Task path → info, from the cached index or one streaming pass over the tarball."""
        if self._index is None:
            self._index = self._load_index() or self._build_index()
        return self._index

    def _load_index(self) -> dict[str, TaskInfo] | None:
        try:
            data = json.loads(self.index_file.read_text("utf-8"))
        except (OSError, ValueError):
            return None
        if data.get("version") != _INDEX_VERSION or data.get("tarball") != self._stamp():
            return None
        return {t["path"]: TaskInfo(**{**t, "keywords": tuple(t["keywords"])}) for t in data["tasks"]}

    def sha256(self) -> str:
        """The sdist's SHA-256, computed once per (size, mtime) and remembered beside the index."""
        if self._sha256 is not None:
            return self._sha256
        memo = self.index_file.with_name(self.tarball.name + ".sha256.json")
        stamp = self._stamp()
        try:
            data = json.loads(memo.read_text("utf-8"))
            if data.get("tarball") == stamp and isinstance(data.get("sha256"), str):
                self._sha256 = data["sha256"]
                return data["sha256"]
        except (OSError, ValueError):
            pass
        h = hashlib.sha256()
        with open(self.tarball, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        digest = self._sha256 = h.hexdigest()
        try:
            atomic_write_json(memo, {"tarball": stamp, "sha256": digest}, indent=0)
        except OSError as e:
            log.debug("could not remember the sdist hash: %s", e)
        return digest

    def records_folder(self) -> Path:
        """Where converted tasks are cached: beside the index, keyed by the sdist's SHA-256 and the
        converter version (a new sdist or converter never reads stale records)."""
        return self.index_file.with_name(f"{self.tarball.name}.records-{self.sha256()[:16]}-{converter_version()}")

    def task_records(self, path: str) -> TaskRecords:
        """The converted examples of ``path``, from its record file, written (atomically) on first use."""
        folder = self.records_folder()
        file = folder / (path.replace("/", "__") + ".rec")
        stamp = {"sdist_sha256": self.sha256(), "converter": converter_version(), "path": path}
        if file.is_file():
            try:
                records = TaskRecords.open(file)
                if records.stamp == stamp:
                    return records
            except (OSError, ValueError, KeyError):
                pass  # damaged or foreign: converted again below
        data = self.load(path)
        blob = encode_records(data, f"bigbench:{path}", stamp)
        try:
            atomic_write_bytes(file, blob)
        except OSError as e:  # a read-only cache only costs the next run another conversion
            log.debug("could not cache the records of %s: %s", path, e)
        return TaskRecords(blob, str(file))

    def _build_index(self) -> dict[str, TaskInfo]:
        infos: dict[str, TaskInfo] = {}
        for info, _ in self.iter_tasks(describe="indexing BIG-bench sdist"):
            infos[info.path] = info
        payload = {"version": _INDEX_VERSION, "tarball": self._stamp(),
                   "tasks": [{**info.__dict__, "keywords": list(info.keywords)} for info in infos.values()]}
        try:
            atomic_write_json(self.index_file, payload, indent=0)
        except OSError as e:  # a read-only cache only costs the next run another pass
            log.warning("could not cache the BIG-bench index: %s", e)
        return infos

    def iter_tasks(self, describe: str = "reading BIG-bench tasks") -> Iterator[tuple[TaskInfo, dict[str, Any]]]:
        """Every task with examples, in one streaming pass: ``(info, task_json)``."""
        with tarfile.open(self.tarball, "r:gz") as tf, progress(transient=True) as bar:
            job = bar.add_task(describe, total=self.tarball.stat().st_size)
            for member in tf:
                bar.update(job, completed=tf.fileobj.tell() if hasattr(tf.fileobj, "tell") else 0)
                if not (member.isfile() and member.name.endswith("/task.json") and _MARKER in member.name):
                    continue
                path = member.name.split(_MARKER, 1)[1][: -len("/task.json")]
                f = tf.extractfile(member)
                if f is None:
                    continue
                data = _parse(f.read(), f"{self.tarball}!{member.name}")
                info = _info_from(path, data, member=member.name, offset=member.offset_data, size=member.size)
                if info is not None:
                    yield info, data

    def load(self, path: str) -> dict[str, Any]:
        """The task.json of ``path``, read by seeking to its member."""
        info = self.index().get(path)
        if info is None:
            raise SourceError(f"{self.tarball}: no BIG-bench JSON task {path!r}")
        where = f"{self.tarball}!{info.member}"
        # Seeking in a .tar.gz decompresses everything before the member (seconds for late ones),
        # so a task read once is kept, gzip-compressed, beside the index.
        cached = self.index_file.with_name(f"{self.tarball.name}.{self._stamp()['size']}.tasks") / (
            path.replace("/", "__") + ".json.gz")
        if cached.is_file():
            try:
                return _parse(gzip.decompress(cached.read_bytes()), where)
            except (OSError, EOFError, SourceError):
                pass  # a damaged cache entry is simply read again from the tarball
        member = tarfile.TarInfo(info.member)
        member.size, member.offset_data, member.type = info.size, info.offset, tarfile.REGTYPE
        with tarfile.open(self.tarball, "r:gz") as tf:
            f = tf.extractfile(member)
            assert f is not None
            raw = f.read()
        data = _parse(raw, where)
        try:
            atomic_write_bytes(cached, gzip.compress(raw, compresslevel=3))
        except OSError as e:
            log.debug("could not cache %s: %s", path, e)
        return data


class BigBenchFolder:
    """An unpacked ``benchmark_tasks`` folder (or any folder of ``NAME[/SUB]/task.json``)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise SourceError(f"{self.root}: BIG-bench task folder not found")
        self._index: dict[str, TaskInfo] | None = None

    def _files(self) -> Iterator[tuple[str, Path]]:
        for file in sorted(self.root.rglob("task.json")):
            yield file.parent.relative_to(self.root).as_posix(), file

    def iter_tasks(self, describe: str = "") -> Iterator[tuple[TaskInfo, dict[str, Any]]]:
        for path, file in self._files():
            data = _parse(file.read_bytes(), str(file))
            info = _info_from(path, data, member=str(file))
            if info is not None:
                yield info, data

    def index(self) -> dict[str, TaskInfo]:
        if self._index is None:
            self._index = {info.path: info for info, _ in self.iter_tasks()}
        return self._index

    def load(self, path: str) -> dict[str, Any]:
        file = self.root / path / "task.json"
        if not file.is_file():
            raise SourceError(f"{self.root}: no BIG-bench JSON task {path!r}")
        return _parse(file.read_bytes(), str(file))


Store = BigBenchTarball | BigBenchFolder


def open_store(location: str | Path) -> Store:
    """A folder or a ``.tar.gz`` sdist."""
    p = Path(location)
    return BigBenchFolder(p) if p.is_dir() else BigBenchTarball(p)


def fetch_sdist(download: bool = True) -> Path | None:
    """The cached sdist (``cache_dir("downloads")/bigbench-1.0.0.tar.gz``), fetched with pip when
    missing and ``download``; None when it is absent and cannot be fetched."""
    folder = cache_dir("downloads")
    path = folder / SDIST_NAME
    if path.is_file() or not download:
        return path if path.is_file() else None
    log.info("fetching the BIG-bench sdist (358 MB) into %s", folder)
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "bigbench==1.0.0", "-d", str(folder)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0 or not path.is_file():
        log.warning("could not fetch the BIG-bench sdist: %s", proc.stderr.strip().splitlines()[-1:] or "?")
        return None
    return path


# -- tasks -------------------------------------------------------------------------------------
class BigBenchSource:
    """One BIG-bench task as a :class:`~flanlab.tasks.sources.Source` (train / validation).

    From a store with record files (the sdist) examples are read one by one from the task's record
    file; otherwise (a folder, or ``data`` given) the whole task.json is converted in memory. Both
    give the same examples in the same order."""

    def __init__(self, store: Store | None, path: str, data: Mapping[str, Any] | None = None) -> None:
        self.store, self.path = store, path
        self.name = f"bigbench:{path}"
        self._data = data
        self._split: dict[str, list[dict[str, Any]]] | None = None
        self._records: TaskRecords | None = None

    def splits(self) -> list[str]:
        return ["train", "validation"]

    def _cached(self) -> TaskRecords | None:
        if self._records is None and self._data is None and hasattr(self.store, "task_records"):
            self._records = self.store.task_records(self.path)  # type: ignore[union-attr]
        return self._records

    def _examples(self) -> dict[str, list[dict[str, Any]]]:
        if self._split is None:
            data = self._data if self._data is not None else self.store.load(self.path)  # type: ignore[union-attr]
            split: dict[str, list[dict[str, Any]]] = {"train": [], "validation": []}
            for ex in convert_examples(data, self.name):
                split[split_of(ex)].append(ex)
            self._split = split
        return self._split

    def _check(self, split: str) -> None:
        if split not in self.splits():
            raise SourceError(f"{self.name}: no split {split!r}; splits: train, validation")

    def count(self, split: str) -> int:
        """Examples in ``split`` (read from the record file's header when there is one)."""
        self._check(split)
        records = self._cached()
        return records.count(split) if records is not None else len(self._examples()[split])

    def example(self, split: str, i: int) -> dict[str, Any]:
        """Example ``i`` of ``split`` (a fresh dict)."""
        records = self._cached()
        return records.get(split, i) if records is not None else dict(self._examples()[split][i])

    def lazy(self, split: str) -> LazyExamples:
        """``split`` as a sequence read on access."""
        self._check(split)
        return LazyExamples(self, split)

    def records(self, split: str) -> Iterator[tuple[str, dict[str, Any]]]:
        self._check(split)
        records = self._cached()
        rows: Sequence[dict[str, Any]] = self.lazy(split) if records is not None else self._examples()[split]
        for i, ex in enumerate(rows):
            yield f"{self.name}[{split}] example {i}", ex

    def records_at(self, split: str, keep: bytearray) -> Iterator[tuple[str, dict[str, Any]]]:
        """The records whose index is marked in ``keep``, as :meth:`records` yields them: found by
        ``bytearray.find`` (C speed), so a stream taking 5 of 50,000 examples does not walk all."""
        self._check(split)
        records = self._cached()
        rows: Sequence[dict[str, Any]] = self.lazy(split) if records is not None else self._examples()[split]
        end = min(len(rows), len(keep))
        i = keep.find(1, 0, end)
        while i != -1:
            yield f"{self.name}[{split}] example {i}", rows[i]
            i = keep.find(1, i + 1, end)


def make_task(info: TaskInfo, store: Store | None, data: Mapping[str, Any] | None = None) -> Task:
    """The catalog task for a BIG-bench task (generic templates by type, BBH sources held out)."""
    mc = info.task_type == "multiple_choice"
    source = BigBenchSource(store, info.path, data)
    return Task(
        name=task_name(info.path),
        source=source,
        family=builtin_family("bigbench_mc" if mc else "bigbench_gen"),
        task_type=info.task_type,
        category=", ".join(info.keywords[:3]),
        options_field="options" if mc else None,
        heldout=heldout_tags(info.path),
        source_kind="bigbench",
        description=info.description,
        tags=("bigbench", *info.keywords),
        # The exemplar pool is the training split (no preprocessors, no held-out split to exclude),
        # read lazily: a few-shot stream reads the exemplars it draws, not the whole split.
        _pool={"pool": source.lazy("train")},
    )
