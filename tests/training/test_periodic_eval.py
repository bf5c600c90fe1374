"""Keep-best by a periodic benchmark evaluation (through flanlab.evaluation) on tiny models."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from flanlab.cli import main
from flanlab.core.io import read_jsonl
from tests.training.helpers import (
    bbh_answer_rows,
    copy_task_rows,
    write_bbh_copy_data,
    write_config,
    write_mixture,
)


def _rows(run, key):
    return {r["step"]: r for r in read_jsonl(run / "metrics.jsonl") if key in r}


@pytest.mark.parametrize("arch", ["llama", "t5"])
def test_keep_best_by_benchmark_score(tmp_path, tiny_llama_dir, tiny_t5_dir, arch):
    model = tiny_llama_dir if arch == "llama" else tiny_t5_dir
    data = write_bbh_copy_data(tmp_path / "data", n=3)
    mix = write_mixture(tmp_path / "mix", copy_task_rows(120))
    common = {"train": {"steps": 4, "eval_every": 2, "save_every": 1, "keep_checkpoints": 10}}
    plain = write_config(tmp_path / "plain.yaml", model, mix, **common)
    scored = write_config(tmp_path / "scored.yaml", model, mix, **common,
                          eval={"benchmarks": ["bbh"], "strategies": ["direct"], "subtasks": ["copy_word"],
                                "limit": 2, "max_new_tokens": 4, "data_dir": str(data)})
    assert main(["train", str(plain), "--run-name", str(tmp_path / "plain")]) == 0
    run = tmp_path / "scored"
    assert main(["train", str(scored), "--run-name", str(run)]) == 0

    evals = _rows(run, "eval_score")
    assert sorted(evals) == [0, 2, 4]  # before training, every eval_every steps, at the end
    assert all(r["eval_scores"].keys() == {"bbh/direct"} and r["eval_examples"] == 2 for r in evals.values())
    records = read_jsonl(run / "evals" / "step-000002.jsonl")
    assert [(r["benchmark"], r["subtask"], r["index"]) for r in records] == [("bbh", "copy_word", 0),
                                                                             ("bbh", "copy_word", 1)]
    # The BBH prompt, then the training prompt format's separator (default "\n").
    assert all(r["prompt"].endswith("\nA:\n") and r["correct"] in (0.0, 1.0) for r in records)

    results = json.loads((run / "results.json").read_text())
    scores = {s: evals[s]["eval_score"] for s in (2, 4)}
    best = max(scores, key=lambda s: (scores[s], -s))  # ties keep the earlier checkpoint
    assert results["best_by"] == "eval_score" and results["best_step"] == best
    assert results["best_value"] == scores[best] and results["initial_eval_score"] == evals[0]["eval_score"]
    # Each periodic score carries its n and 95 % interval, as `flanlab eval` writes them.
    stats = results["eval_stats"]["bbh/direct"]
    assert stats["n"] == 2 and len(stats["ci95"]) == 2 and stats["ci95"][0] <= evals[4]["eval_score"] <= stats["ci95"][1]
    # best/ holds the weights of that step's checkpoint.
    saved = load_file(str(run / "best" / "model.safetensors"))
    ckpt = load_file(str(run / "checkpoints" / f"step-{best:06d}" / "weights.safetensors"))
    shared = set(saved) & set(ckpt)
    assert len(shared) >= len(saved) - 1 and all(torch.equal(saved[k], ckpt[k]) for k in shared)
    # Evaluating does not change training: same losses as the run without an eval section.
    assert _rows(run, "loss").keys() == _rows(tmp_path / "plain", "loss").keys()
    assert all(_rows(run, "loss")[s]["loss"] == r["loss"] for s, r in _rows(tmp_path / "plain", "loss").items())


def test_score_rises_as_the_model_learns_and_picks_best(tmp_path, tiny_llama_dir):
    """Rows in the benchmark's own prompt format, always answered "valid": the periodic BBH score
    goes from 0 to 100 within a few dozen steps, and best/ is the first checkpoint that reached it."""
    data = write_bbh_copy_data(tmp_path / "data", n=4, answer="valid")
    mix = write_mixture(tmp_path / "mix", bbh_answer_rows(400, answer="valid"))
    cfg = write_config(tmp_path / "c.yaml", tiny_llama_dir, mix,
                       train={"steps": 30, "batch_size": 4, "eval_every": 10, "log_every": 10, "dropout": 0.0},
                       packing={"max_length": 128}, optim={"lr": 1e-2, "warmup_steps": 3},
                       eval={"subtasks": ["copy_word"], "limit": 4, "max_new_tokens": 3, "data_dir": str(data)})
    run = tmp_path / "run"
    assert main(["train", str(cfg), "--run-name", str(run)]) == 0
    evals = {s: r["eval_score"] for s, r in _rows(run, "eval_score").items()}
    assert sorted(evals) == [0, 10, 20, 30] and evals[0] == 0.0 and evals[30] == 100.0
    results = json.loads((run / "results.json").read_text())
    first = min(s for s in (10, 20, 30) if evals[s] == 100.0)
    assert (results["best_step"], results["best_value"], results["eval_score"]) == (first, 100.0, 100.0)
    answers = [r["answer"] for r in read_jsonl(run / "evals" / "step-000030.jsonl")]
    assert answers == ["valid"] * 4


def test_bad_eval_section_fails_before_training(tmp_path, tiny_llama_dir, capsys):
    data = write_bbh_copy_data(tmp_path / "data", n=2)
    mix = write_mixture(tmp_path / "mix", copy_task_rows(20))
    cfg = write_config(tmp_path / "c.yaml", tiny_llama_dir, mix,
                       eval={"subtasks": ["no_such_task"], "data_dir": str(data)})
    assert main(["train", str(cfg), "--run-name", str(tmp_path / "r")]) == 2
    assert "eval.subtasks: unknown subtask 'no_such_task'" in capsys.readouterr().err
    assert not (tmp_path / "r" / "metrics.jsonl").exists()
    cfg = write_config(tmp_path / "d.yaml", tiny_llama_dir, mix, train={"keep_best_by": "eval_score"})
    assert main(["train", str(cfg), "--run-name", str(tmp_path / "s")]) == 2
    assert "train.keep_best_by: 'eval_score' needs an `eval:` section" in capsys.readouterr().err


def test_in_training_score_matches_flanlab_eval_of_best_lora(tmp_path, tiny_llama_dir):
    """The live LoRA model scored during training answers as `flanlab eval` of the merged best/ does."""
    data = write_bbh_copy_data(tmp_path / "data", n=3, answer="valid")
    mix = write_mixture(tmp_path / "mix", bbh_answer_rows(80, answer="valid"))
    bench = {"benchmarks": ["bbh"], "strategies": ["direct"], "subtasks": ["copy_word"], "limit": 3,
             "max_new_tokens": 4, "data_dir": str(data)}
    cfg = write_config(tmp_path / "c.yaml", tiny_llama_dir, mix, train={"steps": 2, "eval_every": 2},
                       optim={"lr": 5e-2}, lora={"enabled": True, "r": 4, "alpha": 8}, eval=bench)
    run = tmp_path / "run"
    assert main(["train", str(cfg), "--run-name", str(run)]) == 0
    results = json.loads((run / "results.json").read_text())
    assert results["best_step"] == 2
    assert main(["eval", "--model", str(run / "best"), "--benchmarks", "bbh", "--strategies", "direct",
                 "--subtasks", "copy_word", "--limit", "3", "--max-new-tokens", "4", "--data-dir", str(data),
                 "--prompt-format", "plain", "--run-name", str(tmp_path / "ev")]) == 0
    during = read_jsonl(run / "evals" / "step-000002.jsonl")
    after = read_jsonl(tmp_path / "ev" / "examples.jsonl")
    assert all(r["outputs"][0].strip() for r in during)  # the adapters made it answer something
    assert [r["outputs"] for r in during] == [r["outputs"] for r in after]
    assert json.loads((tmp_path / "ev" / "results.json").read_text())["scores"]["bbh"]["direct"]["score"] == \
        results["best_value"]


def test_periodic_eval_uses_the_context_length_of_flanlab_eval(tmp_path, tiny_llama_dir, monkeypatch):
    """The in-training evaluation builds its LM through inference's own rule: here the tokenizer's
    limit (96), below the config's 2048 positions, as `flanlab eval` loading the same folder."""
    import shutil

    from transformers import AutoTokenizer

    import flanlab.inference.hf as hf
    from flanlab.inference.loading import load_pretrained
    from flanlab.inference.spec import ModelSpec
    from flanlab.training.config import EvalSection
    from flanlab.training.periodic_eval import PeriodicEval

    model_dir = tmp_path / "model"
    shutil.copytree(tiny_llama_dir, model_dir)
    tok = AutoTokenizer.from_pretrained(model_dir)
    tok.model_max_length = 96
    tok.save_pretrained(model_dir)
    loaded = load_pretrained(ModelSpec(name=str(model_dir)))
    assert loaded.max_length == 96 and loaded.model.config.max_position_embeddings == 2048

    seen = []

    class Recording(hf.HFLM):
        def __init__(self, model, **kwargs):
            seen.append(model.max_length)
            super().__init__(model, **kwargs)

    monkeypatch.setattr(hf, "HFLM", Recording)
    data = write_bbh_copy_data(tmp_path / "data", n=2)
    periodic = PeriodicEval(EvalSection(benchmarks=["bbh"], strategies=["direct"], limit=1, max_new_tokens=2,
                                        data_dir=str(data)), tmp_path / "evals")
    row = periodic(loaded.model, AutoTokenizer.from_pretrained(model_dir), encoder_decoder=False, device="cpu",
                   step=0, name="t")
    assert seen == [96] and row["eval_examples"] == 1
