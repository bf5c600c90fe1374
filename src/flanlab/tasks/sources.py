"""Where a task's examples come from: local files, Hugging Face datasets, memory.

A source yields ``(where, example)`` pairs per split; ``where`` (``path:line`` or ``path: row N``)
is how errors point at the bad record. Files are read as UTF-8; a bad byte, a malformed JSON line
or an empty split is a :class:`SourceError` naming the file and line.

BIG-bench lives in :mod:`flanlab.tasks.bigbench`.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from flanlab.core.errors import UserError

__all__ = [
    "FILE_FORMATS",
    "FileSource",
    "HFSource",
    "MemorySource",
    "Source",
    "SourceError",
    "read_text_utf8",
]

FILE_FORMATS = ("jsonl", "json", "csv", "tsv", "parquet")
Record = tuple[str, dict[str, Any]]


class SourceError(ValueError, UserError):
    """Bad task data: the message names the file and line (or row) and what was expected."""


@runtime_checkable
class Source(Protocol):
    """Examples by split."""

    name: str

    def splits(self) -> list[str]:
        """The split names this source has."""
        ...

    def records(self, split: str) -> Iterator[Record]:
        """``(where, example)`` pairs of ``split`` in a stable order."""
        ...


def _unknown_split(source: str, split: str, known: Sequence[str]) -> SourceError:
    return SourceError(f"{source}: no split {split!r}; splits: {', '.join(known) or '(none)'}")


_SURROGATE = re.compile("[\ud800-\udfff]")


def _no_lone_surrogates(where: str, value: Any, key: str = "") -> None:
    """A JSON escape such as \\ud800 decodes to a lone surrogate: not a character, and no UTF-8
    writer (a fingerprint, a shard) can encode it; refuse it here, naming the file, line and field."""
    if isinstance(value, str):
        m = None if value.isascii() else _SURROGATE.search(value)
        if m:
            raise SourceError(f"{where}: field {key or '(value)'!r} holds a lone surrogate "
                              f"\\u{ord(m.group()):04x} (not a Unicode character; fix the file's \\u escapes)")
    elif isinstance(value, dict):
        for k, v in value.items():
            _no_lone_surrogates(where, v, f"{key}.{k}" if key else str(k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _no_lone_surrogates(where, v, f"{key}[{i}]")


def read_text_utf8(path: Path) -> str:
    """The file's text; not-UTF-8 is a SourceError naming the line and byte of the first bad byte."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise SourceError(f"{path}: file not found") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise SourceError(f"{path}:{line}: not UTF-8 text ({e.reason} at byte {e.start}); "
                          "re-encode the file as UTF-8") from None


@dataclass
class MemorySource:
    """Examples held in memory (tests, BIG-bench tasks already read, generated data)."""

    data: Mapping[str, Sequence[Mapping[str, Any]]]
    name: str = "<memory>"

    def splits(self) -> list[str]:
        return list(self.data)

    def records(self, split: str) -> Iterator[Record]:
        if split not in self.data:
            raise _unknown_split(self.name, split, self.splits())
        for i, ex in enumerate(self.data[split]):
            yield f"{self.name}[{split}] row {i}", dict(ex)


def _format_of(path: Path, explicit: str | None) -> str:
    if explicit:
        if explicit not in FILE_FORMATS:
            raise SourceError(f"{path}: unknown format {explicit!r}; expected one of {', '.join(FILE_FORMATS)}")
        return explicit
    suffix = path.suffix.lower().lstrip(".")
    if suffix in FILE_FORMATS:
        return suffix
    raise SourceError(f"{path}: cannot tell the format from the name; expected a file ending in "
                      f"{', '.join('.' + f for f in FILE_FORMATS)} or an explicit format")


@dataclass
class FileSource:
    """Local files, one per split: JSONL, JSON (a list, or a mapping with a list under
    ``examples``/``data``), CSV, TSV or Parquet.

    ``columns`` names the columns of headerless CSV/TSV files; ``unescape`` turns the two
    characters ``\\n`` (and ``\\t``) in string values into real newlines (tabs), as the Flan CoT
    TSVs need.
    """

    files: Mapping[str, str | Path]
    format: str | None = None
    columns: Sequence[str] | None = None
    unescape: bool = False
    name: str = field(default="")

    def __post_init__(self) -> None:
        self.files = {split: Path(p) for split, p in self.files.items()}
        if not self.name:
            self.name = ", ".join(str(p) for p in self.files.values())

    def splits(self) -> list[str]:
        return list(self.files)

    def path(self, split: str) -> Path:
        if split not in self.files:
            raise _unknown_split(self.name, split, self.splits())
        return Path(self.files[split])

    def records(self, split: str) -> Iterator[Record]:
        path = self.path(split)
        fmt = _format_of(path, self.format)
        reader = {"jsonl": self._jsonl, "json": self._json, "csv": self._delimited,
                  "tsv": self._delimited, "parquet": self._parquet}[fmt]
        for where, ex in reader(path, fmt):
            if fmt in ("jsonl", "json"):
                _no_lone_surrogates(where, ex)
            yield where, (_unescape(ex) if self.unescape else ex)

    def _jsonl(self, path: Path, fmt: str) -> Iterator[Record]:
        # JSONL lines end at \n only: str.splitlines() would also split at U+2028 and other separators
        # that JSON strings may hold unescaped.
        for i, line in enumerate(read_text_utf8(path).split("\n"), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise SourceError(f"{path}:{i}: malformed JSON line ({e.msg} at column {e.colno})") from None
            if not isinstance(row, dict):
                raise SourceError(f"{path}:{i}: expected a JSON object per line, got {type(row).__name__}")
            yield f"{path}:{i}", row

    def _json(self, path: Path, fmt: str) -> Iterator[Record]:
        try:
            data = json.loads(read_text_utf8(path))
        except json.JSONDecodeError as e:
            raise SourceError(f"{path}:{e.lineno}: malformed JSON ({e.msg} at column {e.colno})") from None
        if isinstance(data, dict):
            for key in ("examples", "data"):
                if isinstance(data.get(key), list):
                    data = data[key]
                    break
        if not isinstance(data, list):
            raise SourceError(f"{path}: expected a JSON list of objects (or one under 'examples' / 'data')")
        for i, row in enumerate(data):
            if not isinstance(row, dict):
                raise SourceError(f"{path}: item {i}: expected an object, got {type(row).__name__}")
            yield f"{path}: item {i}", row

    def _delimited(self, path: Path, fmt: str) -> Iterator[Record]:
        text = read_text_utf8(path)
        delimiter = "\t" if fmt == "tsv" else ","
        # TSVs like the Flan CoT files are not quoted: a stray quote must not swallow lines.
        quoting = csv.QUOTE_NONE if fmt == "tsv" else csv.QUOTE_MINIMAL
        reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, quoting=quoting)
        columns = list(self.columns) if self.columns else None
        for row in reader:
            line = reader.line_num
            if not row or (len(row) == 1 and not row[0].strip()):
                continue
            if columns is None:
                columns = row
                continue
            if len(row) != len(columns):
                raise SourceError(f"{path}:{line}: expected {len(columns)} columns "
                                  f"({', '.join(columns)}), found {len(row)}")
            yield f"{path}:{line}", dict(zip(columns, row, strict=True))

    def _parquet(self, path: Path, fmt: str) -> Iterator[Record]:
        import pyarrow.parquet as pq

        try:
            table = pq.read_table(path)
        except FileNotFoundError:
            raise SourceError(f"{path}: file not found") from None
        except Exception as e:  # pyarrow raises its own error types for corrupt files
            raise SourceError(f"{path}: not a readable Parquet file ({e})") from None
        for i, row in enumerate(table.to_pylist()):
            yield f"{path}: row {i}", row


def _unescape(ex: dict[str, Any]) -> dict[str, Any]:
    return {k: v.replace("\\n", "\n").replace("\\t", "\t") if isinstance(v, str) else v for k, v in ex.items()}


@dataclass
class HFSource:
    """A Hugging Face dataset by name, config and split (``datasets.load_dataset``).

    ``splits`` maps our split names to the dataset's (``{"train": "train", "test": "validation"}``).
    ``path`` may also be a local folder in the hub's layout, or a builder (``json``, ``parquet``)
    with ``data_files``. Remote code is never trusted.
    """

    path: str
    config: str | None = None
    splits_map: Mapping[str, str] = field(default_factory=lambda: {"train": "train"})
    data_files: Any = None
    revision: str | None = None
    name: str = ""

    def __post_init__(self) -> None:
        if not self.name:
            self.name = f"hf:{self.path}" + (f"/{self.config}" if self.config else "")

    def splits(self) -> list[str]:
        return list(self.splits_map)

    def records(self, split: str) -> Iterator[Record]:
        if split not in self.splits_map:
            raise _unknown_split(self.name, split, self.splits())
        import datasets

        hf_split = self.splits_map[split]
        try:
            ds = datasets.load_dataset(self.path, self.config, split=hf_split, data_files=self.data_files,
                                       revision=self.revision)
        except ValueError as e:
            raise SourceError(f"{self.name}: cannot load split {hf_split!r}: {e}") from None
        except FileNotFoundError as e:
            raise SourceError(f"{self.name}: dataset not found ({e})") from None
        for i, row in enumerate(ds):
            yield f"{self.name}[{hf_split}] row {i}", dict(row)
