"""The bound-first budget checks of HFCounter answer exactly what counting every text would."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flanlab.tasks.budget import HFCounter

SMOLLM2 = Path.home() / ".cache" / "flanlab" / "models" / "smollm2-135m"
# UTF-8-encodable text (no lone surrogates, which no data file can hold), multi-byte scripts included.
TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=300)


def _counters(tiny_llama_dir) -> list[HFCounter]:
    from transformers import AutoTokenizer

    out = [HFCounter(AutoTokenizer.from_pretrained(str(tiny_llama_dir)))]
    if (SMOLLM2 / "tokenizer.json").is_file():  # the shipped configs' tokenizer, when cached
        out.append(HFCounter(AutoTokenizer.from_pretrained(str(SMOLLM2))))
    return out


@pytest.fixture(scope="module")
def counters(tiny_llama_dir):
    return _counters(tiny_llama_dir)


@settings(max_examples=150, deadline=None)
@given(text=TEXT, slack=st.integers(-3, 3))
def test_fits_and_upper_agree_with_exact_counts(counters, text, slack):
    for counter in counters:
        exact = len(counter.tokenizer(text, add_special_tokens=False)["input_ids"])
        assert counter.count(text) == exact
        assert counter.upper(text) >= exact
        n = max(0, exact + slack)
        assert counter.fits(text, n) == (exact <= n)


def test_short_texts_need_no_tokenizer_call(counters):
    for counter in counters:
        before = counter.calls
        assert counter.fits("Premise: a cat sat.\nOPTIONS:\n- yes\n- no", 1920)
        if counter._bounded:
            assert counter.calls == before
        assert not counter.fits("word " * 3000, 1920)
        assert counter.calls > before


def _gpt2_counters(counters) -> list[HFCounter]:
    fast = [c for c in counters if c._split is not None]
    if not fast:
        pytest.skip("no GPT-2-style byte-level tokenizer cached (smollm2-135m: `flanlab models`)")
    return fast


@settings(max_examples=150, deadline=None)
@given(pieces=st.lists(TEXT, min_size=1, max_size=4), sep=st.sampled_from(["\n\n", "\n", " ", "\t\n", ""]),
       slack=st.integers(-3, 3))
def test_joined_checks_agree_with_counting_the_joined_text(counters, pieces, sep, slack):
    for counter in counters:
        joined = counter.joined(pieces, sep)
        for which in ([*range(len(pieces))], [len(pieces) - 1], [0, len(pieces) - 1]):
            exact = len(counter.tokenizer(sep.join(pieces[k] for k in which), add_special_tokens=False)["input_ids"])
            n = max(0, exact + slack)
            assert joined.fits(which, n) == (exact <= n)


def test_pre_token_counts_equal_the_tokenizer_on_real_data(counters, shared_data):
    # Flan CoT rows (the first 1,000 of each file), alone and joined five at a time as few-shot
    # prompts are: the cached
    # pre-token counts (and the additive counts of joined texts) equal the tokenizer's.
    for counter in _gpt2_counters(counters):
        fast = 0
        for path in sorted((shared_data / "flan_cot").glob("*.tsv")):
            lines = path.read_text(encoding="utf-8").split("\n")[:1000]
            rows = [r.replace("\\n", "\n").strip() for r in lines if r.strip()]
            for i in range(0, len(rows), 5):
                group = rows[i:i + 5]
                for text in [*group, "\n\n".join(group)]:
                    n = counter._word_count(text)
                    if n is not None:
                        fast += 1
                        assert n == len(counter._encode(text)), text[:200]
                joined = counter.joined(group, "\n\n")
                exact = len(counter._encode("\n\n".join(group)))
                assert joined.fits(range(len(group)), exact) and not joined.fits(range(len(group)), exact - 1)
        assert fast > 5_000  # the fast path is the common case on this data


# Text over the probed characters (ASCII, Latin, punctuation, math), where cached pre-token counts
# answer; contractions and runs of mixed whitespace are the pattern's corner cases.
PROBED_TEXT = st.lists(st.one_of(st.sampled_from(["'s", "'re", "'ll", " ", "  ", "\n", "\n\n", "\t", "\r\n", " \n "]),
                                 st.characters(min_codepoint=0x20, max_codepoint=0x24F),
                                 st.characters(min_codepoint=0x2000, max_codepoint=0x22FF)),
                       max_size=60).map("".join)


@settings(max_examples=300, deadline=None)
@given(text=PROBED_TEXT)
def test_cached_pre_token_counts_equal_the_tokenizer(counters, text):
    _assert_cached_counts_exact(counters, text)


def _assert_cached_counts_exact(counters, text):
    for counter in _gpt2_counters(counters):
        n = counter._word_count(text)
        exact = len(counter.tokenizer(text, add_special_tokens=False)["input_ids"])
        assert n is None or n == exact
        assert counter.count(text) == exact


# Pieces built to stress the junctions: whitespace of every kind at the ends, added tokens, contractions,
# digits, punctuation and multi-byte letters next to the separator.
EDGE = st.lists(st.sampled_from(["a", "s", "'", "'s", " ", "\n", "\t", "\u00a0", "\u2028", "\x1c", "7", "?!",
                                 "é", "文", "<|im_start|>", "<|endoftext|>", "<s>", "word", " word", "\n\n"]),
                max_size=6).map("".join)
PIECE = st.one_of(TEXT, EDGE, st.tuples(TEXT, EDGE).map("".join), st.tuples(EDGE, TEXT).map("".join))


@settings(max_examples=200, deadline=None)
@given(pieces=st.lists(PIECE, min_size=1, max_size=4), sep=st.sampled_from(["\n\n", "\n", " ", "\n\n\n"]),
       slack=st.integers(-2, 2))
def test_joined_checks_agree_at_awkward_junctions(counters, pieces, sep, slack):
    for counter in counters:
        joined = counter.joined(pieces, sep)
        which = [*range(len(pieces))]
        exact = len(counter.tokenizer(sep.join(pieces), add_special_tokens=False)["input_ids"])
        n = max(0, exact + slack)
        assert joined.fits(which, n) == (exact <= n)
        assert joined.fits(which, n) == (exact <= n)  # counts remembered from the first call


# Text in other scripts (Greek, Cyrillic, Arabic, Devanagari, CJK, kana, Hangul, combining marks, emoji):
# their characters' classes are confirmed by the tokenizer's pre-tokenizer block by block on first sight.
SCRIPT_TEXT = st.lists(st.one_of(st.sampled_from([" ", "  ", "\n", "\n\n", "\t", "'s", ",", "。", "1", "a"]),
                                 *(st.characters(min_codepoint=lo, max_codepoint=hi) for lo, hi in (
                                     (0x300, 0x52F), (0x600, 0x6FF), (0x900, 0x97F), (0x3000, 0x30FF),
                                     (0x4E00, 0x9FFF), (0xAC00, 0xD7A3), (0xFF00, 0xFFEF), (0x1F300, 0x1FAFF)))),
                       max_size=60).map("".join)


@settings(max_examples=300, deadline=None)
@given(text=SCRIPT_TEXT)
def test_cached_pre_token_counts_in_other_scripts_equal_the_tokenizer(counters, text):
    _assert_cached_counts_exact(counters, text)


def test_other_scripts_take_the_fast_path(counters):
    # BIG-bench's multilingual tasks: Cyrillic, CJK, kana, Hangul, Devanagari, Arabic digits, emoji.
    for counter in _gpt2_counters(counters):
        for text in ["Кошка сидит на окне.", "他说：“我们明天去北京。”", "東京は日本の首都です。", "안녕하세요, 세계!",
                     "नमस्ते दुनिया", "٣ + ٤ = ٧", "🙂 ⇒ happy 🎉", "e\u0301te\u0301 \u00a0x"]:
            n = counter._word_count(text)
            assert n is not None, text
            assert n == len(counter.tokenizer(text, add_special_tokens=False)["input_ids"]), text
        # Characters the tokenizer classes unlike Python (\x1c-\x1f: whitespace to Python only) stay out.
        assert counter._word_count("a\x1cb") is None and counter.count("a\x1cb") == len(counter._encode("a\x1cb"))


def _assert_cut_at_the_tokenizers_offset(counter, text: str, n: int):
    """The cut of ``text`` after ``n`` tokens found from cached counts (None: not found that way) is
    the end of the tokenizer's ``n``-th token, and there is none when the text is shorter; returns
    the tokenizer's encoding."""
    cut = counter._cut(text, n)
    enc = counter.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    if len(enc["input_ids"]) < n:
        assert cut is None
    elif cut is not None:
        assert cut == enc["offset_mapping"][n - 1][1]
    return enc


@settings(max_examples=200, deadline=None)
@given(text=st.one_of(PROBED_TEXT, SCRIPT_TEXT, TEXT, st.lists(PIECE, max_size=5).map("\n\n".join)),
       n=st.integers(1, 40))
def test_truncation_cut_from_cached_counts_equals_the_tokenizers_offsets(counters, text, n):
    for counter in _gpt2_counters(counters):
        _assert_cut_at_the_tokenizers_offset(counter, text, n)


@settings(max_examples=200, deadline=None)
@given(parts=st.lists(st.one_of(PIECE, SCRIPT_TEXT, PROBED_TEXT), min_size=1, max_size=12),
       seps=st.lists(st.sampled_from(["\n", "a\nb", "\n\n", " \n", "\n ", "x\n\ny", "'s\ns'"]), min_size=12, max_size=12),
       slack=st.integers(-4, 4))
def test_counting_in_pieces_until_over_the_budget_agrees_with_the_tokenizer(counters, parts, seps, slack):
    import flanlab.tasks.budget as budget

    text = "".join(p + s for p, s in zip(parts, seps, strict=False))
    old = budget._PIECE
    budget._PIECE = 3  # pieces of a few characters: every newline junction is exercised
    try:
        for counter in _gpt2_counters(counters):
            exact = len(counter.tokenizer(text, add_special_tokens=False)["input_ids"])
            n = max(0, exact + slack)
            over = counter._over(text, n)
            assert over is None or over == (exact > n)
            assert counter.fits(text, n) == (exact <= n)
    finally:
        budget._PIECE = old


@settings(max_examples=150, deadline=None)
@given(texts=st.lists(st.one_of(PROBED_TEXT, SCRIPT_TEXT, st.lists(PIECE, max_size=5).map("\n\n".join)),
                      min_size=1, max_size=6),
       slack=st.integers(-3, 3))
def test_counts_stay_exact_across_cache_generations_and_remembered_texts(counters, texts, slack):
    import flanlab.tasks.budget as budget

    # Tiny limits: the pre-token cache changes generation every few texts, every text's count is
    # remembered and the remembered texts are forgotten often; each text is asked about twice.
    old = budget._WORD_CACHE_MAX, budget._TEXT_CACHE_MIN, budget._TEXT_CACHE_CHARS
    budget._WORD_CACHE_MAX, budget._TEXT_CACHE_MIN, budget._TEXT_CACHE_CHARS = 4, 1, 80
    try:
        for counter in _gpt2_counters(counters):
            for text in [*texts, *texts]:
                exact = len(counter.tokenizer(text, add_special_tokens=False)["input_ids"])
                n = max(0, exact + slack)
                assert counter._word_count(text) in (None, exact)
                over = counter._over(text, n)
                assert over is None or over == (exact > n)
                assert counter.count(text) == exact and counter.fits(text, n) == (exact <= n)
    finally:
        budget._WORD_CACHE_MAX, budget._TEXT_CACHE_MIN, budget._TEXT_CACHE_CHARS = old


@settings(max_examples=150, deadline=None)
@given(text=st.lists(st.one_of(PROBED_TEXT, SCRIPT_TEXT, PIECE), min_size=3, max_size=8).map(" ".join),
       n=st.integers(1, 6))
def test_truncation_cut_from_a_window_of_the_text_equals_the_tokenizers_offsets(counters, text, n):
    # Texts much longer than 16 characters per token asked for: the cut is found in a window of the text.
    for counter in _gpt2_counters(counters):
        enc = _assert_cut_at_the_tokenizers_offset(counter, text, n)
        # truncate as the tokenizer alone would: cut at the n-th token's end, shrink until it fits.
        def tokens(t, tok=counter.tokenizer):
            return len(tok(t, add_special_tokens=False)["input_ids"])

        want = text if len(enc["input_ids"]) <= n else text[:enc["offset_mapping"][n - 1][1]]
        while want and tokens(want) > n:
            want = want[: max(0, len(want) - max(1, len(want) // 50))]
        assert counter.truncate(text, n) == want


# ASCII with a class change every few characters (hex colour images, base64, code): the pieces of a long
# text end there (budget._PIECE_END), and the quote (contractions) must not be taken for such an end.
ASCII_MIX = st.text(alphabet="#af09'!-(Zs \n\t", max_size=120)


@settings(max_examples=200, deadline=None)
@given(pieces=st.lists(st.one_of(ASCII_MIX, PIECE), min_size=1, max_size=4),
       sep=st.sampled_from(["\n\n", "\n"]), slack=st.integers(-40, 3))
def test_partial_counts_of_texts_far_over_the_budget_agree_with_the_tokenizer(counters, pieces, sep, slack):
    import flanlab.tasks.budget as budget

    old = budget._PIECE, budget._TEXT_CACHE_MIN
    budget._PIECE, budget._TEXT_CACHE_MIN = 3, 1  # pieces of a few characters; every text's bounds remembered
    try:
        for counter in _gpt2_counters(counters):
            for piece in pieces:
                exact = len(counter.tokenizer(piece, add_special_tokens=False)["input_ids"])
                n = max(0, exact + slack)
                got = counter._upto(piece, n)
                assert got is None or (got == exact if exact <= n else exact >= got > n)
                assert counter.fits(piece, n) == (exact <= n)
            # Joined checks with budgets from far under the joined count to just over it, on one
            # object: a lower bound found for one budget must not answer wrongly for the next.
            joined = counter.joined(pieces, sep)
            which = [*range(len(pieces))]
            exact = len(counter.tokenizer(sep.join(pieces), add_special_tokens=False)["input_ids"])
            for n in sorted({max(0, exact + slack), max(0, exact // 3), exact, exact - 1, exact + 1}):
                assert joined.fits(which, n) == (exact <= n)
                assert joined.fits(which[-1:], n) == (
                    len(counter.tokenizer(pieces[-1], add_special_tokens=False)["input_ids"]) <= n)
    finally:
        budget._PIECE, budget._TEXT_CACHE_MIN = old
