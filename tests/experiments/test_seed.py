"""The seed works (issue #18, item 3): ``--seed`` sets the run config's seed, that seed reaches every
stage, the same seed repeats a run exactly and another seed changes it."""

from __future__ import annotations

import json

from flanlab.cli import main
from flanlab.core.config import load_config
from flanlab.core.io import read_jsonl
from flanlab.experiments.config import RunConfig
from flanlab.experiments.pipeline import plan_run
from tests.training.helpers import write_bbh_copy_data

from .conftest import run_config, write_config


def _config(tmp_path, model, **extra):
    data = write_bbh_copy_data(tmp_path / "data", 6)
    cfg = run_config(tmp_path, model, data, **extra)
    # Self-consistency samples: the evaluation's outputs depend on its seed too.
    cfg["eval"] = {"before": False, "set": {"benchmarks": ["bbh"], "strategies": ["self_consistency"], "samples": 2,
                                            "limit": 2, "max_new_tokens": 6}}
    cfg["train"]["set"]["train"]["dropout"] = 0.1
    cfg["train"]["set"]["eval"] = {"benchmarks": ["bbh"], "strategies": ["direct"], "limit": 2}
    cfg["data_dir"] = str(data)
    return cfg


def test_the_run_seed_reaches_every_stage(tmp_path, tiny_llama_dir):
    cfg = _config(tmp_path, tiny_llama_dir)
    cfg["mixture"]["set"]["seed"] = 3  # a stage's own seed gives way to the run's
    cfg["eval"]["set"]["seed"] = 4
    path = write_config(tmp_path / "run.yaml", cfg, "flanlab run run.yaml")
    run_cfg = load_config(path, ["seed=11"], schema=RunConfig)
    plans = {p.name: p.config for p in plan_run(run_cfg, tmp_path / "out", path)}
    assert plans["mixture"]["seed"] == 11
    assert plans["train"]["train"]["seed"] == 11 and plans["train"]["eval"]["seed"] == 11
    assert plans["eval_after"]["seed"] == 11
    # The data folder travels the same way, as a config field.
    data = str(tmp_path / "data")
    assert plans["train"]["data"]["data_dir"] == plans["train"]["eval"]["data_dir"] == data
    assert plans["eval_after"]["data_dir"] == data and plans["mixture"] is not None


def _run(tmp_path, path, name: str, seed: int) -> dict:
    runs = tmp_path / "runs"
    assert main(["run", str(path), "--runs-dir", str(runs), "--run-name", name, "--seed", str(seed)]) == 0
    run = runs / name
    from safetensors.torch import load_file

    manifest = json.loads((run / "mixture" / "manifest.json").read_text())
    return {
        "config_seed": load_config(run / "config.yaml", schema=RunConfig).seed,
        "shards": [s["sha256"] for s in manifest["shards"]],
        "weights": load_file(str(run / "train" / "final" / "model.safetensors")),
        "losses": [r["loss"] for r in read_jsonl(run / "train" / "metrics.jsonl") if "loss" in r],
        "outputs": [r.get("outputs") or r.get("output") for r in read_jsonl(run / "eval_after" / "examples.jsonl")],
    }


def test_same_seed_same_run_other_seed_other_run(tmp_path, tiny_llama_dir):
    import torch

    path = write_config(tmp_path / "run.yaml", _config(tmp_path, tiny_llama_dir), "flanlab run run.yaml")
    a, b, c = _run(tmp_path, path, "a", 1), _run(tmp_path, path, "b", 1), _run(tmp_path, path, "c", 2)
    assert (a["config_seed"], b["config_seed"], c["config_seed"]) == (1, 1, 2)
    assert a["shards"] == b["shards"] and a["losses"] == b["losses"] and a["outputs"] == b["outputs"]
    assert all(torch.equal(a["weights"][k], b["weights"][k]) for k in a["weights"])
    # Another seed: another mixture sample, another training run, other sampled answers.
    assert a["shards"] != c["shards"]
    assert a["losses"] != c["losses"]
    assert any(not torch.equal(a["weights"][k], c["weights"][k]) for k in a["weights"])
    assert a["outputs"] != c["outputs"] and all(a["outputs"])


def test_sweep_and_mix_seed_flags_set_the_config_seed(tmp_path, tiny_llama_dir):
    from flanlab.experiments.config import SweepConfig
    from flanlab.experiments.sweep import plan_cells
    from tests.mixture.helpers import toy_mixture

    write_config(tmp_path / "run.yaml", run_config(tmp_path, tiny_llama_dir, tmp_path), "flanlab run run.yaml")
    sweep = {"kind": "sweep", "name": "grid", "run": "run.yaml",
             "axes": {"models": {"S": {"name": str(tiny_llama_dir)}}, "tasks": [1, 2]}}
    path = write_config(tmp_path / "sweep.yaml", sweep, "flanlab sweep sweep.yaml")
    # `flanlab sweep --seed 9 --data-dir D` becomes these overrides (experiments.commands._cli_overrides).
    cells = plan_cells(load_config(path, ["seed=9", f"data_dir={tmp_path}"], schema=SweepConfig), path)
    assert [(c.config.seed, c.config.data_dir) for c in cells] == [(9, tmp_path)] * 2

    (tmp_path / "toy").mkdir()
    mix = toy_mixture(tmp_path / "toy")
    assert main(["mix", str(mix), "--out", str(tmp_path / "m"), "--seed", "5"]) == 0
    assert json.loads((tmp_path / "m" / "manifest.json").read_text())["seed"] == 5
