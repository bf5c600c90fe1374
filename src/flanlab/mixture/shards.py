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

__all__ = ["FIELDS", "MANIFEST", "IncompleteMixtureError", "encode_shard", "iter_mixture", "iter_shard",
           "read_manifest", "shard_name", "write_shard"]

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
    path = Path(path)
    if path.name.endswith(".parquet"):
        import pyarrow.parquet as pq

        for batch in pq.ParquetFile(path).iter_batches(batch_size=1024):
            yield from batch.to_pylist()
    else:
        yield from iter_jsonl_file(path)


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


def iter_mixture(folder: str | Path, *, verify: bool = False) -> Iterator[dict[str, Any]]:
    """Every row of a finished mixture, shard by shard; ``verify`` checks each shard's sha256 first."""
    folder = Path(folder)
    manifest = read_manifest(folder)
    for shard in manifest["shards"]:
        path = folder / shard["file"]
        if verify:
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            if digest != shard["sha256"]:
                raise UserError(f"{path}: sha256 {digest[:12]}… does not match the manifest's "
                                f"{shard['sha256'][:12]}…; the shard was modified")
        yield from iter_shard(path)
