"""Shard files (JSONL, JSONL+zstd, Parquet): written atomically in one piece, read back as rows,
and the manifest that marks a mixture folder complete."""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from flanlab.core.errors import UserError
from flanlab.core.io import atomic_write_bytes
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
    """The bytes of a shard holding ``lines`` (each one JSON object and a newline)."""
    data = b"".join(lines)
    if fmt == "jsonl":
        return data
    if fmt == "jsonl.zst":
        import zstandard

        # One-shot, single-threaded compression: the same input always gives the same bytes.
        return zstandard.ZstdCompressor(level=3, write_checksum=True).compress(data)
    if fmt == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        rows = [json.loads(line) for line in lines]
        table = pa.table({f: pa.array([r[f] for r in rows], type=pa.string()) for f in FIELDS})
        buf = io.BytesIO()
        pq.write_table(table, buf, compression="zstd")
        return buf.getvalue()
    raise ValueError(f"unknown shard format {fmt!r}")


def write_shard(path: Path, lines: list[bytes], fmt: str) -> dict[str, Any]:
    """Write one shard atomically; returns its file name, example count, size and sha256."""
    data = encode_shard(lines, fmt)
    atomic_write_bytes(path, data)
    return {"file": path.name, "examples": len(lines), "bytes": len(data),
            "sha256": hashlib.sha256(data).hexdigest()}


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
