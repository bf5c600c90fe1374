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


# Parts built to stress the junctions: whitespace of every kind at the ends, added tokens, contractions,
# digits, punctuation and multi-byte letters next to the separator.
EDGE = st.lists(st.sampled_from(["a", "s", "'", "'s", " ", "\n", "\t", "\u00a0", "\u2028", "\x1c", "7", "?!",
                                 "é", "文", "<|im_start|>", "<|endoftext|>", "<s>", "word", " word", "\n\n"]),
                max_size=6).map("".join)
PART = st.one_of(TEXT, EDGE, st.tuples(TEXT, EDGE).map("".join), st.tuples(EDGE, TEXT).map("".join))


@settings(max_examples=200, deadline=None)
@given(parts=st.lists(PART, min_size=1, max_size=4), sep=st.sampled_from(["\n\n", "\n", " ", "\n\n\n"]),
       slack=st.integers(-2, 2))
def test_fits_joined_agrees_with_counting_the_joined_text(counters, parts, sep, slack):
    for counter in counters:
        counter._piece_counts.clear()
        exact = counter.count(sep.join(parts))
        n = max(0, exact + slack)
        assert counter.fits_joined(parts, sep, n) == (exact <= n)
        # Remembered part counts (from an earlier call) give the same answer.
        assert counter.fits_joined(parts, sep, n) == (exact <= n)


def test_piecewise_counts_only_for_byte_level_bpe_without_normalizer(counters):
    from transformers import AutoTokenizer

    gemma = Path.home() / ".cache" / "flanlab" / "models" / "gemma3-270m"
    if not (SMOLLM2 / "tokenizer.json").is_file():
        pytest.skip("smollm2-135m not cached (flanlab models)")
    smollm2 = HFCounter(AutoTokenizer.from_pretrained(str(SMOLLM2)))
    assert smollm2._splittable and "<|im_start|>" in smollm2._added
    # Long parts (over any bound) joined at <non-space>\n\n<non-space>: counted once each, exactly.
    parts = ["Q: " + "the cat sat on the mat. " * 40 + "A: yes", "Q: " + "2 + 2 = 4; " * 60 + "A: no", "Q: why?"]
    exact = smollm2.count("\n\n".join(parts))
    calls = smollm2.calls
    assert smollm2.fits_joined(parts, "\n\n", exact) and not smollm2.fits_joined(parts, "\n\n", exact - 1)
    assert smollm2.calls - calls == 3
    if (gemma / "tokenizer.json").is_file():  # SentencePiece-style (a normalizer): always counted whole
        assert not HFCounter(AutoTokenizer.from_pretrained(str(gemma)))._splittable


def _reference_truncate(counter, text, n):
    """Truncation as the tokenizer's own offsets give it (no remembered encoding)."""
    tok = counter.tokenizer
    if len(tok(text, add_special_tokens=False)["input_ids"]) <= n:
        return text
    out = text[: tok(text, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"][n - 1][1]]
    while out and len(tok(out, add_special_tokens=False)["input_ids"]) > n:
        out = out[: max(0, len(out) - max(1, len(out) // 50))]
    return out


@settings(max_examples=40, deadline=None)
@given(text=TEXT, n=st.integers(1, 40))
def test_truncate_reuses_the_counted_encoding_with_the_same_result(counters, text, n):
    for counter in counters:
        counter._piece_counts.clear()
        counter._last = None
        assert counter.truncate(text, n) == _reference_truncate(counter, text, n)
