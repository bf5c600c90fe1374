"""Shard files: written as a stream, the same bytes as encoded in memory, read back row by row."""

from __future__ import annotations

import hashlib
import json
import random

import pytest

from flanlab.mixture.shards import FIELDS, encode_shard, iter_shard, shard_name, write_shard


def _lines(n: int, seed: int) -> list[bytes]:
    rng = random.Random(seed)
    rows = [{f: "".join(rng.choice("ab cé\n\"") for _ in range(rng.randint(0, 600))) for f in FIELDS}
            for _ in range(n)]
    return [(json.dumps(r, ensure_ascii=False) + "\n").encode() for r in rows]


@pytest.mark.parametrize("fmt", ["jsonl", "jsonl.zst", "parquet"])
def test_a_streamed_shard_is_what_encoding_gives_and_reads_back(tmp_path, fmt):
    lines = _lines(700, 0)  # several write batches, and over one zstd block
    path = tmp_path / shard_name(0, 1, fmt)
    meta = write_shard(path, lines, fmt)
    data = path.read_bytes()
    assert data == encode_shard(lines, fmt)
    assert meta == {"file": path.name, "examples": 700, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    assert [json.dumps(r, ensure_ascii=False).encode() + b"\n" for r in iter_shard(path)] == lines
    write_shard(path, _lines(700, 0), fmt)
    assert path.read_bytes() == data  # the same lines, the same bytes


def test_an_unknown_format_writes_nothing(tmp_path):
    with pytest.raises(ValueError, match="unknown shard format 'csv'"):
        write_shard(tmp_path / "shard.csv", _lines(2, 0), "csv")
    assert list(tmp_path.iterdir()) == []
