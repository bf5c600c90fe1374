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


def merge_caches(caches: list[Any], room: int = 0) -> tuple[Any, list[int]]:
    """One cache holding the rows of ``caches`` (see :func:`mergeable`), each left-padded with zeros
    to the longest, with space for ``room`` more tokens; returns it and the padding added to each
    cache's rows, which the caller masks out.

    Rows of different prompts (different shared prefixes) can then decode in one batch: a decoding
    step costs about the same for a few rows as for many, so one batch beats several. The room
    spares the copy of the whole cache a dynamic layer makes at every step."""
    length = max(c.layers[0].keys.shape[-2] for c in caches)
    pads = [length - c.layers[0].keys.shape[-2] for c in caches]
    rows = sum(c.layers[0].keys.shape[0] for c in caches)
    merged = copy.copy(caches[0])
    merged.layers = []
    for i in range(len(caches[0].layers)):
        bufs = []
        for name in ("keys", "values"):
            first = getattr(caches[0].layers[i], name)
            buf = first.new_zeros(rows, first.shape[1], length + room, first.shape[3])
            at = 0
            for c, pad in zip(caches, pads, strict=True):
                t = getattr(c.layers[i], name)
                buf[at:at + t.shape[0], :, pad:length] = t
                at += t.shape[0]
            bufs.append(buf)
        merged.layers.append(_RoomyLayer(*bufs, length))
    return merged, pads


def _roomy_layer_class():
    import torch
    from transformers.cache_utils import DynamicLayer

    class RoomyLayer(DynamicLayer):
        """A dynamic layer whose keys and values are views of buffers with room to grow: a step
        writes its token in place (the buffers belong to this layer alone) instead of concatenating."""

        def __init__(self, keys, values, length: int) -> None:
            super().__init__()
            self.device = keys.device
            self.is_initialized = True
            self._bufs = (keys, values)
            self._set(length)

        def _set(self, length: int) -> None:
            self.keys = self._bufs[0][:, :, :length]
            self.values = self._bufs[1][:, :, :length]

        def update(self, key_states, value_states, *args, **kwargs):
            n, m = self.keys.shape[-2], key_states.shape[-2]
            if n + m > self._bufs[0].shape[-2]:
                # Out of room: grow as a dynamic layer would, keeping room for as many again.
                grow = max(m, n)
                self._bufs = tuple(torch.cat([b[:, :, :n], b.new_zeros(*b.shape[:2], grow, b.shape[3])], dim=2)
                                   for b in self._bufs)
            self._bufs[0][:, :, n:n + m] = key_states
            self._bufs[1][:, :, n:n + m] = value_states
            self._set(n + m)
            return self.keys, self.values

        def batch_select_indices(self, indices) -> None:
            n = self.keys.shape[-2]
            self._bufs = tuple(b.index_select(0, indices.to(b.device)) for b in self._bufs)
            self._set(n)

        def batch_repeat_interleave(self, repeats: int) -> None:
            n = self.keys.shape[-2]
            self._bufs = tuple(b.repeat_interleave(repeats, dim=0) for b in self._bufs)
            self._set(n)

        def drop_front(self, n: int) -> None:
            """Forget the first ``n`` positions (columns no row attends to any more); views, no copy."""
            length = self.keys.shape[-2]
            self._bufs = tuple(b[:, :, n:] for b in self._bufs)
            self._set(length - n)

        def crop(self, tokens_to_remove: int) -> None:
            super().crop(tokens_to_remove)
            self._set(self.keys.shape[-2])

    return RoomyLayer


def _RoomyLayer(keys, values, length: int):  # noqa: N802 - built on first use: transformers loads lazily
    global _ROOMY
    if _ROOMY is None:
        _ROOMY = _roomy_layer_class()
    return _ROOMY(keys, values, length)


_ROOMY = None
