"""Shared-prefix attention equals attention over [prefix; row] computed the plain way, as a kernel
and inside HFLM scoring on a tiny random Llama (grouped-query heads)."""

from __future__ import annotations

import pytest
import torch

from flanlab.inference import LoglikelihoodRequest, ModelSpec
from flanlab.inference import prefix_attention as pa
from flanlab.inference.hf import HFLM
from flanlab.inference.loading import load_pretrained


class _Layer:
    layer_idx = 0


class _Prefix:
    def __init__(self, k, v) -> None:
        self.layers = [(k, v)]


def _reference(q, k_own, v_own, k_pre, v_pre, scale):
    """softmax over [prefix; own tokens] with a causal mask on the own part, heads expanded."""
    batch, heads, q_len, _ = q.shape
    group = heads // k_own.shape[1]
    keys = torch.cat([k_pre.expand(batch, -1, -1, -1), k_own], dim=2).repeat_interleave(group, dim=1)
    values = torch.cat([v_pre.expand(batch, -1, -1, -1), v_own], dim=2).repeat_interleave(group, dim=1)
    p = k_pre.shape[2]
    mask = torch.ones(q_len, p + q_len, dtype=torch.bool).tril(p)
    out = torch.nn.functional.scaled_dot_product_attention(q, keys, values, attn_mask=mask, scale=scale)
    return out.transpose(1, 2)


def test_split_attention_equals_plain():
    torch.manual_seed(0)
    batch, heads, kv_heads, q_len, p, dim = 3, 6, 2, 7, 11, 16
    q = torch.randn(batch, heads, q_len, dim)
    k_own, v_own = torch.randn(batch, kv_heads, q_len, dim), torch.randn(batch, kv_heads, q_len, dim)
    k_pre, v_pre = torch.randn(1, kv_heads, p, dim), torch.randn(1, kv_heads, p, dim)
    out, weights = pa.prefix_attention(_Layer(), q, k_own, v_own, None, scaling=0.3,
                                       flanlab_prefix=_Prefix(k_pre, v_pre))
    assert weights is None
    ref = _reference(q, k_own, v_own, k_pre, v_pre, 0.3)
    assert out.shape == (batch, q_len, heads, dim)
    assert torch.allclose(out, ref, atol=1e-5)


def test_attention_needs_the_prefix():
    q = torch.zeros(1, 2, 3, 4)  # values do not matter (an error), and no global RNG draw
    with pytest.raises(RuntimeError, match="flanlab_prefix"):
        pa.prefix_attention(_Layer(), q, q, q, None)


PREFIX = ("The following are multiple choice questions (with answers) about anatomy.\n\n"
          "Question: Which bone is the longest? (A) femur (B) ulna (C) rib (D) skull\nAnswer: A\n\n") * 2


def test_hflm_scores_equal_cache_copies(tiny_llama_dir, monkeypatch):
    loaded = load_pretrained(ModelSpec(name=str(tiny_llama_dir)))
    assert loaded.model.config.num_key_value_heads < loaded.model.config.num_attention_heads
    reqs = [LoglikelihoodRequest(PREFIX + f"Question: what is {i} plus {i * 7}?" + " really" * i + "\nAnswer:", opt)
            for i in range(6) for opt in (" A", " B", " the answer is 3")]
    calls = []
    real = pa.prefix_attention

    def counting(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    from transformers import AttentionInterface

    monkeypatch.setitem(AttentionInterface._global_mapping, pa.ATTENTION_NAME, counting)
    shared = HFLM(loaded, batch_size=4, show_progress=False).loglikelihood(reqs)
    assert calls, "the shared-prefix attention did not run"
    assert loaded.model.config._attn_implementation != pa.ATTENTION_NAME  # restored after scoring
    copies = HFLM(loaded, batch_size=4, shared_prefix_attention=False, show_progress=False).loglikelihood(reqs)
    plain = HFLM(loaded, batch_size=1, prefix_reuse=False, show_progress=False).loglikelihood(reqs)
    for a, b, c in zip(shared, copies, plain, strict=True):
        assert a.logprob == pytest.approx(b.logprob, abs=1e-4)
        assert a.logprob == pytest.approx(c.logprob, abs=1e-4)
        assert a.is_greedy == b.is_greedy == c.is_greedy


def test_not_eligible_past_a_sliding_window_or_off_the_kernel(tiny_llama_dir):
    loaded = load_pretrained(ModelSpec(name=str(tiny_llama_dir)))
    lm = HFLM(loaded, batch_size=2, show_progress=False)
    _, cache = lm.prefix_state(tuple(lm.encode(PREFIX)))
    assert pa.eligible(loaded.model, cache, 100)
    loaded.model.config.sliding_window = 50
    try:
        assert not pa.eligible(loaded.model, cache, 100)
    finally:
        loaded.model.config.sliding_window = None
    cache.layers[0].keys = cache.layers[0].keys.double()  # not a dtype the CPU flash kernel takes
    assert not pa.eligible(loaded.model, cache, 100)


def test_grouped_decoding_attention_equals_plain():
    torch.manual_seed(1)
    rows, heads, kv_heads, own, dim = 5, 6, 2, 9, 16
    q = torch.randn(rows, heads, 1, dim)
    k_own, v_own = torch.randn(rows, kv_heads, own, dim), torch.randn(rows, kv_heads, own, dim)
    mask = torch.ones(rows, own, dtype=torch.bool)
    mask[0, 2:5] = False  # a hole: the pads between a prompt and its generated tokens
    mask[3, :4] = False
    prefixes = [(torch.randn(1, kv_heads, p, dim), torch.randn(1, kv_heads, p, dim)) for p in (7, 3)]
    spans = [(0, 2, _Prefix(*prefixes[0])), (2, 3, None), (3, 5, _Prefix(*prefixes[1]))]
    out, _ = pa.prefix_attention(_Layer(), q, k_own, v_own, None, scaling=0.25,
                                 flanlab_prefix=pa.PrefixGroups(spans, mask))
    assert out.shape == (rows, 1, heads, dim)
    for start, end, prefix in spans:
        for r in range(start, end):
            keys, values = k_own[r:r + 1, :, mask[r]], v_own[r:r + 1, :, mask[r]]
            if prefix is not None:
                keys = torch.cat([prefix.layers[0][0], keys], dim=2)
                values = torch.cat([prefix.layers[0][1], values], dim=2)
            ref = torch.nn.functional.scaled_dot_product_attention(
                q[r:r + 1], keys.repeat_interleave(heads // kv_heads, dim=1),
                values.repeat_interleave(heads // kv_heads, dim=1), scale=0.25)
            assert torch.allclose(out[r:r + 1], ref.transpose(1, 2), atol=1e-5)


def test_generation_decodes_on_shared_prefixes_and_equals_cache_copies(tiny_llama_dir, monkeypatch):
    from flanlab.inference import GenerateRequest

    loaded = load_pretrained(ModelSpec(name=str(tiny_llama_dir)))
    other = "Answer each question with a number, thinking step by step first.\n\n" * 3
    prompts = ([PREFIX + f"Question: what is {i} plus {i * 7}?" + " really" * i + "\nAnswer:" for i in range(4)]
               + [other + f"Q: {i} times two?\nA:" for i in range(3)] + ["Q:"])
    reqs = [GenerateRequest(p, max_new_tokens=10) for p in prompts]
    reqs.append(GenerateRequest(prompts[5], max_new_tokens=7, temperature=0.9, n=3, seed=4))
    plain = HFLM(loaded, batch_size=1, prefix_reuse=False, show_progress=False)
    ref = dict(plain.generate_tokens(reqs))
    # A stop sequence from one greedy output makes that row leave the batch early.
    text = plain.finish_text(ref[1][0], ())
    reqs[1] = GenerateRequest(prompts[1], max_new_tokens=10, stop=(text[3:6],))
    ref[1] = dict(plain.generate_tokens([reqs[1]]))[0]
    calls = []
    real = pa._grouped

    def counting(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(pa, "_grouped", counting)
    shared = dict(HFLM(loaded, batch_size=16, show_progress=False).generate_tokens(reqs))
    assert calls, "decoding did not run on shared-prefix attention"
    assert loaded.model.config._attn_implementation != pa.ATTENTION_NAME
    copies = dict(HFLM(loaded, batch_size=16, shared_prefix_attention=False, show_progress=False)
                  .generate_tokens(reqs))
    assert shared == copies == ref
