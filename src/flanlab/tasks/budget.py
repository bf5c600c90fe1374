"""Token budgets: count and truncate text with a tokenizer, so rendered examples fit.

Any Hugging Face tokenizer works (``encode`` / offsets); :class:`WhitespaceCounter` counts words
and needs no model (tests, quick looks).
"""

from __future__ import annotations

import functools
import re
import time
import unicodedata
from bisect import bisect_left
from collections.abc import Sequence
from itertools import accumulate
from typing import Any, Protocol

__all__ = ["HFCounter", "Joined", "TokenCounter", "WhitespaceCounter", "make_counter"]


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


# GPT-2's byte-level pre-tokenizer pattern, which Hugging Face's ``ByteLevel(use_regex=True)`` runs:
# ``'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+``. HFCounter rebuilds it
# for Python's ``re`` with explicit character classes taken from Python's Unicode tables, and uses it only
# on characters whose class the tokenizer itself confirmed (see HFCounter._learn_blocks), so the two engines
# split every text it is used on alike.
# Python's classes are written out for the BMP only, so that ``re`` compiles each class to a table
# (a class with ranges beyond it is also scanned range by range: ~10x slower splits); every other
# character is "P" to the pattern: right for emoji and symbols, and letters there are not confirmed.
_HYPOTHESIS_END = 0x10000
_BLOCK = 256  # characters are confirmed a block of code points at a time, when a text first holds one
_FIRST_BLOCKS = (0x00, 0x01, 0x02, 0x20, 0x21, 0x22)  # ASCII, Latin, punctuation, math: confirmed up front
_LEADS = {"L": "a", "N": "1", "W": "\t", "P": "!"}
_PIECE = 4096  # characters counted at a time by HFCounter._upto (then a pre-token boundary ends the piece)
# Where a pre-token ends whatever the text holds around it: after a newline between two ASCII non-space
# characters (no pre-token runs from a non-space character into whitespace, and a lone newline before a
# non-space character is a pre-token of its own), and between two ASCII non-space characters of
# different classes (letter, digit, other) with no quote on either side (GPT-2's runs hold one class;
# only a contraction such as 's starts with another): a hex colour image ``#fafcfb#f9fafa`` or a base64
# string has one every few characters, prose without newlines one at each punctuation mark.
_P = "!-&(-/:-@\\[-`{-~"  # ASCII other than letters, digits, space and the quote
_PIECE_END = re.compile(rf"[!-~]\n(?=[!-~])|[A-Za-z](?=[0-9{_P}])|[0-9](?=[A-Za-z{_P}])|[{_P}](?=[A-Za-z0-9])")
_WORD_CACHE_MAX = 50_000  # pre-tokens of the current generation (~6 MB; see _PreTokenCounts.age)
_TEXT_CACHE_MIN = 512  # texts at least this long have their exact counts remembered (see HFCounter._texts)
_TEXT_CACHE_CHARS = 2_000_000  # characters of remembered texts (2-8 MB); forgotten all at once past it


@functools.lru_cache(maxsize=1)
def _python_classes() -> dict[str, str]:
    r"""Letters (L), numbers (N) and whitespace (W) below _HYPOTHESIS_END by Python's Unicode tables;
    every other character is "P" (neither, which GPT-2's pattern calls ``[^\s\p{L}\p{N}]``)."""
    out: dict[str, str] = {}
    category = unicodedata.category
    for code in range(_HYPOTHESIS_END):
        c = chr(code)
        k = category(c)[0]
        if k == "L" or k == "N":
            out[c] = k
        elif c.isspace():
            out[c] = "W"
    return out


class _PreTokenCounts(dict):
    """Token counts of pre-tokens; a missing one is mapped to the byte-level alphabet and encoded by
    the BPE model alone (what the tokenizer does to each pre-token)."""

    def __init__(self, backend: Any, byte_map: dict[int, str]) -> None:
        super().__init__()
        # The backend and the byte map, not the counter: no reference cycle, so a dropped counter's
        # caches are freed at once, not at the next full garbage collection.
        self.backend = backend
        self.byte_map = byte_map  # filled in place by HFCounter._learn_blocks
        self.old: dict[str, int] = {}  # the previous generation: a pre-token used again moves back

    def __missing__(self, word: str) -> int:
        n = self.old.get(word)
        if n is None:
            n = len(self.backend.model.tokenize(word.encode("utf-8").decode("latin-1").translate(self.byte_map)))
        self[word] = n
        return n

    def age(self) -> None:
        """Bound the memory: past _WORD_CACHE_MAX pre-tokens the current generation becomes the old
        one (the one before is dropped), so the pre-tokens in use (common words) stay without being
        encoded again, and rare ones are forgotten."""
        if len(self) > _WORD_CACHE_MAX:
            self.old = {}  # freed before the copy: never three generations at once
            self.old = dict(self)
            self.clear()


def _class_pattern(chars: list[str]) -> str:
    """A regex character-class body of ``chars``, as ranges of consecutive code points."""
    codes = sorted(map(ord, chars))
    runs: list[list[int]] = []
    for c in codes:
        if runs and c == runs[-1][1] + 1:
            runs[-1][1] = c
        else:
            runs.append([c, c])
    return "".join(re.escape(chr(a)) if a == b else f"{re.escape(chr(a))}-{re.escape(chr(b))}" for a, b in runs)


class HFCounter:
    """Counts tokens with a Hugging Face tokenizer (no special tokens).

    Most texts are far below a budget, and tokenizing costs ~0.4 µs per byte, so :meth:`fits` and
    :meth:`upper` first use a bound that needs no tokenizer call: without a normalizer (which could
    expand the text) every token of a fast tokenizer covers at least one byte of the text, so a text
    has at most ``1 + its UTF-8 bytes`` tokens (the 1 allows for a prepended word-start marker). A
    tokenizer with a normalizer is always counted exactly. The answers are the same either way.

    For GPT-2-style byte-level BPE tokenizers (no normalizer, ``ByteLevel`` pre-tokenizer with its
    regex, no prefix space, BPE without dropout: SmolLM2, GPT-2, Qwen-like) exact counts are cheaper
    still: the BPE model encodes each pre-token on its own, so a text's count is the sum of its
    pre-tokens' counts. For texts over characters whose class the tokenizer's own pre-tokenizer
    confirmed (any script; see :meth:`_learn_blocks`) with no added-token text in them, the pre-tokens come from Python's
    ``re`` and each distinct one is encoded once (a cache), ~10x faster than a tokenizer call (whose
    regex engine is the slow part); anything else takes the tokenizer. The same structure makes
    counts of joined texts additive (:meth:`joined`).
    """

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer
        backend = getattr(tokenizer, "backend_tokenizer", None) if getattr(tokenizer, "is_fast", False) else None
        self._backend = backend
        self._bounded = backend is not None and backend.normalizer is None
        self.calls = 0  # tokenizer calls made and their CPU seconds (the mixture benchmark reports them)
        self.seconds = 0.0
        self._texts: dict[str, int] = {}  # exact counts of long texts on the fast path (see _remember)
        self._lower: dict[str, int] = {}  # lower bounds of long texts' counts (counted until over a budget)
        self._text_chars = 0
        self._split: Any = None  # the pre-tokenizer pattern over safe characters, when there is one
        self._unsafe: Any = None
        self._has_added: Any = None
        self._latin1_map: dict[int, str] = {}  # UTF-8 byte -> byte-level character (see _learn_blocks)
        self._words = _PreTokenCounts(backend, self._latin1_map)
        self._added: tuple[str, ...] = ()
        self._separators: dict[str, int] = {}
        self._bad: set[str] = set()  # characters the tokenizer classes unlike Python (texts with one: tokenizer)
        self._blocks: set[int] = set()  # blocks of code points asked about so far
        self._block_patterns: dict[int, str] = {}  # block -> its confirmed characters as a class body
        if self._bounded and _is_gpt2_byte_level(backend):
            self._pre = backend.pre_tokenizer
            by: dict[str, list[str]] = {"L": [], "N": [], "W": []}
            for c, k in _python_classes().items():
                by[k].append(c)
            L, N, W = (_class_pattern(by[k]) for k in "LNW")
            # GPT-2's contractions 's|'t|'re|'ve|'m|'ll|'d with their quote factored out: the same
            # alternatives in the same order (~8 % faster splits: one branch tried per pre-token, not 7).
            self._split = re.compile(rf"'(?:s|t|re|ve|m|ll|d)| ?[{L}]+| ?[{N}]+| ?[^{W}{L}{N}]+"
                                     rf"|[{W}]+(?![^{W}])|[{W}]+")
            self._added = tuple(t.content for t in backend.get_added_tokens_decoder().values() if t.content)
            added = [re.escape(a) for a in self._added if a]
            self._has_added = re.compile("|".join(added)) if added else None
            self._learn_blocks(_FIRST_BLOCKS)
            # A last guard: the fast count must agree with the tokenizer on a few mixed texts.
            probes = ["Q: What's 12+7?\n\nA: 19.", "  two  spaces\tand\r\nCRLF ...!!", "x\n\n\n y",
                      "'re 've'll Café – “quoted” 3½ × 2 ≤ 9", "a\u00a0b\u2028c  \u2003d",
                      "Привет, мир! 你好，世界。 こんにちは 안녕 ١٢٣ नमस्ते 😀 e\u0301"]
            if any(self._word_count(p) not in (None, len(self._encode(p))) for p in probes):
                self._split = None
                self._words.clear()

    def _learn_blocks(self, blocks: Sequence[int]) -> None:
        """Ask the tokenizer's own pre-tokenizer the class of every character in ``blocks``.

        A character is confirmed when ``lead + c`` stays one pre-token for the lead of the class
        Python's tables give it (``a`` letter, ``1`` number, tab whitespace, ``!`` other: by GPT-2's
        pattern only that class joins that lead) and, while one of its UTF-8 bytes has no
        byte-level character yet, ``c`` alone maps to one byte-level character per byte (the
        byte-to-character map is learnt from it); other characters send their texts to the
        tokenizer. Then the pattern of characters outside the fast path is rebuilt.
        """
        classes, pre, byte_map = _python_classes(), self._pre.pre_tokenize_str, self._latin1_map
        for block in blocks:
            self._blocks.add(block)
            known: list[str] = []
            for code in range(block * _BLOCK, min((block + 1) * _BLOCK, 0x110000)):
                if 0xD800 <= code < 0xE000:
                    continue
                c = chr(code)
                ok = len(pre(_LEADS[classes.get(c, "P")] + c)) == 1
                raw = c.encode("utf-8")
                if ok and not all(b in byte_map for b in raw):
                    alone = pre(c)
                    ok = len(alone) == 1 and len(alone[0][0]) == len(raw)
                    if ok:
                        byte_map.update(zip(raw, alone[0][0], strict=True))
                if ok:
                    known.append(c)
                else:
                    self._bad.add(c)
            self._block_patterns[block] = _class_pattern(known)
        self._unsafe = re.compile(f"[^{''.join(self._block_patterns[b] for b in sorted(self._block_patterns))}]")

    def _safe(self, text: str) -> bool:
        """Whether every character of ``text`` is confirmed (blocks not asked about yet are, now)."""
        if not self._unsafe.search(text):
            return True
        new = {ord(c) // _BLOCK for c in set(self._unsafe.findall(text)) - self._bad} - self._blocks
        if not new:
            return False
        self._learn_blocks(sorted(new))
        return not self._unsafe.search(text)

    def _encode(self, text: str) -> list[int]:
        if self._backend is not None:
            return self._backend.encode(text, add_special_tokens=False).ids
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def _word_count(self, text: str) -> int | None:
        """The exact count from cached pre-token counts, or None when the text is outside the fast path."""
        long = len(text) >= _TEXT_CACHE_MIN
        if long:
            n = self._texts.get(text)
            if n is not None:
                return n
        if self._split is None or not self._safe(text) or (self._has_added and self._has_added.search(text)):
            return None
        words = self._words
        words.age()
        n = sum(map(words.__getitem__, self._split.findall(text)))  # a miss encodes the pre-token
        if long:
            self._remember(text, n)
        return n

    def _remember(self, text: str, n: int, into: dict[str, int] | None = None) -> None:
        """Keep the exact count of a long text (or, ``into`` :attr:`_lower`, a lower bound): the same
        exemplar block or query comes back in other examples (drawn again, other formats and
        epochs) and in its budget checks (a truncation first asks whether the text fits)."""
        if self._text_chars > _TEXT_CACHE_CHARS:
            self._texts.clear()
            self._lower.clear()
            self._text_chars = 0
        (self._texts if into is None else into)[text] = n
        self._text_chars += len(text)

    def _exact(self, text: str) -> int:
        n = self._word_count(text)
        return len(self._encode(text)) if n is None else n

    def count(self, text: str) -> int:
        self.calls += 1
        t = time.process_time()
        n = self._exact(text)
        self.seconds += time.process_time() - t
        return n

    def counts(self, texts: Sequence[str]) -> list[int]:
        """Exact counts of many texts (token statistics: not added to :attr:`seconds`); texts outside
        the fast path go to the tokenizer in one batched call."""
        out = [self._word_count(t) for t in texts]
        rest = [i for i, n in enumerate(out) if n is None]
        if rest:
            if self._backend is not None:
                encs = self._backend.encode_batch([texts[i] for i in rest], add_special_tokens=False)
                for i, e in zip(rest, encs, strict=True):
                    out[i] = len(e.ids)
            else:
                for i in rest:
                    out[i] = len(self._encode(texts[i]))
        return out  # type: ignore[return-value]

    def upper(self, text: str) -> int:
        if self._bounded:
            return 1 + len(text.encode("utf-8"))
        return self.count(text)

    def fits(self, text: str, n: int) -> bool:
        if self._bounded and len(text) < n and 1 + len(text.encode("utf-8")) <= n:
            return True
        if self._split is not None:
            self.calls += 1
            t = time.process_time()
            over = self._over(text, n)
            self.seconds += time.process_time() - t
            if over is not None:
                return not over
        return self.count(text) <= n

    def _over(self, text: str, n: int) -> bool | None:
        """Whether ``text`` has more than ``n`` tokens (see :meth:`_upto`); None outside the fast path."""
        total = self._upto(text, n)
        return None if total is None else total > n

    def _upto(self, text: str, n: int) -> int | None:
        """The count of ``text`` when it is at most ``n``; else a count over ``n`` of a prefix of its
        pre-tokens (a lower bound: a text far over its budget, such as an image of hex colours tens
        of thousands of characters long, is counted only until it passes ``n``); None outside the
        fast path.

        The text is counted in pieces of about _PIECE characters, each ending where a pre-token must
        end whatever follows (:data:`_PIECE_END`), so each piece splits alone as it does within the
        text (``findall``'s ``endpos`` ends the string there).
        """
        long = len(text) >= _TEXT_CACHE_MIN
        if long:
            known = self._texts.get(text)
            if known is not None:
                return known
            least = self._lower.get(text)
            if least is not None and least > n:
                return least
        if not self._safe(text) or (self._has_added and self._has_added.search(text)):
            return None
        words, split, size = self._words, self._split.findall, len(text)
        words.age()
        total = pos = 0
        while pos < size:
            end = size
            if size - pos > 2 * _PIECE:
                m = _PIECE_END.search(text, pos + _PIECE)
                if m is not None:
                    end = m.end()
            total += sum(map(words.__getitem__, split(text, pos, end)))
            pos = end
            if total > n and pos < size:
                if long:
                    self._remember(text, total, self._lower)  # a truncation asks again
                return total
        if long:
            self._remember(text, total)
        return total

    def joined(self, pieces: Sequence[str], sep: str) -> Joined:
        """Budget checks of texts joined with ``sep`` from ``pieces`` (see :class:`Joined`)."""
        return Joined(self, pieces, sep)

    def _separator_count(self, sep: str) -> int | None:
        """Tokens of ``sep`` between two pieces, when counts of such joins are additive; else None.

        With GPT-2's pattern no pre-token runs from a non-space character into whitespace, and a
        whitespace run that ends in a character other than a space (``\\n``, ``\\t``, ``\\r``) ends
        a pre-token before the next non-space character (only a plain space joins the word after
        it, `` ?\\p{L}+``). So when a piece ends and the next starts with a non-whitespace character,
        the joined text's pre-tokens are the first piece's, the separator's, then the second
        piece's, and its count is the sum (the BPE model encodes pre-tokens one by one). The
        separator's share is measured once between two letters.
        """
        if sep not in self._separators:
            ok = (self._split is not None and sep != "" and all(c in "\t\n\r" for c in sep)
                  and not any(c in a for a in self._added for c in sep))
            self._separators[sep] = (len(self._encode(f"a{sep}a")) - 2 * len(self._encode("a"))) if ok else -1
        n = self._separators[sep]
        return None if n < 0 else n

    def _cut(self, text: str, n: int) -> int | None:
        """Where the tokenizer's ``n``-th token of ``text`` ends (its offset mapping), from cached
        pre-token counts: only the pre-token holding that token is tokenized, on its own (the BPE
        model and the offsets' trimming see one pre-token at a time, so its tokens and their offsets
        within it are the same as in the whole text). None outside the fast path."""
        if self._split is None or not self._safe(text) or (self._has_added and self._has_added.search(text)):
            return None
        # The pre-tokens of a window that holds the n-th token (first 6 characters a token, the usual
        # is ~4; then 24; then the whole text): every match but the window's last is the whole text's
        # (only that one can run on past the window's end), and the matches cover the text end to end.
        # Pre-tokens past the cut are mostly never encoded.
        size = len(text)
        for end in (min(size, 6 * n + 64), min(size, 24 * n + 64), size):
            toks = self._split.findall(text, 0, end)
            if end < size:
                toks.pop()
            counts = list(map(self._words.__getitem__, toks))
            upto = list(accumulate(counts))
            k = bisect_left(upto, n)  # the pre-token holding the n-th token
            if k < len(upto):
                break
            if end == size:
                return None  # fewer than n tokens
        word, before = toks[k], upto[k] - counts[k]
        enc = self._backend.encode(word, add_special_tokens=False)
        if len(enc.ids) != counts[k]:  # the pre-token re-split differently on its own: ask the tokenizer
            return None
        return sum(map(len, toks[:k])) + enc.offsets[n - 1 - before][1]

    def truncate(self, text: str, n: int) -> str:
        if n <= 0:
            return ""
        if self.fits(text, n):
            return text
        cut = len(text)
        if getattr(self.tokenizer, "is_fast", False):
            fast = self._cut(text, n)
            if fast is not None:
                cut = fast
            else:
                enc = self.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
                cut = enc["offset_mapping"][n - 1][1]
        out = text[:cut]
        # Re-tokenizing a prefix can merge differently; shrink until the count really holds.
        while out and not self.fits(out, n):
            out = out[: max(0, len(out) - max(1, len(out) // 50))]
        return out


def _is_gpt2_byte_level(backend: Any) -> bool:
    """Whether ``backend`` splits text exactly as GPT-2's byte-level BPE does (see HFCounter)."""
    import json

    try:
        pre = json.loads(backend.pre_tokenizer.__getstate__()) if backend.pre_tokenizer is not None else {}
    except (TypeError, ValueError, AttributeError):
        return False
    return (pre.get("type") == "ByteLevel" and pre.get("use_regex", True) is True
            and pre.get("add_prefix_space") is False and type(backend.model).__name__ == "BPE"
            and not getattr(backend.model, "dropout", None))


def _edge_safe(piece: str, added: tuple[str, ...]) -> bool:
    # ASCII and not whitespace at both ends: no engine's \s holds such a character. A piece may not
    # start with an added token's text: the tokenizer splits added tokens out before pre-tokenizing,
    # which leaves the separator before it a whitespace run of its own (``0\n\n<|im_start|>`` is
    # 3 tokens, not 1 + 2 + 1).
    return bool(piece) and piece[0].isascii() and piece[-1].isascii() and not piece[0].isspace() \
        and not piece[-1].isspace() and not (added and piece.startswith(added))


class Joined:
    """Budget checks of ``sep.join(pieces[k] for k in which)`` for varying ``which``, answering as
    :meth:`HFCounter.fits` of the joined text would: the same ``1 + bytes`` bound first, then the
    exact count, from each piece's count (measured at most once, and only while the bound from the
    others' bytes does not settle it) where counts are additive (:meth:`HFCounter._separator_count`),
    else by counting the joined text."""

    def __init__(self, counter: HFCounter, pieces: Sequence[str], sep: str) -> None:
        self.counter, self.pieces, self.sep = counter, pieces, sep
        self._bytes = [len(p.encode("utf-8")) for p in pieces]
        self._sep_bytes = len(sep.encode("utf-8"))
        self._sep_tokens = counter._separator_count(sep) if counter._bounded else None
        self._counts: dict[int, int] = {}  # exact counts of pieces
        self._least: dict[int, int] = {}  # lower bounds of pieces counted only in part

    def fits(self, which: Sequence[int], n: int) -> bool:
        joints = max(0, len(which) - 1)
        if self.counter._bounded and 1 + sum(map(self._bytes.__getitem__, which)) + joints * self._sep_bytes <= n:
            return True  # the bound of HFCounter.fits (1 + bytes >= characters, so len(text) < n holds)
        if self._sep_tokens is not None and all(_edge_safe(self.pieces[k], self.counter._added) for k in which):
            # The joined count is the sum of the pieces' counts. Pieces not counted yet are bounded
            # by 1 + their bytes; the largest are counted first until the bound fits or all are
            # counted (then it is the exact count). Long prompts mostly fit well within budget, so
            # one or two pieces are usually enough. A piece is counted only until it alone takes the
            # sum over n (an exemplar far over the budget, such as an image of hex colours, is then
            # known to be over after a few thousand characters): what was counted is a lower bound.
            counts, least, counter = self._counts, self._least, self.counter
            known = joints * self._sep_tokens + sum(counts[k] for k in which if k in counts)  # exact so far
            pending = sorted((k for k in which if k not in counts), key=self._bytes.__getitem__, reverse=True)
            if least and known + sum(least.get(k, 0) for k in pending) > n:
                return False
            bound = known + sum(1 + self._bytes[k] for k in pending)
            if bound > n and pending:
                t = time.process_time()
                try:
                    for k in pending:
                        counter.calls += 1
                        c = counter._upto(self.pieces[k], n - known)
                        if c is None:
                            c = counter._exact(self.pieces[k])
                        elif c > n - known:  # over n with this piece alone (c may be a lower bound)
                            least[k] = max(c, least.get(k, 0))
                            return False
                        counts[k] = c
                        known += c
                        bound -= 1 + self._bytes[k] - c
                        if bound <= n:
                            break
                finally:
                    counter.seconds += time.process_time() - t
            return bound <= n
        return self.counter.fits(self.sep.join(self.pieces[k] for k in which), n)


def make_counter(tokenizer: Any) -> TokenCounter | None:
    """A counter for ``tokenizer``: None stays None, a counter is kept, an HF tokenizer is wrapped."""
    if tokenizer is None:
        return None
    if hasattr(tokenizer, "count") and hasattr(tokenizer, "truncate"):
        return tokenizer
    return HFCounter(tokenizer)
