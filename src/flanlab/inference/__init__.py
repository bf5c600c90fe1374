"""Inference backends behind one narrow LM protocol.

``load_lm(spec)`` picks a backend by ``spec.backend`` from :data:`BACKENDS` (``hf``, ``http``,
``vllm``) and, when ``spec.cache`` names a file, wraps it in the SQLite request cache.
Heavy imports (torch, transformers, vllm) happen inside the backends, not here.
"""

from __future__ import annotations

from collections.abc import Callable

from flanlab.core.registry import Registry
from flanlab.inference.base import LM, GenerateRequest, LoglikelihoodRequest, LoglikelihoodResult
from flanlab.inference.spec import ModelSpec

__all__ = [
    "BACKENDS",
    "LM",
    "GenerateRequest",
    "LoglikelihoodRequest",
    "LoglikelihoodResult",
    "ModelSpec",
    "load_lm",
]

BACKENDS: Registry[Callable[[ModelSpec], LM]] = Registry("inference backend")


@BACKENDS.decorator("hf")
def _hf(spec: ModelSpec) -> LM:
    from flanlab.inference.hf import HFLM

    return HFLM.from_spec(spec)


@BACKENDS.decorator("http")
def _http(spec: ModelSpec) -> LM:
    from flanlab.inference.http_client import HTTPLM

    return HTTPLM(spec)


@BACKENDS.decorator("vllm")
def _vllm(spec: ModelSpec) -> LM:
    from flanlab.inference.vllm_backend import VLLM

    return VLLM(spec)


def load_lm(spec: ModelSpec) -> LM:
    """The LM named by ``spec`` (through its backend), cached on disk when ``spec.cache`` is set."""
    lm = BACKENDS.get(spec.backend)(spec)
    if spec.cache:
        from flanlab.inference.cache import CachedLM

        lm = CachedLM(lm, spec.cache)
    return lm
