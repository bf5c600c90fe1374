"""Per-example attention for packed decoder-only rows, without a block mask.

A packed row holds several examples that must not see each other. A 4D block-diagonal mask does
that with any attention kernel, but dense masked attention still computes every (query, key) pair
of the row: for a 512-token row of three examples, over three times the pairs the examples need,
with no causal skipping and the mask read on every pass, forward and backward.

Here each example attends to itself only, with the causal flag: the micro-batch's positions,
flattened row after row, are split into one piece per example and each piece runs scaled
dot-product attention on its own; ``split``/``cat`` keep the backward to one concatenation per
tensor. Since nothing attends across examples, collation puts a micro-batch in one row with no
padding at all (:func:`~flanlab.training.packing.collate`).

It plugs into transformers as an attention function (``AttentionInterface``) reading the pieces
from a forward keyword (``flanlab_segments``). Without that keyword it is exactly transformers'
``sdpa`` (same attention, same masks), so held-out evaluation and generation on the same model
are unaffected. Only model families whose attention is plain scaled dot-product are eligible.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flanlab.inference.prefix_attention import PLAIN_ATTENTION

__all__ = ["ATTENTION_NAME", "Segments", "eligible", "segment_attention", "use_segment_attention"]

ATTENTION_NAME = "flanlab_segments"

# The families whose attention is plain softmax(q k^T * scaling) v (shared with scoring's
# shared-prefix attention). Gemma 3 is left out: its sliding-window layers would need the window
# inside each piece.
_FULL_ROW_ATTENTION = PLAIN_ATTENTION - {"gemma3_text"}


@dataclass(frozen=True)
class Segments:
    """A packed micro-batch's positions, flattened row after row, as consecutive examples of
    ``lengths[i]`` tokens."""

    lengths: tuple[int, ...]


def eligible(model: Any) -> bool:
    """Whether ``model`` (a decoder-only transformers model) can train on per-example attention."""
    config = model.config
    if getattr(config, "model_type", None) not in _FULL_ROW_ATTENTION:
        return False
    window = getattr(config, "sliding_window", None)
    use_window = getattr(config, "use_sliding_window", window is not None)
    return not (window is not None and use_window) and not getattr(config, "attn_logit_softcapping", None)


def segment_attention(module: Any, query: Any, key: Any, value: Any, attention_mask: Any, dropout: float = 0.0,
                      scaling: float | None = None, flanlab_segments: Segments | None = None, **kwargs: Any):
    """transformers attention function: ``query`` ``[B, H, W, d]``, ``key``/``value`` ``[B, KV, W, d]``;
    returns ``([B, W, H, d], None)``. Without ``flanlab_segments`` it is transformers' sdpa."""
    import torch
    import torch.nn.functional as F
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    if flanlab_segments is None:
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling,
                                      **kwargs)
    batch, heads, width, dim = query.shape
    kv_heads = key.shape[1]
    group = heads // kv_heads
    if sum(flanlab_segments.lengths) != batch * width:
        raise ValueError(f"flanlab_segments covers {sum(flanlab_segments.lengths)} positions; "
                         f"the batch has {batch} x {width}")
    # [heads, batch * width, dim]: every piece is then a slice along one dimension.
    q = query.transpose(0, 1).reshape(heads, batch * width, dim)
    k = key.transpose(0, 1).reshape(kv_heads, batch * width, dim)
    v = value.transpose(0, 1).reshape(kv_heads, batch * width, dim)
    pieces = list(flanlab_segments.lengths)
    outs = []
    for qs, ks, vs in zip(q.split(pieces, 1), k.split(pieces, 1), v.split(pieces, 1), strict=True):
        n = qs.shape[1]
        if group > 1:
            ks = ks[:, None].expand(kv_heads, group, n, dim).reshape(heads, n, dim)
            vs = vs[:, None].expand(kv_heads, group, n, dim).reshape(heads, n, dim)
        o = F.scaled_dot_product_attention(qs[None], ks[None], vs[None], dropout_p=dropout, is_causal=True,
                                           scale=scaling)
        outs.append(o[0])
    out = torch.cat(outs, dim=1).view(heads, batch, width, dim).permute(1, 2, 0, 3).contiguous()
    return out, None


def use_segment_attention(model: Any) -> bool:
    """Switch ``model`` to per-example attention (sdpa when no pieces are given). Returns whether it
    did: models outside the eligible families keep their attention (and packed rows their masks)."""
    from transformers import AttentionInterface
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, AttentionMaskInterface

    if not eligible(model):
        return False
    AttentionInterface.register(ATTENTION_NAME, segment_attention)
    # The sdpa fallback needs sdpa's masks.
    AttentionMaskInterface.register(ATTENTION_NAME, ALL_MASK_ATTENTION_FUNCTIONS["sdpa"])
    model.config._attn_implementation = ATTENTION_NAME
    return True
