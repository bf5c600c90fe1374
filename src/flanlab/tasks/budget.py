"""Token budgets: count and truncate text with a tokenizer, so rendered examples fit.

Any Hugging Face tokenizer works (``encode`` / offsets); :class:`WhitespaceCounter` counts words
and needs no model (tests, quick looks).
"""

from __future__ import annotations

from typing import Any, Protocol

__all__ = ["HFCounter", "TokenCounter", "WhitespaceCounter", "make_counter"]


class TokenCounter(Protocol):
    def count(self, text: str) -> int:
        """Tokens in ``text``."""
        ...

    def truncate(self, text: str, n: int) -> str:
        """A prefix of ``text`` with at most ``n`` tokens."""
        ...


class WhitespaceCounter:
    """Counts whitespace-separated words."""

    def count(self, text: str) -> int:
        return len(text.split())

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
    """Counts tokens with a Hugging Face tokenizer (no special tokens)."""

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer

    def _ids(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def count(self, text: str) -> int:
        return len(self._ids(text))

    def truncate(self, text: str, n: int) -> str:
        if n <= 0:
            return ""
        if self.count(text) <= n:
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
