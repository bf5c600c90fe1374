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

__all__ = ["cache_arg", "output_cache", "shared_cache"]


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
