"""Deterministic sampling plan: per-stream quotas, which examples each stream takes, and how the
streams interleave into shards.

Everything here depends only on the seed and on counts, never on the number of workers: a stream's
content is a function of (seed, stream, quota), and each shard's composition and order are drawn
up front from the quotas. Workers then only render streams and assemble shards.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterable, Iterator
from typing import TypeVar

import numpy as np

__all__ = [
    "derive_seed",
    "select_indices",
    "select_mask",
    "shard_composition",
    "shard_order",
    "shard_sizes",
    "shuffle_buffer",
    "stream_plan",
]

T = TypeVar("T")


def derive_seed(seed: int, *labels: object) -> int:
    """A 64-bit seed for one purpose, stable across processes and Python versions (unlike hash())."""
    text = "\x1f".join([str(seed), *map(str, labels)])
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little")


def shard_sizes(total: int, shard_size: int) -> list[int]:
    """Shard lengths: full shards of ``shard_size`` then the remainder."""
    full, rest = divmod(total, shard_size)
    return [shard_size] * full + ([rest] if rest else [])


def shard_composition(quotas: list[int], sizes: list[int], seed: int) -> np.ndarray:
    """A (shards × streams) count matrix: each shard draws its examples from what is left of every
    stream's quota without replacement (multivariate hypergeometric), so each stream spreads evenly
    over the mixture; rows sum to ``sizes`` and columns to ``quotas``."""
    if sum(quotas) != sum(sizes):
        raise ValueError("quotas and shard sizes must have the same total")
    rng = np.random.Generator(np.random.PCG64(derive_seed(seed, "composition")))
    left = np.asarray(quotas, dtype=np.int64)
    out = np.zeros((len(sizes), len(quotas)), dtype=np.int64)
    for k, size in enumerate(sizes):
        if k == len(sizes) - 1:
            out[k] = left  # the last shard takes exactly what is left
        else:
            out[k] = rng.multivariate_hypergeometric(left, size, method="marginals")
        left = left - out[k]
    return out


def shard_order(counts: np.ndarray, seed: int, shard: int) -> np.ndarray:
    """The order of one shard: stream indices repeated by their counts, in a seeded shuffle."""
    labels = np.repeat(np.arange(len(counts), dtype=np.int64), counts)
    rng = np.random.Generator(np.random.PCG64(derive_seed(seed, "order", shard)))
    rng.shuffle(labels)
    return labels


def select_indices(n: int, r: int, rng: random.Random) -> Iterator[bool]:
    """For i in range(n), whether index i is taken, choosing exactly ``r`` of ``n`` uniformly
    (selection sampling, Knuth's algorithm S): O(1) memory, one pass."""
    if not 0 <= r <= n:
        raise ValueError(f"cannot select {r} of {n}")
    needed = r
    for i in range(n):
        take = needed > 0 and rng.random() * (n - i) < needed
        needed -= take
        yield take


def select_mask(n: int, r: int, rng: random.Random) -> bytearray:
    """:func:`select_indices` as a byte mask (1 = taken), with the same draws from ``rng`` (and
    ``rng`` left in the same state): for a few of many, the draws come in bulk from numpy's MT19937
    started from ``rng``'s state (the same generator, so the same numbers), else from a tight loop."""
    if not 0 <= r <= n:
        raise ValueError(f"cannot select {r} of {n}")
    if r == 0:
        return bytearray(n)
    if type(rng) is random.Random and n >= 4096 and r * 16 <= n:
        return _select_bulk(n, r, rng)
    keep = bytearray(n)
    needed, i, draw = r, 0, rng.random
    while needed:
        if draw() * (n - i) < needed:
            keep[i] = 1
            needed -= 1
        i += 1
    return keep


def _mt19937(state: tuple[int, ...]) -> np.random.MT19937:
    bits = np.random.MT19937()
    bits.state = {"bit_generator": "MT19937",
                  "state": {"key": np.asarray(state[:-1], dtype=np.uint32), "pos": int(state[-1])}}
    return bits


def _select_bulk(n: int, r: int, rng: random.Random) -> bytearray:
    version, state, gauss = rng.getstate()
    raw = _mt19937(state).random_raw(2 * n)
    # random.random(): (a >> 5, b >> 6) of two 32-bit outputs, as 53 bits (exact in float64).
    u = ((raw[0::2] >> 5).astype(np.float64) * 67108864.0 + (raw[1::2] >> 6)) * (1.0 / 9007199254740992.0)
    v = u * (n - np.arange(n, dtype=np.int64)).astype(np.float64)
    keep, needed, last = bytearray(n), r, -1
    # Only an index with v < r can ever be taken (needed never exceeds r): walk those in order.
    cand = np.flatnonzero(v < r)
    for i, x in zip(cand.tolist(), v[cand].tolist(), strict=True):
        if x < needed:
            keep[i] = 1
            needed -= 1
            if needed == 0:
                last = i
                break
    if needed:  # pragma: no cover - algorithm S always takes r (index n - needed is certain)
        raise AssertionError("selection did not complete")
    # Leave rng as the loop would: 2 outputs drawn per index up to the last one taken.
    bits = _mt19937(state)
    bits.random_raw(2 * (last + 1))
    after = bits.state["state"]
    rng.setstate((version, (*map(int, after["key"]), int(after["pos"])), gauss))
    return keep


def shuffle_buffer(items: Iterable[T], size: int, rng: random.Random) -> Iterator[T]:
    """A bounded-memory shuffle: keep ``size`` items, emit a random one as each new one arrives."""
    buf: list[T] = []
    for item in items:
        if len(buf) < size:
            buf.append(item)
            continue
        j = rng.randrange(size)
        buf[j], item = item, buf[j]
        yield item
    rng.shuffle(buf)
    yield from buf


def stream_plan(size: int, quota: int) -> list[tuple[int, int]]:
    """(epoch, how many examples) passes over a stream of ``size`` examples to fill ``quota``: whole
    epochs first, then a uniform subset of the last one."""
    if quota == 0:
        return []
    if size <= 0:
        raise ValueError("a stream with a quota needs examples")
    full, rest = divmod(quota, size)
    passes = [(e, size) for e in range(full)]
    if rest:
        passes.append((full, rest))
    return passes
