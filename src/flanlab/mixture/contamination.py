"""N-gram overlap between a mixture and the evaluation sets found in a data dir.

Text is normalized (NFKC, lower case, punctuation dropped) and cut into n-grams of words (13 by
default, as in GPT-3's contamination study). Scripts written without spaces (CJK, Thai) form a
separate sequence of characters cut into n-grams of ``CHAR_FACTOR * n`` characters: 13 characters
are a common phrase, not evidence of a copied example. Every evaluation n-gram goes into a sorted array of 64-bit
hashes; mixture examples are hashed in batches and looked up with a binary search, so the index
stays small and the scan streams the shards.

The evaluation sets are the scored examples of each benchmark, read through the benchmark's one
data owner in :mod:`flanlab.tasks.benchmark_data` (the mixture stage does not import evaluation).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from flanlab.core.errors import UserError
from flanlab.tasks.benchmark_data import BENCHMARK_DATA, MissingDataError, get_data, malformed_data

__all__ = ["CHAR_FACTOR", "EvalIndex", "EvalText", "ngrams", "normalize_tokens", "read_eval_sets", "scan_mixture"]

_TOKEN = re.compile(r"[\u0e00-\u0e7f\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af]|[^\W_]+")
_CHAR = re.compile(r"[\u0e00-\u0e7f\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af]")
_PRIME = 1_000_003
_CHAR_SALT = np.uint64(0x9E3779B97F4A7C15)  # keeps character n-grams apart from word n-grams
CHAR_FACTOR = 3
BATCH = 512
SAMPLES_PER_PAIR = 3


@dataclass(frozen=True)
class EvalText:
    benchmark: str
    id: str
    text: str


def normalize_tokens(text: str) -> list[str]:
    """Lower-cased NFKC word tokens without punctuation (CJK/Thai: one token per character)."""
    return _TOKEN.findall(unicodedata.normalize("NFKC", text).lower())


# ---------------------------------------------------------------- the evaluation sets


def read_eval_sets(data_dir: Path, benchmarks: Iterable[str] | None = None) -> Iterator[EvalText]:
    """Every example of the evaluation files of each benchmark found in ``data_dir`` (all known
    benchmarks, or those named), read by the benchmark's data owner (:mod:`flanlab.tasks.benchmark_data`, the
    reader evaluation uses); a benchmark whose files are absent yields nothing. Ids are
    ``subtask:index``, as in evaluation records."""
    root = Path(data_dir)
    if not root.is_dir():
        raise UserError(f"{root}: data dir not found")
    names = list(benchmarks) if benchmarks else BENCHMARK_DATA.names()
    for name in names:
        if name not in BENCHMARK_DATA:
            raise UserError(f"unknown benchmark {name!r}; known: {', '.join(BENCHMARK_DATA.names())}")
        data = get_data(name, root)
        try:
            subtasks = data.present_subtasks()
        except MissingDataError:
            continue
        for sub in subtasks:
            with malformed_data(name, f"subtask {sub!r}", root):
                examples = data.all_examples(sub)
            for ex in examples:
                yield EvalText(name, f"{sub}:{ex.index}", data.text(ex))


# ---------------------------------------------------------------- hashing and the index


def _gram_hashes(token_ids: np.ndarray, n: int) -> np.ndarray:
    """Polynomial hashes (mod 2**64) of every n-gram of a uint64 token-id array."""
    if len(token_ids) < n:
        return np.zeros(0, dtype=np.uint64)
    powers = np.array([pow(_PRIME, n - 1 - j, 2**64) for j in range(n)], dtype=np.uint64)
    return sliding_window_view(token_ids, n) @ powers


def _ids(tokens: list[str]) -> np.ndarray:
    # hash() is salted per process, which is fine: the index and the scan live in one process.
    return np.array([hash(t) for t in tokens], dtype=np.int64).view(np.uint64)


def ngrams(text: str, n: int) -> tuple[np.ndarray, list[str]]:
    """Hashes of the word n-grams and character (CHAR_FACTOR * n)-grams of ``text``, and the text
    of each n-gram's position (for samples): (hashes, [words..., chars...])."""
    tokens = normalize_tokens(text)
    words = [t for t in tokens if not _CHAR.fullmatch(t)]
    chars = [t for t in tokens if _CHAR.fullmatch(t)]
    wh = _gram_hashes(_ids(words), n)
    ch = _gram_hashes(_ids(chars), CHAR_FACTOR * n) ^ _CHAR_SALT
    return np.concatenate([wh, ch]), [*words, "\x00", *chars]


def _gram_text(seq: list[str], pos: int, n: int, n_words: int) -> str:
    """The text of the n-gram at ``pos`` of the concatenated hash array from :func:`ngrams`."""
    if pos < n_words:
        return " ".join(seq[pos:pos + n])
    start = seq.index("\x00") + 1 + (pos - n_words)
    return "".join(seq[start:start + CHAR_FACTOR * n])


class EvalIndex:
    """Sorted n-gram hashes of the evaluation texts, each pointing at its text."""

    def __init__(self, texts: Iterable[EvalText], n: int = 13) -> None:
        self.n = n
        self.texts: list[EvalText] = []
        self.too_short: dict[str, int] = {}
        self.sizes: dict[str, int] = {}
        keys, owners = [], []
        for t in texts:
            self.sizes[t.benchmark] = self.sizes.get(t.benchmark, 0) + 1
            h, _ = ngrams(t.text, n)
            if len(h) == 0:
                self.too_short[t.benchmark] = self.too_short.get(t.benchmark, 0) + 1
                continue
            keys.append(h)
            owners.append(np.full(len(h), len(self.texts), dtype=np.int32))
            self.texts.append(t)
        k = np.concatenate(keys) if keys else np.zeros(0, dtype=np.uint64)
        o = np.concatenate(owners) if owners else np.zeros(0, dtype=np.int32)
        order = np.argsort(k, kind="stable")
        self.keys, self.owners = k[order], o[order]

    def lookup(self, hashes: np.ndarray) -> np.ndarray:
        """For each hash, the index of an evaluation text holding it, or -1."""
        if len(self.keys) == 0 or len(hashes) == 0:
            return np.full(len(hashes), -1, dtype=np.int64)
        pos = np.searchsorted(self.keys, hashes)
        pos = np.minimum(pos, len(self.keys) - 1)
        hit = self.keys[pos] == hashes
        return np.where(hit, self.owners[pos].astype(np.int64), -1)


@dataclass
class _Pair:
    examples: int = 0
    eval_ids: set[int] = field(default_factory=set)
    samples: list[dict[str, Any]] = field(default_factory=list)


def scan_mixture(rows: Iterable[dict[str, Any]], index: EvalIndex) -> dict[str, Any]:
    """Overlap of mixture rows with the index: per (task, benchmark) the number of mixture examples
    sharing at least one n-gram, the number of distinct evaluation examples hit, and samples."""
    pairs: dict[tuple[str, str], _Pair] = {}
    scanned = 0
    batch: list[dict[str, Any]] = []

    def flush() -> None:
        for row in batch:
            hashes, seq = ngrams(f"{row.get('inputs', '')}\n{row.get('targets', '')}", index.n)
            n_words = max(0, seq.index("\x00") - index.n + 1)
            owners = index.lookup(hashes)
            hits = np.flatnonzero(owners >= 0)
            if len(hits) == 0:
                continue
            seen_benchmarks: set[str] = set()
            for pos in hits.tolist():
                ev = index.texts[int(owners[pos])]
                pair = pairs.setdefault((row.get("task", "?"), ev.benchmark), _Pair())
                if ev.benchmark not in seen_benchmarks:
                    pair.examples += 1
                    seen_benchmarks.add(ev.benchmark)
                    if len(pair.samples) < SAMPLES_PER_PAIR:
                        pair.samples.append({"row": row["_row"], "eval_id": ev.id,
                                             "ngram": _gram_text(seq, pos, index.n, n_words),
                                             "inputs": row.get("inputs", "")[:300]})
                pair.eval_ids.add(int(owners[pos]))
        batch.clear()

    for row in rows:
        batch.append({**row, "_row": scanned})
        scanned += 1
        if len(batch) >= BATCH:
            flush()
    flush()
    found = [{"task": t, "benchmark": b, "examples": p.examples, "eval_examples": len(p.eval_ids),
              "samples": p.samples} for (t, b), p in sorted(pairs.items())]
    return {"n": index.n, "scanned": scanned, "eval_sets": index.sizes, "too_short": index.too_short,
            "overlaps": found, "contaminated_examples": sum(p["examples"] for p in found)}
