"""Shard files (JSONL, JSONL+zstd, Parquet): written atomically in one piece, read back as rows,
and the manifest that marks a mixture folder complete."""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from flanlab.core.errors import UserError
from flanlab.core.io import atomic_open
from flanlab.mixture.sources import iter_jsonl_file

__all__ = ["FIELDS", "MANIFEST", "IncompleteMixtureError", "encode_shard", "iter_mixture", "iter_mixture_located",
           "iter_shard", "read_manifest", "shard_name", "shard_paths", "write_shard"]

FIELDS = ("inputs", "targets", "task", "template_id", "format", "submixture")
MANIFEST = "manifest.json"
_SUFFIX = {"jsonl": ".jsonl", "jsonl.zst": ".jsonl.zst", "parquet": ".parquet"}


class IncompleteMixtureError(UserError):
    """A mixture folder without a manifest: a run that did not finish (or not a mixture at all)."""


def shard_name(index: int, count: int, fmt: str) -> str:
    return f"shard-{index:05d}-of-{count:05d}{_SUFFIX[fmt]}"


def encode_shard(lines: list[bytes], fmt: str) -> bytes:
    """The bytes of a shard holding ``lines`` (each one JSON object and a newline): what
    :func:`write_shard` writes."""
    buf = io.BytesIO()
    _write(buf, lines, fmt)
    return buf.getvalue()


class _Hashing:
    """A binary file that also hashes and counts what is written to it."""

    def __init__(self, f: IO[bytes]) -> None:
        self.f, self.sha256, self.bytes = f, hashlib.sha256(), 0

    def write(self, data: bytes) -> int:
        self.sha256.update(data)
        self.bytes += len(data)
        return self.f.write(data)


_BATCH = 256  # lines joined per write: a shard's text is never copied whole


def _write(f: Any, lines: list[bytes], fmt: str) -> None:
    if fmt == "jsonl":
        for i in range(0, len(lines), _BATCH):
            f.write(b"".join(lines[i: i + _BATCH]))
    elif fmt == "jsonl.zst":
        import zstandard

        # Streamed single-threaded compression with the size given up front: the output depends on
        # the text alone (not on how it is fed), so the same lines always give the same bytes.
        size = sum(map(len, lines))
        with zstandard.ZstdCompressor(level=3, write_checksum=True).stream_writer(f, size=size, closefd=False) as w:
            for i in range(0, len(lines), _BATCH):
                w.write(b"".join(lines[i: i + _BATCH]))
    elif fmt == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        rows = [json.loads(line) for line in lines]
        table = pa.table({name: pa.array([r[name] for r in rows], type=pa.string()) for name in FIELDS})
        buf = io.BytesIO()
        pq.write_table(table, buf, compression="zstd")
        f.write(buf.getvalue())
    else:
        raise ValueError(f"unknown shard format {fmt!r}")


def write_shard(path: Path, lines: list[bytes], fmt: str) -> dict[str, Any]:
    """Write one shard atomically, streamed (its text is not held twice); returns its file name,
    example count, size and sha256."""
    with atomic_open(path, "wb", encoding=None) as f:
        out = _Hashing(f)
        _write(out, lines, fmt)
    return {"file": path.name, "examples": len(lines), "bytes": out.bytes, "sha256": out.sha256.hexdigest()}


def iter_shard(path: str | Path) -> Iterator[dict[str, Any]]:
    """The rows of one shard file."""
    for _, row in _iter_shard_located(Path(path)):
        yield row


def _iter_shard_located(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """``(where, row)`` of one shard: ``where`` is ``FILE:LINE`` (JSONL) or ``FILE:row N`` (Parquet)."""
    if path.name.endswith(".parquet"):
        import pyarrow.parquet as pq

        if not path.is_file():
            raise UserError(f"{path}: file not found")
        n = 0
        for batch in pq.ParquetFile(path).iter_batches(batch_size=1024):
            for row in batch.to_pylist():
                n += 1
                yield f"{path}:row {n}", row
    else:
        for line, row in iter_jsonl_file(path, numbered=True):
            yield f"{path}:{line}", row


def read_manifest(folder: str | Path) -> dict[str, Any]:
    """The manifest of a finished mixture folder; a folder without one is an incomplete run."""
    folder = Path(folder)
    path = folder / MANIFEST
    if not folder.is_dir():
        raise UserError(f"{folder}: mixture folder not found")
    if not path.is_file():
        raise IncompleteMixtureError(
            f"{folder}: no {MANIFEST}, so this is not a finished mixture (an interrupted `flanlab mix` "
            "run resumes when rerun with the same command)")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise UserError(f"{path}:{e.lineno}: invalid JSON ({e.msg})") from None


def shard_paths(folder: str | Path, *, verify: bool = False) -> list[Path]:
    """The shard files a finished mixture's manifest lists, in order; ``verify`` checks each
    shard's sha256 against the manifest first."""
    folder = Path(folder)
    manifest = read_manifest(folder)
    shards = manifest.get("shards")
    if not isinstance(shards, list) or not all(isinstance(s, dict) and isinstance(s.get("file"), str)
                                               for s in shards):
        raise UserError(f"{folder / MANIFEST}: expected 'shards', a list of {{\"file\", ...}} entries (as "
                        "`flanlab mix` writes it)")
    paths = []
    for shard in shards:
        path = folder / shard["file"]
        if not path.is_file():
            raise UserError(f"{path}: shard listed in {MANIFEST} is missing")
        if verify:
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            if digest != shard.get("sha256"):
                raise UserError(f"{path}: sha256 {digest[:12]}… does not match the manifest's "
                                f"{str(shard.get('sha256'))[:12]}…; the shard was modified")
        paths.append(path)
    return paths


def iter_mixture(folder: str | Path, *, verify: bool = False) -> Iterator[dict[str, Any]]:
    """Every row of a finished mixture, shard by shard; ``verify`` checks each shard's sha256 first."""
    for _, row in iter_mixture_located(folder, verify=verify):
        yield row


def iter_mixture_located(folder: str | Path, *, verify: bool = False) -> Iterator[tuple[str, dict[str, Any]]]:
    """Like :func:`iter_mixture`, each row with where it is (``SHARD:LINE``, or ``SHARD:row N`` for
    Parquet), for error messages. The one reader of mixture folders, whatever their output format."""
    for path in shard_paths(folder, verify=verify):
        yield from _iter_shard_located(path)
