"""Mergeable length statistics: an exact histogram of lengths, so workers' statistics add up to
the mixture's exactly (means and percentiles alike)."""

from __future__ import annotations

from collections import Counter
from typing import Any

__all__ = ["LengthStats", "word_count"]

# str.split() splits ASCII text at \t \n \v \f \r, the separators \x1c-\x1f and space: mapped to a
# space, every other byte to "x", a text's words are its runs of "x".
_WORD_MARKS = bytes(32 if c in (*range(9, 14), *range(0x1C, 0x21)) else 120 for c in range(256))


def word_count(text: str) -> int:
    """``len(text.split())`` without making the words: ASCII texts are counted in C on their
    bytes (1.8x faster on Flan CoT texts of ~435 characters); others are split."""
    if text.isascii():
        marks = text.encode("ascii").translate(_WORD_MARKS)
        return marks.count(b" x") + marks.startswith(b"x")
    return len(text.split())


class LengthStats:
    """Counts of each length seen; ``summary()`` gives count, mean, p50/p90/p99 and max."""

    def __init__(self, hist: dict[int, int] | None = None) -> None:
        self.hist: Counter[int] = Counter(hist or {})

    def add(self, length: int) -> None:
        self.hist[length] += 1

    def add_many(self, lengths: list[int]) -> None:
        self.hist.update(lengths)  # Counter counts an iterable in C

    def merge(self, other: LengthStats) -> LengthStats:
        self.hist.update(other.hist)
        return self

    @property
    def count(self) -> int:
        return sum(self.hist.values())

    def percentile(self, q: float) -> int:
        """The smallest length with at least ``q`` of the examples at or below it."""
        total = self.count
        if total == 0:
            return 0
        need = q * total
        seen = 0
        for length in sorted(self.hist):
            seen += self.hist[length]
            if seen >= need:
                return length
        return max(self.hist)

    def summary(self) -> dict[str, Any]:
        total = self.count
        if total == 0:
            return {"count": 0, "mean": 0.0, "p50": 0, "p90": 0, "p99": 0, "max": 0}
        mean = sum(k * v for k, v in self.hist.items()) / total
        return {"count": total, "mean": round(mean, 3), "p50": self.percentile(0.5),
                "p90": self.percentile(0.9), "p99": self.percentile(0.99), "max": max(self.hist)}

    def to_json(self) -> dict[str, int]:
        return {str(k): v for k, v in sorted(self.hist.items())}

    @classmethod
    def from_json(cls, data: dict[str, int]) -> LengthStats:
        return cls({int(k): int(v) for k, v in data.items()})
