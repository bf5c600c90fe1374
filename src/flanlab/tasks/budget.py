"""Token budgets: count and truncate text with a tokenizer, so rendered examples fit.

Any Hugging Face tokenizer works (``encode`` / offsets); :class:`WhitespaceCounter` counts words
and needs no model (tests, quick looks).
"""

from __future__ import annotations

import json
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
        self._splittable, self._added = _splits_at_newlines(backend)
        self._piece_counts: dict[str, int] = {}
        self._last: tuple[str, Any] | None = None
        self.calls = 0  # tokenizer calls made and their CPU seconds (the mixture benchmark reports them)
        self.seconds = 0.0

    def _ids(self, text: str) -> list[int]:
        self.calls += 1
        t = time.process_time()
        if self._backend is not None:
            enc = self._backend.encode(text, add_special_tokens=False)
            self._last = (text, enc)  # a text found too long is truncated next: its offsets are here
            ids = enc.ids
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
        return self._remembered(text) <= n

    def _remembered(self, text: str) -> int:
        # A few-shot query is checked alone, then with each exemplar candidate: counted once.
        cache = self._piece_counts
        c = cache.get(text)
        if c is None:
            if len(cache) >= 4096:  # bounded: the exemplars of one task rarely repeat beyond this
                cache.clear()
            c = cache[text] = self.count(text)
        return c

    def fits_joined(self, parts: list[str], sep: str, n: int) -> bool:
        """Whether ``sep.join(parts)`` has at most ``n`` tokens, without tokenizing the joined text
        where that is provably exact (see :func:`_splits_at_newlines`): then the count is the sum of
        the parts' counts (each part counted once and remembered, so a growing few-shot prompt does
        not re-tokenize its earlier exemplars) plus one token per newline of each ``\\n\\n``
        (or ``\\n``) separator."""
        size = sum(len(p) for p in parts) + len(sep) * (len(parts) - 1)
        if self._bounded and size < n and 1 + sum(len(p.encode("utf-8")) for p in parts) + \
                len(sep.encode("utf-8")) * (len(parts) - 1) <= n:
            return True
        if not (self._splittable and sep in ("\n", "\n\n") and self._junctions_split(parts)):
            return self.count(sep.join(parts)) <= n
        # Exact counts where known, else each part's bound (1 + its bytes); the largest unknown
        # parts are counted first, and counting stops as soon as the bound fits or the exact
        # part alone no longer can (every other part has at least one token).
        cache = self._piece_counts
        seps = len(sep) * (len(parts) - 1)
        known, unknown = 0, []
        for p in parts:
            c = cache.get(p)
            if c is None:
                unknown.append((1 + len(p.encode("utf-8")), p))
            else:
                known += c
        upper = seps + known + sum(b for b, _ in unknown)
        unknown.sort(key=lambda bp: -bp[0])
        for k, (bound, p) in enumerate(unknown):
            if upper <= n:
                return True
            if seps + known + (len(unknown) - k) > n:
                return False
            c = self._remembered(p)
            known += c
            upper += c - bound
        return upper <= n

    def _junctions_split(self, parts: list[str]) -> bool:
        # Every junction must be <non-space>SEP<non-space>, and no part after the first may start
        # with an added token (the split around added tokens would leave the separator alone).
        for k, p in enumerate(parts):
            if not p or (k < len(parts) - 1 and p[-1].isspace()):
                return False
            if k and (p[0].isspace() or (self._added and p.startswith(self._added))):
                return False
        return True

    def truncate(self, text: str, n: int) -> str:
        if n <= 0:
            return ""
        if self.fits(text, n):
            return text
        cut = len(text)
        if getattr(self.tokenizer, "is_fast", False):
            last = self._last
            if last is not None and last[0] == text:  # just counted (by fits): the same encoding
                offsets = last[1].offsets
            else:
                offsets = self.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
            cut = offsets[n - 1][1]
        out = text[:cut]
        # Re-tokenizing a prefix can merge differently; shrink until the count really holds.
        while out and self.count(out) > n:
            out = out[: max(0, len(out) - max(1, len(out) // 50))]
        return out


def _splits_at_newlines(backend: Any) -> tuple[bool, tuple[str, ...]]:
    """Whether, for this tokenizer, ``a + "\\n" * k + b`` (k = 1 or 2) has exactly
    ``count(a) + k + count(b)`` tokens whenever ``a`` ends and ``b`` starts with a non-whitespace character (and ``b`` does not
    start with an added token).

    True for byte-level BPE tokenizers with GPT-2's pre-tokenizer (SmolLM2, GPT-2, Llama 3 style
    without a normalizer): BPE never merges across pre-tokens, and GPT-2's pattern
    (``'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+``) splits
    ``<non-space>\\n…\\n<non-space>`` into the pre-tokens of the left text (no alternative can
    continue a non-space character with a newline, and the one lookahead only ends whitespace runs),
    one pre-token per newline (``\\n\\n`` before a non-space character: ``\\s+(?!\\S)`` backs off
    to the first ``\\n``, then ``\\s+`` takes the second; ``\\n`` is not the optional leading
    space; three newlines would give ``\\n\\n`` + ``\\n``, hence k ≤ 2), then the pre-tokens of
    the right text (matching has no look-behind). Each newline is one byte, hence one token. Added
    tokens are split out first; none may contain whitespace or strip it (lstrip/rstrip). Anything
    else (a normalizer, another pre-tokenizer, BPE dropout, a slow tokenizer) is counted exactly.
    Also returns the added tokens' texts (a part starting with one is counted exactly).
    """
    if backend is None:
        return False, ()
    try:
        spec = json.loads(backend.to_str())
    except Exception:  # noqa: BLE001 - an unreadable spec is simply not trusted
        return False, ()
    pre, model = spec.get("pre_tokenizer") or {}, spec.get("model") or {}
    if spec.get("normalizer") is not None or model.get("type") != "BPE" or model.get("dropout"):
        return False, ()
    if pre != {**pre, "type": "ByteLevel", "add_prefix_space": False, "use_regex": True}:
        return False, ()
    added = []
    for tok in spec.get("added_tokens") or []:
        content = str(tok.get("content", ""))
        if not content or tok.get("lstrip") or tok.get("rstrip") or any(c.isspace() for c in content):
            return False, ()
        added.append(content)
    # Each newline byte must be one token of its own (it is in any byte-level vocabulary).
    if len(backend.encode("\n", add_special_tokens=False).ids) != 1:
        return False, ()
    return True, tuple(added)


def make_counter(tokenizer: Any) -> TokenCounter | None:
    """A counter for ``tokenizer``: None stays None, a counter is kept, an HF tokenizer is wrapped."""
    if tokenizer is None:
        return None
    if hasattr(tokenizer, "count") and hasattr(tokenizer, "truncate"):
        return tokenizer
    return HFCounter(tokenizer)
