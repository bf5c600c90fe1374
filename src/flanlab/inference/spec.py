"""How a model is named and loaded: the ``model:`` section of eval / train / run configs."""

from __future__ import annotations

from typing import Literal

from flanlab.core.config import Schema

__all__ = ["ModelSpec"]


class ModelSpec(Schema):
    """Which model, through which backend, on which device.

    ``name`` is a hub name, a local folder, a ``.gguf`` file, an embedded model (``smollm2-135m``,
    ``gemma3-270m``) or, for the ``http`` backend, the served model's name.
    """

    name: str
    backend: Literal["hf", "http", "vllm"] = "hf"
    kind: Literal["auto", "causal", "seq2seq"] = "auto"
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    device: str = "auto"
    batch_size: int | Literal["auto"] = "auto"
    max_length: int | None = None
    trust_remote_code: bool = False
    allow_pickle: bool = False
    revision: str | None = None
    # hf backend on the CPU: float32 linear layers on oneDNN-packed weights ("auto": when available
    # and the copy fits in memory) or on PyTorch's own kernels ("torch"); see inference.packed_linear
    cpu_linear: Literal["auto", "onednn", "torch"] = "auto"
    # http backend
    base_url: str | None = None
    api_key_env: str = "OPENAI_API_KEY"
    max_concurrency: int = 8
    timeout_s: float = 120.0
    # request cache (SQLite); None disables it
    cache: str | None = None
