"""A model switched to per-example attention is stock sdpa wherever no pieces are given: padded
generation and HFLM scoring (what keep-best evaluation runs on the training model) are unchanged."""

from __future__ import annotations

import pytest
import torch

from flanlab.inference import GenerateRequest, LoglikelihoodRequest, ModelSpec
from flanlab.inference.hf import HFLM
from flanlab.inference.loading import load_pretrained
from flanlab.training.segment_attention import (
    ATTENTION_NAME,
    Segments,
    eligible,
    segment_attention,
    use_segment_attention,
)

PREFIX = "Question: which is larger, 3 or 7?\nAnswer: 7\n\n" * 3


def test_switched_model_scores_and_generates_as_before(tiny_llama_dir):
    loaded = load_pretrained(ModelSpec(name=str(tiny_llama_dir)))
    reqs = [LoglikelihoodRequest(PREFIX + f"Question: which is larger, {i} or {i + 3}?\nAnswer:", f" {i + 3}")
            for i in range(5)] + [LoglikelihoodRequest("short", " one"), LoglikelihoodRequest("a bit longer context", " x")]
    gens = [GenerateRequest("Question: 1 + 1?\nAnswer:", max_new_tokens=6),
            GenerateRequest("A longer prompt, so the batch is padded. Question: 2 + 2?\nAnswer:", max_new_tokens=6)]
    before = HFLM(loaded, batch_size=3, show_progress=False)
    scores, texts = before.loglikelihood(reqs), before.generate(gens)
    assert use_segment_attention(loaded.model)
    assert loaded.model.config._attn_implementation == ATTENTION_NAME
    after = HFLM(loaded, batch_size=3, show_progress=False)
    for a, b in zip(scores, after.loglikelihood(reqs), strict=True):
        assert a.logprob == pytest.approx(b.logprob, abs=1e-5)
    assert after.generate(gens) == texts
    assert loaded.model.config._attn_implementation == ATTENTION_NAME


def test_pieces_must_cover_the_batch():
    q = torch.zeros(1, 2, 5, 4)  # values do not matter (a shape error), and no global RNG draw
    with pytest.raises(ValueError, match="covers 4 positions"):
        segment_attention(None, q, q, q, None, flanlab_segments=Segments((2, 2)))


def test_t5_is_not_eligible(tiny_t5_dir):
    from transformers import AutoModelForSeq2SeqLM

    assert not eligible(AutoModelForSeq2SeqLM.from_pretrained(tiny_t5_dir))
