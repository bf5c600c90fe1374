"""Token budgets: count and truncate text with a tokenizer, so rendered examples fit.

Any Hugging Face tokenizer works (``encode`` / offsets); :class:`WhitespaceCounter` counts words
and needs no model (tests, quick looks).
"""

from __future__ import annotations

import time
from typing import Any, Protocol

__all__ = ["HFCounter", "TokenCounter", "WhitespaceCounter", "make_counter"]


class TokenCounter(Protocol):
    def count(self, text: str) -> int:
        """Tokens in ``text``."""
        ...

    def truncate(self, text: str, n: int) -> str:
        """A prefix of ``text`` with at most ``n`` tokens."""
        ...

    def fits(self, text: str, n: int) -> bool:
        """Whether ``text`` has at most ``n`` tokens."""
        ...

    def upper(self, text: str) -> int:
        """A cheap upper bound of ``count(text)`` (exact counts are only needed above budgets)."""
        ...


class WhitespaceCounter:
    """Counts whitespace-separated words."""

    def count(self, text: str) -> int:
        return len(text.split())

    def fits(self, text: str, n: int) -> bool:
        return self.count(text) <= n

    def upper(self, text: str) -> int:
        return self.count(text)

    def truncate(self, text: str, n: int) -> str:
        if self.count(text) <= n:
            return text
        if n <= 0:
            return ""
        out, pos = len(text), 0
        # Cut after the n-th word, keeping the text before it verbatim.
        for words, part in enumerate(text.split(), 1):
            pos = text.index(part, pos) + len(part)
            if words == n:
                out = pos
                break
        return text[:out]


class HFCounter:
    """Counts tokens with a Hugging Face tokenizer (no special tokens).

    Most texts are far below a budget, and tokenizing costs ~1 µs per byte, so :meth:`fits` and
    :meth:`upper` first use a bound that needs no tokenizer call: without a normalizer (which could
    expand the text) every token of a fast tokenizer covers at least one byte of the text, so a text
    has at most ``1 + its UTF-8 bytes`` tokens (the 1 allows for a prepended word-start marker). A
    tokenizer with a normalizer is always counted exactly. The answers are the same either way.
    """

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer
        backend = getattr(tokenizer, "backend_tokenizer", None) if getattr(tokenizer, "is_fast", False) else None
        self._backend = backend
        self._bounded = backend is not None and backend.normalizer is None
        self.calls = 0  # tokenizer calls made and their CPU seconds (the mixture benchmark reports them)
        self.seconds = 0.0

    def _ids(self, text: str) -> list[int]:
        self.calls += 1
        t = time.process_time()
        if self._backend is not None:
            ids = self._backend.encode(text, add_special_tokens=False).ids
        else:
            ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        self.seconds += time.process_time() - t
        return ids

    def count(self, text: str) -> int:
        return len(self._ids(text))

    def upper(self, text: str) -> int:
        if self._bounded:
            return 1 + len(text.encode("utf-8"))
        return self.count(text)

    def fits(self, text: str, n: int) -> bool:
        if self._bounded and len(text) < n and 1 + len(text.encode("utf-8")) <= n:
            return True
        return self.count(text) <= n

    def truncate(self, text: str, n: int) -> str:
        if n <= 0:
            return ""
        if self.fits(text, n):
            return text
        cut = len(text)
        if getattr(self.tokenizer, "is_fast", False):
            enc = self.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
            cut = enc["offset_mapping"][n - 1][1]
        out = text[:cut]
        # Re-tokenizing a prefix can merge differently; shrink until the count really holds.
        while out and self.count(out) > n:
            out = out[: max(0, len(out) - max(1, len(out) // 50))]
        return out


def make_counter(tokenizer: Any) -> TokenCounter | None:
    """A counter for ``tokenizer``: None stays None, a counter is kept, an HF tokenizer is wrapped."""
    if tokenizer is None:
        return None
    if hasattr(tokenizer, "count") and hasattr(tokenizer, "truncate"):
        return tokenizer
    return HFCounter(tokenizer)
