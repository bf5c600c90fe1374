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


def test_merged_caches_with_room_decode_like_separate_caches(tiny_llama_dir):
    from flanlab.inference.kv import merge_caches, mergeable

    model = load_pretrained(ModelSpec(name=str(tiny_llama_dir))).model
    kw = cache_arg(model)
    with torch.inference_mode():
        a = output_cache(model(input_ids=torch.tensor([[5, 6, 7, 8, 9], [9, 8, 7, 6, 5]]), use_cache=True))
        b = output_cache(model(input_ids=torch.tensor([[11, 12, 13]]), use_cache=True))
        ref_a = model(input_ids=torch.tensor([[3], [4]]), **{kw: copy.deepcopy(a)}, use_cache=True).logits
        ref_b = model(input_ids=torch.tensor([[4]]), **{kw: copy.deepcopy(b)}, use_cache=True).logits
        assert mergeable([a, b])
        merged, pads = merge_caches([a, b], room=1)
        assert pads == [0, 2] and merged.get_seq_length() == 5
        mask = torch.tensor([[1] * 6, [1] * 6, [0, 0, 1, 1, 1, 1]])
        pos = torch.tensor([[5], [5], [3]])
        got = model(input_ids=torch.tensor([[3], [4], [4]]), attention_mask=mask, position_ids=pos,
                    **{kw: merged}, use_cache=True).logits
        assert merged.get_seq_length() == 6
        # past the room the layer grows; dropping a row keeps the others
        merged.batch_select_indices(torch.tensor([0, 2]))
        more = model(input_ids=torch.tensor([[7], [7]]), attention_mask=torch.cat([mask[[0, 2]], torch.ones(2, 1,
                     dtype=mask.dtype)], dim=1), position_ids=pos[[0, 2]] + 1, **{kw: merged},
                     use_cache=True).logits
        seq_a = model(input_ids=torch.tensor([[5, 6, 7, 8, 9, 3, 7]])).logits[:, -1]
        seq_b = model(input_ids=torch.tensor([[11, 12, 13, 4, 7]])).logits[:, -1]
    assert torch.allclose(got[:2], ref_a, atol=1e-5) and torch.allclose(got[2:], ref_b, atol=1e-5)
    assert merged.get_seq_length() == 7
    assert torch.allclose(more[0, -1], seq_a[0], atol=1e-4) and torch.allclose(more[1, -1], seq_b[0], atol=1e-4)
    # the kept caches were not written into
    assert a.get_seq_length() == 5 and b.get_seq_length() == 3
