"""``flanlab run``: every stage runs once, records its resolved config, and is skipped when done."""

from __future__ import annotations

import json

import pytest
import yaml

from flanlab.cli import main
from flanlab.core.config import ConfigError, load_config
from flanlab.experiments.config import RunConfig
from flanlab.experiments.pipeline import deep_merge, plan_run

from .conftest import run_config, write_config


def test_deep_merge_nested():
    base = {"a": {"b": 1, "c": [1]}, "d": 2}
    assert deep_merge(base, {"a": {"c": [2]}, "e": 3}) == {"a": {"b": 1, "c": [2]}, "d": 2, "e": 3}
    assert base == {"a": {"b": 1, "c": [1]}, "d": 2}


def test_plan_resolves_shared_fields_and_validates(tmp_path, tiny_llama_dir):
    path = write_config(tmp_path / "run.yaml", run_config(tmp_path, tiny_llama_dir, tmp_path, tasks=2),
                        "flanlab run run.yaml")
    cfg = load_config(path, schema=RunConfig)
    plans = {p.name: p for p in plan_run(cfg, tmp_path / "out", path)}
    assert list(plans) == ["eval_before", "mixture", "train", "eval_after"]
    assert [m["file"] for m in plans["mixture"].config["members"]] == ["tasks/copy.jsonl", "tasks/upper.jsonl"]
    assert plans["train"].config["data"]["mixture"] == str(tmp_path / "out" / "mixture")
    assert plans["train"].config["model"]["name"] == str(tiny_llama_dir)
    assert plans["eval_after"].config["model"]["name"] == str(tmp_path / "out" / "train" / "final")
    # tasks: 0 is the base model alone
    base_only = cfg.model_copy(update={"tasks": 0})
    assert [p.name for p in plan_run(base_only, tmp_path / "o2", path)] == ["eval_before"]
    with pytest.raises(ConfigError, match="tasks: 5 but the mixture has only 3 members"):
        plan_run(cfg.model_copy(update={"tasks": 5}), tmp_path / "o3", path)


def test_bad_stage_key_is_caught_before_anything_runs(tmp_path, tiny_llama_dir, capsys):
    cfg = run_config(tmp_path, tiny_llama_dir, tmp_path)
    cfg["train"]["set"]["train"]["stepz"] = 3
    path = write_config(tmp_path / "run.yaml", cfg, "flanlab run run.yaml")
    assert main(["run", str(path), "--runs-dir", str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err
    assert "tiny: train: unknown key 'train.stepz' (did you mean 'steps'?)" in err
    assert not (tmp_path / "runs" / "tiny" / "mixture").exists()


@pytest.mark.slow
def test_run_end_to_end_then_resume(tmp_path, tiny_llama_dir, shared_data, capsys):
    path = write_config(tmp_path / "run.yaml", run_config(tmp_path, tiny_llama_dir, shared_data),
                        "flanlab run run.yaml")
    argv = ["run", str(path), "--runs-dir", str(tmp_path / "runs"), "--seed", "0"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    run = tmp_path / "runs" / "tiny"
    for stage in ("mixture", "train", "eval_before", "eval_after"):
        assert yaml.safe_load((run / "configs" / f"{stage}.yaml").read_text())["kind"] == (
            stage if stage in ("mixture", "train") else "eval")
    assert (run / "mixture" / "manifest.json").is_file()
    train = json.loads((run / "train" / "results.json").read_text())
    assert train["steps"] == 3
    results = json.loads((run / "results.json").read_text())
    before, after = results["stages"]["eval_before"], results["stages"]["eval_after"]
    assert set(before) == set(after) == {"mmlu/direct"}
    # 8 four-way questions scored by log-likelihood: a multiple of 12.5 %.
    assert before["mmlu/direct"] % 12.5 == 0 and after["mmlu/direct"] % 12.5 == 0
    assert "| mmlu/direct |" in out and "report: " in out
    md = (run / "report.md").read_text()
    assert "| mmlu (direct) |" in md and "## Per-benchmark breakdown: mmlu (direct)" in md
    assert "| astronomy |" in md and "| virology |" in md

    # Rerun: every stage is complete and skipped; results unchanged.
    mtime = (run / "eval_after" / "results.json").stat().st_mtime_ns
    assert main(argv) == 0
    assert (run / "eval_after" / "results.json").stat().st_mtime_ns == mtime
    log = (run / "log.txt").read_text()
    assert log.count("complete (train/results.json exists), skipped") == 1

    # Interrupted after training: only the missing stage runs again, to the same numbers.
    (run / "eval_after" / "results.json").unlink()
    assert main(argv) == 0
    assert json.loads((run / "results.json").read_text()) == results
    log = (run / "log.txt").read_text()
    assert log.count("eval_after: running") == 2 and log.count("train: running") == 1

    # Another config over the same folder is refused, naming what changed.
    assert main([*argv[:2], "train.set.train.steps=4", *argv[2:]]) == 2
    assert "its train stage was made with another config (train.steps changed" in capsys.readouterr().err
