"""Forward a micro-batch and sum the cross-entropy over its target tokens.

The loop divides these sums by the number of target tokens in the *whole accumulated batch* (all
micro-batches, all processes), so every target token weighs the same however examples fall into
micro-batches or rows.
"""

from __future__ import annotations

import inspect
from typing import Any

from flanlab.training.packing import IGNORE, Batch

__all__ = ["target_loss_sum"]


def _accepts(model: Any, name: str) -> bool:
    # Look through DDP (.module) and peft (get_base_model) wrappers, which forward **kwargs.
    model = _base(model)
    try:
        return name in inspect.signature(model.forward).parameters
    except (TypeError, ValueError):
        return False


def _base(model: Any) -> Any:
    model = getattr(model, "module", model)
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def _slices_by_mask(model: Any) -> bool:
    """Whether the model's forward cuts hidden states with transformers' ``slice_logits_to_keep``,
    which takes a boolean (batch, length) mask and returns only those positions, flattened."""
    cls = type(_base(model))
    if cls not in _MASK_SLICING:
        try:
            _MASK_SLICING[cls] = "slice_logits_to_keep(" in inspect.getsource(cls.forward)
        except (OSError, TypeError):
            _MASK_SLICING[cls] = False
    return _MASK_SLICING[cls]


_MASK_SLICING: dict[type, bool] = {}


def _ce_sum(logits: Any, labels: Any) -> Any:
    import torch.nn.functional as F

    return F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), labels.reshape(-1),
                           ignore_index=IGNORE, reduction="sum")


def target_loss_sum(model: Any, batch: Batch, *, encoder_decoder: bool, device: Any = None) -> Any:
    """Summed token cross-entropy of ``batch``'s targets under ``model`` (a scalar tensor)."""
    t = {k: v.to(device) if device is not None else v for k, v in batch.tensors.items()}
    labels = batch.labels.to(device) if device is not None else batch.labels
    if encoder_decoder:
        # T5's forward reuses ``attention_mask`` as the cross-attention mask, which is wrong for a
        # packed 4D encoder mask: run the encoder on its own, then give the decoder the cross mask.
        encoder = model.get_encoder()
        hidden = encoder(input_ids=t["input_ids"], attention_mask=t["encoder_mask"]).last_hidden_state
        out = model(encoder_outputs=(hidden,), attention_mask=t["cross_mask"],
                    decoder_input_ids=t["decoder_input_ids"], decoder_attention_mask=t["decoder_mask"],
                    use_cache=False)
        return _ce_sum(out.logits, labels)
    kwargs: dict[str, Any] = {"input_ids": t["input_ids"], "position_ids": t["position_ids"],
                              "attention_mask": t.get("attention_mask"), "use_cache": False}
    if batch.segments is not None:
        kwargs["flanlab_segments"] = batch.segments
    # Only positions that predict a target need logits: the LM head over a large vocabulary is a
    # sizeable share of a small model's compute (a fifth of SmolLM2-135M's). A boolean mask picks
    # each row's own target positions (packed rows put them anywhere); older models take one list
    # of positions for all rows, the union over the micro-batch.
    if _accepts(model, "logits_to_keep"):
        wanted = labels != IGNORE
        if _slices_by_mask(model):
            out = model(**kwargs, logits_to_keep=wanted)
            return _ce_sum(out.logits, labels[wanted])
        keep = wanted.any(0).nonzero().squeeze(-1)
        if keep.numel() < labels.shape[1]:
            out = model(**kwargs, logits_to_keep=keep)
            return _ce_sum(out.logits, labels[:, keep])
    out = model(**kwargs)
    return _ce_sum(out.logits, labels)
