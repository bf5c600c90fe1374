"""oneDNN-packed linear layers (inference.packed_linear): the same scores and generations as
PyTorch's own kernels, only inside the backend's inference blocks, re-packed after in-place updates."""

from __future__ import annotations

import logging

import pytest
import torch

from flanlab.core.errors import UserError
from flanlab.inference import GenerateRequest, LoglikelihoodRequest, ModelSpec
from flanlab.inference.hf import HFLM
from flanlab.inference.loading import load_pretrained
from flanlab.inference.packed_linear import _onednn_works, plan

pytestmark = pytest.mark.skipif(_onednn_works() is not None, reason=f"oneDNN packed linear: {_onednn_works()}")

PREFIX = "Q: 2 + 2?\nA: 4\n\nQ: 3 + 5?\nA: 8\n\n"
REQUESTS = [LoglikelihoodRequest(PREFIX + q, c) for q in ("Q: 1 + 6?\nA:", "Q: 9 - 4?\nA:") for c in (" 7", " 5", " 12")]
PROMPTS = [GenerateRequest(prompt=PREFIX + q, stop=("\n\n",), max_new_tokens=12)
           for q in ("Q: 1 + 6?\nA:", "Q: 9 - 4?\nA:", "Q: 8 + 8?\nA:")]


@pytest.fixture(scope="module")
def loaded(tiny_llama_dir):
    return load_pretrained(ModelSpec(name=str(tiny_llama_dir), device="cpu", dtype="float32"))


def _linears(model):
    return [m for m in model.modules() if type(m) is torch.nn.Linear]


def test_packed_linears_give_the_scores_and_tokens_of_torch_kernels_and_leave_the_model_as_it_was(loaded):
    packed = HFLM(loaded, show_progress=False, cpu_linear="onednn")
    plain = HFLM(loaded, show_progress=False, cpu_linear="torch")
    assert packed._linears is not None and plain._linears is None
    got = [r.logprob for r in packed.loglikelihood(REQUESTS)]
    want = [r.logprob for r in plain.loglikelihood(REQUESTS)]
    assert got == pytest.approx(want, rel=1e-4, abs=1e-4)
    assert packed.generate(PROMPTS) == plain.generate(PROMPTS)
    # Outside the backend's calls the layers are the model's own again (the model is shared).
    assert all("forward" not in vars(m) for m in _linears(loaded.model))


def test_inside_the_block_linears_run_packed_and_fall_back_when_gradients_are_on(loaded):
    lm = HFLM(loaded, show_progress=False, cpu_linear="onednn")
    layer = loaded.model.get_output_embeddings()
    x = torch.randn(2, 3, layer.in_features)
    with lm.inference():
        assert "forward" in vars(layer)
        with lm.inference():  # nested blocks keep the packed layers until the outer one ends
            inner = layer(x)
        assert "forward" in vars(layer)
        assert torch.allclose(inner, torch.nn.functional.linear(x, layer.weight, layer.bias), rtol=1e-4, atol=1e-5)
    assert "forward" not in vars(layer)
    with lm._linears.using(), torch.enable_grad():
        y = layer(x.requires_grad_())
        y.sum().backward()
    assert x.grad is not None and layer.weight.grad is not None
    layer.weight.grad = None


def test_a_weight_changed_in_place_is_repacked(tiny_llama_dir):
    own = load_pretrained(ModelSpec(name=str(tiny_llama_dir), device="cpu", dtype="float32"))
    lm = HFLM(own, show_progress=False, cpu_linear="onednn")
    before = [r.logprob for r in lm.loglikelihood(REQUESTS)]
    with torch.no_grad():
        for m in _linears(own.model):
            m.weight.mul_(1.5)  # as an optimizer step between two keep-best evaluations would
    after = [r.logprob for r in lm.loglikelihood(REQUESTS)]
    plain = [r.logprob for r in HFLM(own, show_progress=False, cpu_linear="torch").loglikelihood(REQUESTS)]
    assert after == pytest.approx(plain, rel=1e-4, abs=1e-4)
    assert after != pytest.approx(before, rel=1e-3)


def test_models_it_does_not_apply_to(loaded, tiny_llama_dir, caplog):
    bf16 = load_pretrained(ModelSpec(name=str(tiny_llama_dir), device="cpu", dtype="bfloat16")).model
    with caplog.at_level(logging.INFO, logger="flanlab.inference.packed_linear"):
        assert plan(bf16, "auto") is None
    assert "not float32" in caplog.text
    with pytest.raises(UserError, match="cpu_linear='onednn'.*not float32"):
        plan(bf16, "onednn")
    assert plan(loaded.model, "torch") is None


def test_the_model_spec_and_the_serve_flag_choose_the_kernels(tiny_llama_dir):
    import argparse

    from flanlab.inference.commands import _spec, _spec_args

    parser = argparse.ArgumentParser()
    _spec_args(parser)
    spec = _spec(parser.parse_args(["--model", str(tiny_llama_dir), "--cpu-linear", "torch"]))
    assert spec.cpu_linear == "torch"
    assert HFLM.from_spec(spec.model_copy(update={"device": "cpu", "dtype": "float32"}),
                          show_progress=False)._linears is None
    with pytest.raises(Exception, match="cpu_linear"):
        ModelSpec(name="x", cpu_linear="mkl")


def test_auto_skips_a_copy_that_would_not_fit_in_memory_and_onednn_packs_anyway(loaded, monkeypatch, caplog):
    from flanlab.inference import packed_linear

    monkeypatch.setattr(packed_linear, "_available_memory", lambda: 1024)
    with caplog.at_level(logging.INFO, logger="flanlab.inference.packed_linear"):
        assert plan(loaded.model, "auto") is None
    assert "over half the free memory" in caplog.text
    assert plan(loaded.model, "onednn") is not None  # asked for by name: no memory guess overrides it

