"""Shared-prefix attention: a batch of continuations attends to one kept prefix without copying it.

The plain way to run a batch after a shared prefix hands every row the prefix's KV cache: each layer
then concatenates the prefix keys and values onto each row's own (a copy of the prefix per row and
per layer), repeats them for grouped-query heads (another copy), and runs attention with a mask,
because the queries sit at an offset the causal flag cannot express. On MMLU 5-shot the prefix is
~400 tokens and a question ~70, so those copies and the masked kernel are most of attention's cost.

Attention over [prefix; own tokens] splits exactly into two parts merged by their log-sum-exps:

- prefix part: every query of every row sees the whole prefix, so the rows and the query heads that
  share a key head fold into one long query block against the single prefix copy (no mask, no copy);
- own part: each row attends causally to its own tokens (the causal flag, no mask; right padding
  only ever follows real tokens).

``out = (out_p * exp(lse_p) + out_s * exp(lse_s)) / (exp(lse_p) + exp(lse_s))``. Both parts run in
PyTorch's CPU flash kernel, which returns the log-sum-exp. On other devices batches keep views of
the prefix cache (:mod:`flanlab.inference.kv`): this split has been measured on the CPU only.

It is wired in as a transformers attention function (``AttentionInterface``) that reads the prefix
through a forward keyword, so the model's own layers (projections, rotary embeddings, norms) run
unchanged; only model types whose attention is plain scaled dot-product are eligible.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["ATTENTION_NAME", "PLAIN_ATTENTION", "PrefixGroups", "PrefixKV", "eligible", "prefix_attention",
           "using_prefix_attention"]

ATTENTION_NAME = "flanlab_shared_prefix"

# Decoder-only families whose attention is softmax(q k^T * scaling) v, with no logit soft-capping,
# attention sinks or ALiBi: for these the split above is exact. (Gemma 3's sliding window is checked
# per call: it is exact while prefix + row fit in the window.)
PLAIN_ATTENTION = frozenset({"llama", "mistral", "qwen2", "qwen3", "gemma", "gemma3_text", "smollm3", "olmo2"})


class PrefixKV:
    """One prefix's keys and values per layer, each ``[1, kv_heads, prefix_len, head_dim]``."""

    def __init__(self, cache: Any) -> None:
        self.layers = [(layer.keys, layer.values) for layer in cache.layers]


class PrefixGroups:
    """Decoding rows of several prefixes at once: rows ``start:end`` of each span attend to that span's
    prefix (a :class:`PrefixKV`, or None: no prefix), and every row to its own cached tokens where
    ``own_mask`` (``[rows, own length]``, True = attend) says so. The kept prefixes are never copied
    into the rows' cache: a decoding step then reads each prefix once per group, not once per row."""

    def __init__(self, spans: list[tuple[int, int, PrefixKV | None]], own_mask: Any) -> None:
        self.spans = spans
        self.own_mask = own_mask


def eligible(model: Any, cache: Any, total_length: int) -> bool:
    """Whether a batch of ``model`` continuing ``cache`` for up to ``total_length`` positions can run
    on shared-prefix attention (CPU, float32 / bfloat16: the flash kernel's)."""
    import torch

    config = model.config
    if getattr(config, "model_type", None) not in PLAIN_ATTENTION:
        return False
    if getattr(config, "attn_logit_softcapping", None):
        return False
    window = getattr(config, "sliding_window", None)
    if window is not None and total_length > window:
        return False
    layers = getattr(cache, "layers", None)
    if not layers or any(getattr(layer, "keys", None) is None or layer.keys.dim() != 4 for layer in layers):
        return False
    keys = layers[0].keys
    if keys.device.type != "cpu" or keys.dtype not in (torch.float32, torch.bfloat16):
        return False
    return len(layers) == getattr(config, "num_hidden_layers", len(layers))


def _partial(query, key, value, *, causal: bool, scale: float):
    """Attention of ``query`` over ``key``/``value`` and its log-sum-exp per query ([..., q])."""
    import torch

    return torch.ops.aten._scaled_dot_product_flash_attention_for_cpu(query, key, value, 0.0, causal, scale=scale)


def prefix_attention(module: Any, query: Any, key: Any, value: Any, attention_mask: Any, dropout: float = 0.0,
                     scaling: float | None = None, flanlab_prefix: PrefixKV | None = None, **_: Any):
    """transformers attention function: ``query`` ``[B, H, q, d]`` attends to the shared prefix
    (``flanlab_prefix``) and causally to its own row's ``key``/``value`` ``[B, KV, q, d]``.
    Returns ``([B, q, H, d], None)`` as transformers' attention functions do."""
    import torch

    if flanlab_prefix is None:
        raise RuntimeError(f"attention '{ATTENTION_NAME}' needs the prefix (flanlab_prefix=...) in the forward call")
    if isinstance(flanlab_prefix, PrefixGroups):
        return _grouped(module, query, key, value, flanlab_prefix, scaling)
    batch, heads, q_len, dim = query.shape
    kv_heads = key.shape[1]
    group = heads // kv_heads
    scale = scaling if scaling is not None else dim ** -0.5
    prefix_k, prefix_v = flanlab_prefix.layers[module.layer_idx]

    # Own part: causal within each row; grouped-query heads share keys (expand, no copy).
    own_k = key[:, :, None].expand(batch, kv_heads, group, q_len, dim).reshape(batch, heads, q_len, dim)
    own_v = value[:, :, None].expand(batch, kv_heads, group, q_len, dim).reshape(batch, heads, q_len, dim)
    out_s, lse_s = _partial(query, own_k, own_v, causal=True, scale=scale)

    # Prefix part: fold rows and the query heads of each key head into one query block per key head.
    folded = query.view(batch, kv_heads, group, q_len, dim).permute(1, 0, 2, 3, 4).reshape(1, kv_heads, -1, dim)
    out_p, lse_p = _partial(folded, prefix_k.to(query.dtype), prefix_v.to(query.dtype), causal=False, scale=scale)
    out_p = out_p.reshape(kv_heads, batch, group, q_len, dim).permute(1, 0, 2, 3, 4).reshape(batch, heads, q_len, dim)
    lse_p = lse_p.reshape(kv_heads, batch, group, q_len).permute(1, 0, 2, 3).reshape(batch, heads, q_len)

    lse = torch.logaddexp(lse_s, lse_p)
    out = out_s * torch.exp(lse_s - lse).unsqueeze(-1).to(out_s.dtype) \
        + out_p * torch.exp(lse_p - lse).unsqueeze(-1).to(out_p.dtype)
    return out.transpose(1, 2).contiguous(), None


def _grouped(module: Any, query: Any, key: Any, value: Any, groups: PrefixGroups, scaling: float | None):
    """One decoding step (one new token per row) over :class:`PrefixGroups`: the own part with the
    rows' mask (pads and holes between a prompt and its generated tokens), the prefix part per span."""
    import torch

    batch, heads, q_len, dim = query.shape
    if q_len != 1:
        raise ValueError(f"grouped prefix attention decodes one token per row, got {q_len}")
    kv_heads = key.shape[1]
    group = heads // kv_heads
    scale = scaling if scaling is not None else dim ** -0.5
    # Query heads sharing a key head become that key head's queries: no copies of the keys.
    q = query.reshape(batch, kv_heads, group, dim)
    mask = torch.zeros(groups.own_mask.shape, dtype=query.dtype, device=query.device)
    mask = mask.masked_fill(~groups.own_mask, float("-inf"))[:, None, None, :]
    out_s, lse_s = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu(
        q, key, value.to(query.dtype), 0.0, False, attn_mask=mask, scale=scale)
    out = out_s
    for start, end, prefix in groups.spans:
        if prefix is None:
            continue
        n = end - start
        prefix_k, prefix_v = prefix.layers[module.layer_idx]
        folded = q[start:end].permute(1, 0, 2, 3).reshape(1, kv_heads, n * group, dim)
        out_p, lse_p = _partial(folded, prefix_k.to(query.dtype), prefix_v.to(query.dtype), causal=False, scale=scale)
        out_p = out_p.reshape(kv_heads, n, group, dim).permute(1, 0, 2, 3)
        lse_p = lse_p.reshape(kv_heads, n, group).permute(1, 0, 2)
        own, lse_own = out_s[start:end], lse_s[start:end]
        lse = torch.logaddexp(lse_own, lse_p)
        merged = own * torch.exp(lse_own - lse).unsqueeze(-1).to(own.dtype) \
            + out_p * torch.exp(lse_p - lse).unsqueeze(-1).to(out_p.dtype)
        if out is out_s:
            out = out_s.clone()
        out[start:end] = merged
    return out.reshape(batch, heads, 1, dim).transpose(1, 2).contiguous(), None


def _register() -> None:
    from transformers import AttentionInterface

    if ATTENTION_NAME not in AttentionInterface._global_mapping:
        AttentionInterface.register(ATTENTION_NAME, prefix_attention)


@contextmanager
def using_prefix_attention(model: Any) -> Iterator[None]:
    """Run ``model``'s forward passes inside the block on shared-prefix attention (and without an
    attention mask, which this attention does not read); restores the model's own afterwards."""
    _register()
    config = model.config
    before = config._attn_implementation
    config._attn_implementation = ATTENTION_NAME
    try:
        yield
    finally:
        config._attn_implementation = before
