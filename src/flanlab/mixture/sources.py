"""Where a stream's examples come from: a task of the catalog rendered in one format, or a file of
pre-rendered examples. A source is described by a small picklable dict so that worker processes
can reopen it; the examples are always streamed, never held as a list.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

from flanlab.core.errors import UserError

__all__ = ["Rendered", "count_source", "iter_jsonl_file", "iter_source", "source_identity"]


class Rendered(NamedTuple):
    inputs: str
    targets: str
    template_id: str


def _open_text(path: Path) -> io.TextIOBase:
    """Open a .jsonl or .jsonl.zst file as text."""
    if path.name.endswith(".zst"):
        import zstandard

        raw = open(path, "rb")  # noqa: SIM115 - closed with the wrapper
        reader = zstandard.ZstdDecompressor().stream_reader(raw, closefd=True)
        return io.TextIOWrapper(reader, encoding="utf-8")
    return open(path, encoding="utf-8")  # noqa: SIM115


def iter_jsonl_file(path: str | Path, *, numbered: bool = False) -> Iterator[Any]:
    """Rows of a JSONL(.zst) file (``(line, row)`` pairs when ``numbered``); a bad line is a
    UserError naming the file and line."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: file not found")
    with _open_text(path) as f:
        for i, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise UserError(f"{path}:{i}: invalid JSON ({e.msg} at column {e.colno})") from None
            if not isinstance(row, dict):
                raise UserError(f"{path}:{i}: expected a JSON object, got {type(row).__name__}")
            yield (i, row) if numbered else row


def _file_rows(spec: dict[str, Any]) -> Iterator[Rendered]:
    path = spec["path"]
    for i, row in enumerate(iter_jsonl_file(path), 1):
        inputs, targets = row.get("inputs"), row.get("targets")
        if not isinstance(inputs, str) or not isinstance(targets, str):
            raise UserError(f"{path}: record {i}: expected string fields 'inputs' and 'targets'")
        yield Rendered(inputs, targets, str(row.get("template_id", "file")))


def iter_source(spec: dict[str, Any], seed: int, keep: bytearray | None = None,
                tokenizer: Any = None) -> Iterator[Rendered]:
    """The examples of a source, in its order (only those marked in ``keep`` when given); ``seed``
    picks templates/exemplars of task sources, ``tokenizer`` applies the Flan token budgets."""
    if spec["type"] == "file":
        rows = _file_rows(spec)
        yield from rows if keep is None else (r for i, r in enumerate(rows) if i < len(keep) and keep[i])
    elif spec["type"] == "task":
        from flanlab.mixture.catalog import iter_task

        yield from iter_task(spec["task"], spec["format"], spec["split"], seed, _data_dir(spec), keep,
                             spec.get("flan_repo"), tokenizer)
    else:  # pragma: no cover - specs are built by this package
        raise ValueError(f"unknown source type {spec['type']!r}")


def count_source(spec: dict[str, Any]) -> int:
    """How many examples a source has (counted by streaming, not by loading)."""
    if spec["type"] == "file":
        return sum(1 for _ in iter_jsonl_file(spec["path"]))
    from flanlab.mixture.catalog import count_task

    return count_task(spec["task"], spec["split"], _data_dir(spec), spec.get("flan_repo"))


def _data_dir(spec: dict[str, Any]) -> Path | None:
    # A source spec is JSON (manifest, worker arguments): the data dir travels as a string.
    return Path(spec["data_dir"]) if spec.get("data_dir") else None


def source_identity(spec: dict[str, Any]) -> dict[str, Any]:
    """What identifies a source's content for resume fingerprints (a file's size and mtime)."""
    if spec["type"] == "file":
        st = Path(spec["path"]).stat()
        return {**spec, "bytes": st.st_size, "mtime_ns": st.st_mtime_ns}
    return dict(spec)
