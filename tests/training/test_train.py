"""The train loop end to end on tiny models: resume, accumulation, LoRA, learning a task."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file

from flanlab.cli import main
from flanlab.core.io import read_jsonl
from tests.training.helpers import WORDS, copy_task_rows, write_config, write_mixture


def _losses(run) -> dict[int, float]:
    return {r["step"]: r["loss"] for r in read_jsonl(run / "metrics.jsonl") if "loss" in r}


@pytest.mark.parametrize("arch", ["llama", "t5"])
def test_resume_reproduces_loss_sequence_exactly(tmp_path, tiny_llama_dir, tiny_t5_dir, arch):
    model = tiny_llama_dir if arch == "llama" else tiny_t5_dir
    mix = write_mixture(tmp_path / "mix", copy_task_rows(200))
    optim = {"name": "adafactor", "lr": 1e-3, "schedule": "constant", "warmup_steps": 0} if arch == "t5" else {}
    cfg = write_config(tmp_path / "c.yaml", model, mix, train={"steps": 6, "save_every": 3}, optim=optim)
    full, part = tmp_path / "full", tmp_path / "part"
    assert main(["train", str(cfg), "--run-name", str(full)]) == 0
    # Interrupted after step 3: a fresh run folder holding only the step-3 checkpoint.
    (part / "checkpoints").mkdir(parents=True)
    shutil.copytree(full / "checkpoints" / "step-000003", part / "checkpoints" / "step-000003")
    assert main(["train", str(cfg), "--run-name", str(part)]) == 0
    a, b = _losses(full), _losses(part)
    assert sorted(a) == [1, 2, 3, 4, 5, 6] and sorted(b) == [4, 5, 6]
    assert [a[s] for s in (4, 5, 6)] == [b[s] for s in (4, 5, 6)]  # bit-for-bit
    wa = load_file(str(full / "final" / "model.safetensors"))
    wb = load_file(str(part / "final" / "model.safetensors"))
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    # Stopping at a checkpoint: a rerun with train.steps at that step only saves final/, drops the
    # later rows from metrics.jsonl and reports the last loss the earlier part logged. Only at a
    # constant rate (t5 here): a cosine schedule over 3 steps is not the one the checkpoint saw.
    cut = tmp_path / "cut"
    shutil.copytree(full, cut)
    if arch == "llama":
        assert main(["train", str(cfg), "train.steps=3", "--run-name", str(cut)]) == 2
        return
    assert main(["train", str(cfg), "train.steps=3", "--run-name", str(cut)]) == 0
    assert sorted(_losses(cut)) == [1, 2, 3]
    assert json.loads((cut / "results.json").read_text())["final_loss"] == a[3]


def test_loss_is_averaged_over_the_whole_accumulated_batch(tmp_path, tiny_llama_dir):
    """batch 8 × 1 and batch 2 × accumulation 4 see the same rows: same loss and same update."""
    mix = write_mixture(tmp_path / "mix", copy_task_rows(120, seed=5))
    runs = {}
    for name, batch, accum in (("big", 8, 1), ("acc", 2, 4)):
        cfg = write_config(tmp_path / f"{name}.yaml", tiny_llama_dir, mix,
                           train={"steps": 2, "batch_size": batch, "grad_accum": accum, "dropout": 0.0},
                           packing={"max_length": 48}, optim={"warmup_steps": 0})
        assert main(["train", str(cfg), "--run-name", str(tmp_path / name)]) == 0
        runs[name] = tmp_path / name
    la, lb = _losses(runs["big"]), _losses(runs["acc"])
    assert abs(la[1] - lb[1]) < 1e-5 and abs(la[2] - lb[2]) < 1e-5
    wa = load_file(str(runs["big"] / "final" / "model.safetensors"))
    wb = load_file(str(runs["acc"] / "final" / "model.safetensors"))
    assert max((wa[k] - wb[k]).abs().max().item() for k in wa) < 1e-5


def test_per_example_attention_trains_like_block_masks(tmp_path, tiny_llama_dir):
    """packing.attention=auto picks per-example attention for a Llama: same losses and weights as
    block masks, and the saved model carries no trace of it (plain transformers loads it)."""
    mix = write_mixture(tmp_path / "mix", copy_task_rows(120, seed=3))
    runs = {}
    # The pieces reach attention through forward keywords, also when checkpointing recomputes.
    for name, attention, checkpointing in (("mask", "mask", False), ("auto", "auto", False), ("gc", "auto", True)):
        cfg = write_config(tmp_path / f"{name}.yaml", tiny_llama_dir, mix,
                           train={"steps": 3, "dropout": 0.0, "gradient_checkpointing": checkpointing},
                           packing={"attention": attention})
        assert main(["train", str(cfg), "--run-name", str(tmp_path / name)]) == 0
        runs[name] = tmp_path / name
    assert json.loads((runs["auto"] / "results.json").read_text())["attention"] == "segments"
    la, lb = _losses(runs["mask"]), _losses(runs["auto"])
    assert sorted(la) == sorted(lb) == [1, 2, 3]
    assert all(abs(la[s] - lb[s]) < 1e-5 for s in la)
    assert _losses(runs["gc"]) == lb
    wa = load_file(str(runs["mask"] / "final" / "model.safetensors"))
    wb = load_file(str(runs["auto"] / "final" / "model.safetensors"))
    assert max((wa[k] - wb[k]).abs().max().item() for k in wa) < 1e-4
    assert "flanlab" not in (runs["auto"] / "final" / "config.json").read_text()


def test_lora_changes_only_adapter_weights(tmp_path, tiny_llama_dir):
    from transformers import AutoModelForCausalLM

    mix = write_mixture(tmp_path / "mix", copy_task_rows(100))
    cfg = write_config(tmp_path / "c.yaml", tiny_llama_dir, mix, train={"steps": 3, "save_every": 2},
                       lora={"enabled": True, "r": 4, "alpha": 8, "merge_on_save": True})
    run = tmp_path / "run"
    assert main(["train", str(cfg), "--run-name", str(run)]) == 0
    trained = load_file(str(run / "checkpoints" / "step-000002" / "weights.safetensors"))
    assert trained and all("lora_" in k for k in trained)
    # The peft model's base weights are untouched; the merged export differs from the base.
    base = load_file(str(tiny_llama_dir / "model.safetensors"))
    merged = AutoModelForCausalLM.from_pretrained(run / "final").state_dict()
    assert set(merged) >= set(base)
    changed = [k for k in base if not torch.equal(base[k], merged[k])]
    assert changed and all(k.endswith(".weight") and "norm" not in k for k in changed)
    assert "model.embed_tokens.weight" not in changed


def test_lora_unmerged_saves_adapter_only(tmp_path, tiny_t5_dir):
    mix = write_mixture(tmp_path / "mix", copy_task_rows(60))
    cfg = write_config(tmp_path / "c.yaml", tiny_t5_dir, mix, train={"steps": 2},
                       lora={"enabled": True, "r": 2, "merge_on_save": False})
    run = tmp_path / "run"
    assert main(["train", str(cfg), "--run-name", str(run)]) == 0
    assert (run / "final" / "adapter_model.safetensors").exists()
    adapter = load_file(str(run / "final" / "adapter_model.safetensors"))
    assert adapter and all("lora_" in k for k in adapter)


def test_bad_shard_is_one_clear_error(tmp_path, tiny_llama_dir, capsys):
    mix = write_mixture(tmp_path / "mix", copy_task_rows(10), shards=1)
    with open(mix / "shard-00000-of-00001.jsonl", "a") as f:
        f.write('{"inputs": 3, "targets": "x"}\n')
    cfg = write_config(tmp_path / "c.yaml", tiny_llama_dir, mix)
    assert main(["train", str(cfg), "--run-name", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert "shard-00000-of-00001.jsonl:11" in err and "'inputs' must be a string" in err


def test_incomplete_mixture_is_refused(tmp_path, tiny_llama_dir, capsys):
    mix = write_mixture(tmp_path / "mix", copy_task_rows(10))
    (mix / "manifest.json").unlink()
    cfg = write_config(tmp_path / "c.yaml", tiny_llama_dir, mix)
    assert main(["train", str(cfg), "--run-name", str(tmp_path / "r")]) == 2
    assert "no manifest.json" in capsys.readouterr().err


@pytest.mark.slow
def test_few_hundred_steps_learn_a_synthetic_task(tmp_path, tiny_llama_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    rows = copy_task_rows(3000, seed=11)
    mix = write_mixture(tmp_path / "mix", rows)
    cfg = write_config(tmp_path / "c.yaml", tiny_llama_dir, mix,
                       train={"steps": 300, "batch_size": 8, "log_every": 50, "eval_every": 100,
                              "save_every": 100, "dropout": 0.0},
                       optim={"lr": 1e-2, "warmup_steps": 20}, data={"max_heldout": 64})
    run = tmp_path / "run"
    assert main(["train", str(cfg), "--run-name", str(run)]) == 0
    results = json.loads((run / "results.json").read_text())
    assert results["heldout_loss"] < 0.25 * results["initial_heldout_loss"]
    assert (run / "best" / "model.safetensors").exists()

    tok = AutoTokenizer.from_pretrained(run / "final")
    model = AutoModelForCausalLM.from_pretrained(run / "final").eval()
    from flanlab.training.data import Example, is_heldout

    held = [r for r in rows if is_heldout(Example(r["inputs"], r["targets"], "", ""), 0.1)][:40]
    correct = 0
    from flanlab.inference.prompt_format import PromptFormat

    for r in held:
        # The model reads its inputs as training joined them: the config's prompt format (default plain, "\n").
        ids = tok(PromptFormat().prompt(r["inputs"]), return_tensors="pt").input_ids
        out = model.generate(ids, max_new_tokens=4, do_sample=False, pad_token_id=tok.pad_token_id)
        text = tok.decode(out[0, ids.shape[1]:], skip_special_tokens=True)
        correct += text.strip().split(" ")[0] == r["targets"].strip()
    assert correct / len(held) >= 0.9, correct
    assert set(WORDS)  # the task's answer space
