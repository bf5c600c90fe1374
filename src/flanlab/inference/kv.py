"""KV caches of shared prefixes: which forward argument takes them, and cheap per-batch views.

A kept prefix cache is read by many batches. Copying it (``deepcopy`` + ``batch_repeat_interleave``)
for each batch costs two full copies of the prefix per batch before any work is done. transformers'
dynamic cache layers never write into their tensors: ``update`` concatenates and rebinds. So a batch
can run on a shallow copy whose layers hold *views* of the prefix tensors (expanded along the batch
dimension): the first concatenation materializes the rows once, and the kept prefix stays as it was.
"""

from __future__ import annotations

import copy
import inspect
from typing import Any

__all__ = ["cache_arg", "mergeable", "merge_caches", "output_cache", "shared_cache"]


def cache_arg(module: Any) -> str:
    """The forward's KV-cache argument: ``cache`` in transformers >= 5.2x, ``past_key_values`` before."""
    return "cache" if "cache" in inspect.signature(module.forward).parameters else "past_key_values"


def output_cache(out: Any) -> Any:
    """The KV cache a forward returned, under either name."""
    cache = out.get("cache") if hasattr(out, "get") else None
    return cache if cache is not None else out.past_key_values


def _rebinding_layers(cache: Any) -> bool:
    """Whether every layer of ``cache`` is one of transformers' dynamic layers, whose ``update``
    concatenates into new tensors instead of writing into the old ones."""
    from transformers.cache_utils import DynamicLayer

    layers = getattr(cache, "layers", None)
    return bool(layers) and all(isinstance(layer, DynamicLayer) for layer in layers) \
        and not getattr(cache, "offloading", False)


def shared_cache(cache: Any, rows: int) -> Any:
    """A cache for ``rows`` rows continuing ``cache`` (one row), which is left untouched.

    Dynamic caches get layer views (no copy); any other cache type is deep-copied and repeated."""
    if not _rebinding_layers(cache):
        c = copy.deepcopy(cache)
        if rows != 1:
            c.batch_repeat_interleave(rows)
        return c
    c = copy.copy(cache)
    c.layers = []
    for layer in cache.layers:
        view = copy.copy(layer)
        if getattr(view, "keys", None) is not None and view.keys.dim() == 4 and rows != 1:
            view.keys = view.keys.expand(rows, -1, -1, -1)
            view.values = view.values.expand(rows, -1, -1, -1)
        c.layers.append(view)
    return c


def mergeable(caches: list[Any]) -> bool:
    """Whether :func:`merge_caches` can join ``caches``: every layer is a plain dynamic layer (its
    length is its tensors' length; a sliding-window layer keeps a running count that padding breaks)."""
    from transformers.cache_utils import DynamicLayer

    return all(_rebinding_layers(c) and all(type(layer) is DynamicLayer and getattr(layer, "keys", None) is not None
                                            and layer.keys.dim() == 4 for layer in c.layers)
               for c in caches) and len({len(c.layers) for c in caches}) == 1


def merge_caches(caches: list[Any]) -> tuple[Any, list[int]]:
    """One cache holding the rows of ``caches`` (see :func:`mergeable`), each left-padded with zeros
    to the longest; returns it and the padding added to each cache's rows, which the caller masks out.

    Rows of different prompts (different shared prefixes) can then decode in one batch: a decoding
    step costs about the same for a few rows as for many, so one batch beats several."""
    import torch

    length = max(c.layers[0].keys.shape[-2] for c in caches)
    pads = [length - c.layers[0].keys.shape[-2] for c in caches]
    merged = copy.copy(caches[0])
    merged.layers = []
    for i, layer in enumerate(caches[0].layers):
        out = copy.copy(layer)
        for name in ("keys", "values"):
            parts = []
            for c, pad in zip(caches, pads, strict=True):
                t = getattr(c.layers[i], name)
                if pad:
                    t = torch.cat([t.new_zeros(*t.shape[:2], pad, t.shape[3]), t], dim=2)
                parts.append(t)
            setattr(out, name, torch.cat(parts, dim=0))
        merged.layers.append(out)
    return merged, pads
