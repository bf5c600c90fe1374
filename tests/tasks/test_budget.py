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
