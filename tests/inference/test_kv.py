"""shared_cache: batches run on views of a kept prefix cache, which stays bit-for-bit as it was."""

from __future__ import annotations

import copy

import torch

from flanlab.inference import ModelSpec
from flanlab.inference.kv import cache_arg, output_cache, shared_cache
from flanlab.inference.loading import load_pretrained


def test_views_leave_the_prefix_intact_and_equal_a_deep_copy(tiny_llama_dir):
    model = load_pretrained(ModelSpec(name=str(tiny_llama_dir))).model
    base = model.base_model
    with torch.inference_mode():
        prefix = output_cache(base(input_ids=torch.tensor([[5, 6, 7, 8, 9]]), use_cache=True))
        before = [(layer.keys.clone(), layer.values.clone()) for layer in prefix.layers]
        suffix = torch.tensor([[11, 12, 13], [14, 15, 16], [17, 18, 19]])
        ref_cache = copy.deepcopy(prefix)
        ref_cache.batch_repeat_interleave(3)
        ref = base(input_ids=suffix, use_cache=True, **{cache_arg(base): ref_cache}).last_hidden_state
        views = shared_cache(prefix, 3)
        assert views.layers[0].keys.data_ptr() == prefix.layers[0].keys.data_ptr()  # nothing copied up front
        got = base(input_ids=suffix, use_cache=True, **{cache_arg(base): views}).last_hidden_state
    assert torch.equal(got, ref)
    assert views.get_seq_length() == 8 and prefix.get_seq_length() == 5
    for layer, (k, v) in zip(prefix.layers, before, strict=True):
        assert torch.equal(layer.keys, k) and torch.equal(layer.values, v)
