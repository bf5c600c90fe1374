"""Load a model named by a :class:`ModelSpec`: a hub name, a local folder, a ``.gguf`` file or an
embedded model (``smollm2-135m``, ``gemma3-270m``).

GGUF files are converted once to a safetensors folder under ``cache_dir("models")``: transformers
dequantizes them to dense float32 on load (~12 s for SmolLM2), while reloading the converted folder
takes about a second. Weights load from safetensors only unless ``spec.allow_pickle``; remote code
runs only when ``spec.trust_remote_code``.
"""

from __future__ import annotations

import functools
import hashlib
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from flanlab.core.errors import UserError
from flanlab.core.log import get_logger
from flanlab.core.paths import cache_dir
from flanlab.inference.spec import ModelSpec

__all__ = ["LoadedModel", "as_loaded", "convert_gguf", "hub_offline", "load_pretrained", "resolve_device",
           "resolve_dtype", "resolve_source"]

log = get_logger(__name__)
# Tokenizers without a real limit report ~1e30; anything this large is not a context length.
_NO_LIMIT = 1_000_000
_T5_DEFAULT_LENGTH = 512


@dataclass
class LoadedModel:
    """A loaded model and what inference needs to know about it."""

    model: Any
    tokenizer: Any
    kind: Literal["causal", "seq2seq"]
    name: str
    max_length: int
    device: str
    source: str = ""  # the folder or hub name the weights came from


def resolve_device(device: str) -> str:
    """``auto`` → ``cuda`` when a GPU is visible, else ``cpu``."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"model.device: {device!r} requested but no CUDA GPU is visible; use 'cpu' or 'auto'")
    return device


def resolve_dtype(dtype: str, device: str):
    """``auto`` → float32 on CPU, bfloat16 on GPUs that support it, else float16."""
    import torch

    if dtype == "auto":
        if device.startswith("cuda"):
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.float32
    return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[dtype]


def _gguf_cache_folder(gguf: Path, name: str | None) -> Path:
    if name is not None:
        return cache_dir("models") / name
    stat = gguf.stat()
    key = hashlib.sha256(f"{gguf.resolve()}|{stat.st_size}|{stat.st_mtime_ns}".encode()).hexdigest()[:12]
    return cache_dir("models") / f"gguf-{gguf.stem}-{key}"


def convert_gguf(gguf: str | Path, *, name: str | None = None) -> Path:
    """Convert a GGUF checkpoint once into a safetensors folder in the cache; returns the folder."""
    gguf = Path(gguf)
    target = _gguf_cache_folder(gguf, name)
    if (target / "config.json").exists() and (target / "model.safetensors").exists():
        return target
    try:
        import gguf as _gguf  # noqa: F401  (transformers needs it to read GGUF)
    except ImportError:
        raise UserError(f"{gguf}: loading GGUF files needs the 'gguf' package: pip install 'flanlab[gguf]'") from None
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSeq2SeqLM, AutoTokenizer

    log.info("converting %s to safetensors in %s (once)", gguf, target)
    try:
        config = AutoConfig.from_pretrained(gguf.parent, gguf_file=gguf.name)
        auto = AutoModelForSeq2SeqLM if getattr(config, "is_encoder_decoder", False) else AutoModelForCausalLM
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        model = auto.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    except (ValueError, OSError, KeyError) as e:
        raise UserError(f"{gguf}: could not read this GGUF file with transformers: {e}") from None
    # The GGUF loader leaves a quantizer marker behind that makes save_pretrained refuse to run.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    context = getattr(model.config, "max_position_embeddings", None)
    if context:
        tokenizer.model_max_length = int(context)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def resolve_source(name: str) -> str:
    """Where ``name``'s weights load from: a folder (GGUF and embedded models are converted into the
    cache first) or a hub name."""
    from flanlab.inference.embedded import embedded_gguf, embedded_models

    if name in embedded_models():
        return str(convert_gguf(embedded_gguf(name), name=name))
    path = Path(name).expanduser()
    if name.lower().endswith(".gguf"):
        if not path.is_file():
            raise UserError(f"model.name: GGUF file {name} not found")
        return str(convert_gguf(path))
    if path.is_dir():
        return str(path)
    if path.exists():
        raise UserError(f"model.name: {name} is a file; expected a model folder, a .gguf file or a hub name")
    if name.startswith((".", "/", "~")) or name.count("/") > 1:
        raise UserError(f"model.name: folder {name} not found")
    return _hub_source(name)


@functools.cache
def hub_offline() -> str | None:
    """Why the hub cannot be reached (``HF_HUB_OFFLINE`` set, no connection), or None when it can.

    Probed once per process with a short TCP connect: without it, an offline machine spends tens of
    seconds in the hub client's retries before reporting a connection error for every name.
    """
    from flanlab.core.doctor import hub_reachable

    state = hub_reachable(timeout=3.0)
    if state == "yes":
        return None
    if state.startswith("no ("):
        return f"the hub is unreachable: {state[4:].rstrip(')')}"
    return "HF_HUB_OFFLINE is set"


def _hub_source(name: str) -> str:
    """A hub name when the hub is reachable; offline, the snapshot folder of an earlier download."""
    reason = hub_offline()
    if reason is None:
        return name
    from huggingface_hub import snapshot_download

    try:
        return snapshot_download(name, local_files_only=True)
    except Exception:  # not in the hub cache (the client raises several kinds of errors for that)
        from flanlab.inference.embedded import embedded_models

        raise UserError(
            f"model.name: {name!r} not found locally (no such folder, no cached download) or on the hub "
            f"({reason}); pass a model folder, a .gguf file or an embedded model "
            f"({', '.join(embedded_models())})") from None


def _is_remote_code_error(e: Exception) -> bool:
    return "trust_remote_code" in str(e)


def _context_length(config: Any, tokenizer: Any, kind: str) -> int:
    lengths = [
        getattr(config, key, None) for key in ("max_position_embeddings", "n_positions", "max_sequence_length")
    ]
    found = [int(x) for x in lengths if isinstance(x, int) and x > 0]
    tok_limit = getattr(tokenizer, "model_max_length", None)
    if isinstance(tok_limit, int) and 0 < tok_limit < _NO_LIMIT:
        found.append(tok_limit)
    if found:
        return min(found)
    return _T5_DEFAULT_LENGTH if kind == "seq2seq" else 2048


def load_pretrained(spec: ModelSpec) -> LoadedModel:
    """Load ``spec``'s model and tokenizer onto its device, in eval mode."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSeq2SeqLM, AutoTokenizer

    source = resolve_source(spec.name)
    device = resolve_device(spec.device)
    dtype = resolve_dtype(spec.dtype, device)
    common: dict[str, Any] = {"trust_remote_code": spec.trust_remote_code, "revision": spec.revision}
    try:
        config = AutoConfig.from_pretrained(source, **common)
    except (ValueError, OSError) as e:
        if _is_remote_code_error(e):
            raise UserError(
                f"model {spec.name!r} ships its own code; set model.trust_remote_code=true if you trust it"
            ) from None
        raise UserError(f"model.name: could not load {spec.name!r}: {e}") from None
    kind = spec.kind
    if kind == "auto":
        kind = "seq2seq" if getattr(config, "is_encoder_decoder", False) else "causal"
    auto = AutoModelForSeq2SeqLM if kind == "seq2seq" else AutoModelForCausalLM
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, **common)
        model = auto.from_pretrained(
            source, config=config, dtype=dtype, use_safetensors=None if spec.allow_pickle else True, **common
        )
    except (ValueError, OSError) as e:
        if _is_remote_code_error(e):
            raise UserError(
                f"model {spec.name!r} ships its own code; set model.trust_remote_code=true if you trust it"
            ) from None
        msg = str(e)
        if not spec.allow_pickle and ("safetensors" in msg.lower() or ".bin" in msg):
            raise UserError(
                f"model {spec.name!r}: no safetensors weights found; pickled weights (.bin) can run code "
                "when loaded, set model.allow_pickle=true only if you trust them"
            ) from None
        raise UserError(f"model.name: could not load {spec.name!r} as a {kind} model: {e}") from None
    model.to(device)
    model.eval()
    return as_loaded(model, tokenizer, kind, spec.name, device, max_length=spec.max_length, source=source)


def as_loaded(model: Any, tokenizer: Any, kind: Literal["causal", "seq2seq"], name: str, device: str, *,
              max_length: int | None = None, source: str = "") -> LoadedModel:
    """A model already in memory (loaded here, or being trained) made ready for inference the way
    :func:`load_pretrained` makes every model ready: a pad token, and the context length (``max_length``
    or the smallest limit of the config and the tokenizer) set on the tokenizer too."""
    if tokenizer.pad_token_id is None:
        # Padding is always masked or trimmed, so any id works; eos is the usual choice.
        tokenizer.pad_token = tokenizer.eos_token
    length = max_length or _context_length(model.config, tokenizer, kind)
    tokenizer.model_max_length = length
    return LoadedModel(model, tokenizer, kind, name, length, device, source)
