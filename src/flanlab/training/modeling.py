"""The model being trained: loading, dropout, LoRA / QLoRA through peft, and the saved result."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flanlab.core.errors import UserError
from flanlab.core.log import get_logger
from flanlab.inference.spec import ModelSpec
from flanlab.training.config import LoraConfig

__all__ = ["TrainModel", "apply_lora", "load_for_training", "save_final", "set_dropout"]

log = get_logger(__name__)


@dataclass
class TrainModel:
    model: Any
    tokenizer: Any
    encoder_decoder: bool
    source: str


def _load_plain(spec: ModelSpec) -> tuple[Any, Any, bool, str]:
    """Folders and hub names through transformers Auto classes (safetensors only unless allowed)."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSeq2SeqLM, AutoTokenizer

    common = {"trust_remote_code": spec.trust_remote_code, "revision": spec.revision}
    config = AutoConfig.from_pretrained(spec.name, **common)
    seq2seq = spec.kind == "seq2seq" or (spec.kind == "auto" and getattr(config, "is_encoder_decoder", False))
    auto = AutoModelForSeq2SeqLM if seq2seq else AutoModelForCausalLM
    model = auto.from_pretrained(spec.name, config=config, use_safetensors=None if spec.allow_pickle else True,
                                 **common)
    return model, AutoTokenizer.from_pretrained(spec.name, **common), seq2seq, spec.name


def load_for_training(spec: ModelSpec, lora: LoraConfig) -> TrainModel:
    """Load ``spec`` for training (weights in float32 unless set, train mode, on CPU; accelerate
    moves it). QLoRA loads the base quantized through bitsandbytes."""
    import torch

    if lora.quantize != "none":
        return _load_quantized(spec, lora)
    try:
        from flanlab.inference.loading import load_pretrained
    except ImportError:  # the inference stage's loader is optional here
        model, tok, seq2seq, source = _load_plain(spec)
    else:
        loaded = load_pretrained(spec.model_copy(update={"device": "cpu",
                                                         "dtype": "float32" if spec.dtype == "auto" else spec.dtype}))
        model, tok, seq2seq, source = loaded.model, loaded.tokenizer, loaded.kind == "seq2seq", loaded.source
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    if model.dtype not in (torch.float32, torch.bfloat16):
        model = model.float()
    model.train()
    return TrainModel(model, tok, seq2seq, source)


def _load_quantized(spec: ModelSpec, lora: LoraConfig) -> TrainModel:
    import torch

    if not torch.cuda.is_available():
        raise UserError("lora.quantize: QLoRA needs a CUDA GPU (bitsandbytes); set lora.quantize=none on CPU")
    try:
        import bitsandbytes  # noqa: F401
    except ImportError:
        raise UserError("lora.quantize: QLoRA needs bitsandbytes: pip install bitsandbytes") from None
    from transformers import (
        AutoConfig,
        AutoModelForCausalLM,
        AutoModelForSeq2SeqLM,
        AutoTokenizer,
        BitsAndBytesConfig,
    )

    from flanlab.inference.loading import resolve_source

    source = resolve_source(spec.name)
    bnb = (BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=torch.bfloat16)
           if lora.quantize == "4bit" else BitsAndBytesConfig(load_in_8bit=True))
    config = AutoConfig.from_pretrained(source, trust_remote_code=spec.trust_remote_code)
    seq2seq = getattr(config, "is_encoder_decoder", False)
    auto = AutoModelForSeq2SeqLM if seq2seq else AutoModelForCausalLM
    model = auto.from_pretrained(source, quantization_config=bnb, trust_remote_code=spec.trust_remote_code,
                                 use_safetensors=None if spec.allow_pickle else True)
    from peft import prepare_model_for_kbit_training

    model = prepare_model_for_kbit_training(model)
    tok = AutoTokenizer.from_pretrained(source, trust_remote_code=spec.trust_remote_code)
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    return TrainModel(model, tok, seq2seq, source)


def set_dropout(model: Any, p: float | None) -> None:
    """Set every dropout module's rate (the paper finetunes with 0.05); None keeps the model's own."""
    import torch

    if p is None:
        return
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = p
    for key in ("dropout_rate", "attention_dropout", "hidden_dropout", "resid_pdrop", "attn_pdrop"):
        if hasattr(model.config, key):
            setattr(model.config, key, p)


def apply_lora(tm: TrainModel, cfg: LoraConfig) -> Any:
    """Wrap the model with LoRA adapters; only adapter weights stay trainable."""
    from peft import LoraConfig as PeftLoraConfig
    from peft import TaskType, get_peft_model

    task = TaskType.SEQ_2_SEQ_LM if tm.encoder_decoder else TaskType.CAUSAL_LM
    peft_cfg = PeftLoraConfig(task_type=task, r=cfg.r, lora_alpha=cfg.alpha, lora_dropout=cfg.dropout,
                              target_modules=cfg.target_modules)
    try:
        return get_peft_model(tm.model, peft_cfg)
    except ValueError as e:
        raise UserError(f"lora.target_modules: {e}") from None


def save_final(model: Any, tokenizer: Any, folder: Path, *, merge_lora: bool,
               state_dict: dict[str, Any] | None = None) -> Path:
    """Save a model that loads in plain transformers (safetensors). A LoRA model is merged into its
    base when ``merge_lora``; otherwise the adapter alone is saved (load it with peft).
    ``state_dict``: the full weights gathered by ``accelerator.get_state_dict`` when the model's own
    parameters are shards (FSDP, DeepSpeed ZeRO-3)."""
    import shutil

    from flanlab.training.checkpoint import writing_folder

    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    is_peft = hasattr(model, "merge_and_unload") and hasattr(model, "peft_config")
    with writing_folder(tmp, folder):
        if state_dict is not None:
            model.save_pretrained(tmp, safe_serialization=True, state_dict=state_dict)
        elif is_peft and merge_lora:
            import copy

            # Merge a copy so the live training model keeps its adapters.
            merged = copy.deepcopy(model).merge_and_unload()
            merged.save_pretrained(tmp, safe_serialization=True)
        else:
            model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        shutil.rmtree(folder, ignore_errors=True)
        tmp.rename(folder)
    return folder
