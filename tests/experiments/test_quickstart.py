"""``flanlab quickstart``: its run config, its up-front description, the paired interval, the
recipe end to end on a tiny random model (held-out loss falls), and (slow) the real thing at a
small size: Gemma 3 270M base, BIG-bench + CoT mixture, LoRA, BBH zero-/3-shot before/after, report."""

from __future__ import annotations

import dataclasses
import json
import re

import pytest

from flanlab.cli import main
from flanlab.core.config import validate
from flanlab.core.errors import UserError
from flanlab.experiments.commands import QS_DEFAULTS
from flanlab.experiments.config import RunConfig
from flanlab.experiments.pipeline import plan_run, run_pipeline
from flanlab.experiments.quickstart import (
    DEFAULT_SUBTASKS,
    QuickstartOptions,
    Speed,
    describe,
    estimate_seconds,
    paired_difference,
    quickstart_config,
)


def test_cli_defaults_match_options():
    defaults = {f.name: f.default for f in dataclasses.fields(QuickstartOptions)}
    assert {k: defaults[k] for k in QS_DEFAULTS} == QS_DEFAULTS


def test_config_is_a_valid_run(tmp_path, shared_data):
    opts = QuickstartOptions(steps=5, tasks=2)
    raw = quickstart_config(opts, shared_data, ["bigbench.a", "bigbench.b"])
    cfg = validate(RunConfig, raw)
    members = raw["mixture"]["set"]["members"]
    assert [m["task"] for m in members] == ["bigbench.a", "bigbench.b", "cot_*"]  # shared data has flan_cot/
    plans = {p.name: p.config for p in plan_run(cfg, tmp_path, tmp_path / "quickstart.yaml")}
    assert plans["train"]["lora"]["enabled"] and plans["train"]["train"]["steps"] == 5
    assert plans["train"]["optim"]["schedule"] == "cosine" and plans["train"]["optim"]["warmup_steps"] >= 1
    assert plans["eval_before"]["model"]["name"] == "gemma3-270m"  # a base model, not instruction-tuned
    assert plans["eval_after"]["benchmarks"] == ["bbh"] and plans["eval_after"]["limit"] == 10
    assert plans["eval_after"]["strategies"] == ["zs_direct", "direct"]  # zero-shot, and 3-shot for contrast
    # One prompt convention for training and both evaluations.
    assert plans["train"]["prompt_format"] == plans["eval_before"]["prompt_format"] == \
        plans["eval_after"]["prompt_format"] == {"style": "plain", "separator": "\n"}
    # Flan's rules: a per-task cap, fixed submixture rates, CoT a small share.
    mix = plans["mixture"]
    assert mix["default_cap"] == 40 and mix["rule"] == "examples_proportional"
    assert mix["submixture_rates"] == {"bigbench": 0.9, "cot": 0.1}
    no_cot = quickstart_config(dataclasses.replace(opts, cot=False), shared_data, ["bigbench.a"])
    assert [m["task"] for m in no_cot["mixture"]["set"]["members"]] == ["bigbench.a"]


def test_estimate_comes_from_the_measured_speed_and_is_said_up_front():
    opts = QuickstartOptions()
    slow, fast = Speed(step_s=10.0, request_s=2.0, threads=2), Speed(step_s=5.0, request_s=1.0, threads=2)
    assert estimate_seconds(opts, slow) == pytest.approx(2 * estimate_seconds(opts, fast))
    text = describe(opts, None, [f"bigbench.t{i}" for i in range(16)], estimate_seconds(opts, fast), fast)
    assert "30 steps" in text and re.search(r"about \d+ minutes", text) and "no CoT data" in text
    assert "a training step takes 5.0 s" in text
    with pytest.raises(UserError, match="--steps must be >= 1"):
        QuickstartOptions(steps=0)


def test_paired_difference_known_cases():
    # All 40 items go 0 -> 1: the difference is +100 with no spread at all.
    d = paired_difference([0.0] * 40, [1.0] * 40)
    assert d["n"] == 40 and d["diff"] == d["low"] == d["high"] == 100.0 and d["excludes_zero"]
    # Identical answers: zero, and an interval of zero width that does not exclude it.
    d = paired_difference([1.0, 0.0] * 20, [1.0, 0.0] * 20)
    assert d["diff"] == d["low"] == d["high"] == 0.0 and not d["excludes_zero"]
    # 4 items gained, 4 lost out of 40: the mean is 0 and the interval straddles it (SE = 7.1 points).
    before = [1.0] * 4 + [0.0] * 4 + [0.0] * 32
    after = [0.0] * 4 + [1.0] * 4 + [0.0] * 32
    d = paired_difference(before, after)
    assert d["diff"] == 0.0 and -18 < d["low"] < -10 and 10 < d["high"] < 18 and not d["excludes_zero"]
    # The same seed gives the same interval.
    assert paired_difference(before, after) == d


def test_default_subtasks_follow_the_stated_rule(shared_data):
    """The 8 BBH subtasks whose targets come from at most 7 labels, with the shortest mean input."""
    rows = []
    for path in sorted((shared_data / "bbh" / "tasks").glob("*.json")):
        ex = json.loads(path.read_text())["examples"]
        if len({e["target"] for e in ex}) <= 7:
            rows.append((sum(len(e["input"]) for e in ex) / len(ex), path.stem))
    assert {name for _, name in sorted(rows)[:8]} == set(DEFAULT_SUBTASKS)


def test_recipe_end_to_end_on_a_tiny_model_lowers_heldout_loss(tmp_path, shared_data, tiny_llama_dir, monkeypatch):
    """The quickstart's run config at tiny size: the CoT tasks stand in for BIG-bench (no sdist needed)."""
    monkeypatch.setenv("FLANLAB_DATA_DIR", str(shared_data))  # where the mixture stage finds task data
    opts = QuickstartOptions(steps=12, tasks=2, limit=2, subtasks=("boolean_expressions",), seq_len=128,
                             cot=False, fewshot=False, lr=1e-2, cap=64)
    raw = quickstart_config(opts, shared_data, ["cot_creak", "cot_strategyqa"])
    raw["model"]["name"] = str(tiny_llama_dir)
    raw["report"]["enabled"] = False
    cfg = validate(RunConfig, raw)
    from flanlab.core.runs import RunDir

    run = RunDir.create(str(tmp_path / "qs"))
    result = run_pipeline(cfg, run, tmp_path / "quickstart.yaml")
    train = result.results["train"]
    assert train["heldout_loss"] < train["initial_heldout_loss"]
    assert set(result.results["stages"]) == {"eval_before", "eval_after"}
    from flanlab.experiments.quickstart import paired_table

    table, data = paired_table(run.path)
    assert data["bbh/zs_direct"]["n"] == 2 and "| bbh | zs_direct | 2 |" in table


def test_missing_data_dir_is_one_clear_error(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("FLANLAB_DATA_DIR", raising=False)
    assert main(["quickstart", "--runs-dir", str(tmp_path)]) == 2
    assert "pass --data-dir DIR" in capsys.readouterr().err


@pytest.mark.slow
def test_quickstart_small(tmp_path, shared_data, capsys, monkeypatch):
    monkeypatch.setenv("FLANLAB_DATA_DIR", str(shared_data))  # restored afterwards (the CLI sets it)
    argv = ["quickstart", "--steps", "1", "--tasks", "2", "--limit", "2", "--subtasks", "sports_understanding",
            "--batch-size", "2", "--seq-len", "128", "--data-dir", str(shared_data), "--runs-dir", str(tmp_path),
            "--no-fewshot"]
    assert main(argv) == 0
    out = capsys.readouterr()
    assert "flanlab quickstart will:" in out.err.replace("\n", " ") or "flanlab quickstart will:" in out.out
    assert "| bbh | zs_direct | 2 |" in out.out and "95 % CI" in out.out
    run = tmp_path / "quickstart"
    results = json.loads((run / "results.json").read_text())
    assert set(results["stages"]) == {"eval_before", "eval_after"}
    assert results["train"]["steps"] == 1
    paired = json.loads((run / "paired.json").read_text())["bbh/zs_direct"]
    assert paired["n"] == 2 and paired["before"] in (0.0, 50.0, 100.0) and paired["after"] in (0.0, 50.0, 100.0)
    assert (run / "plots" / "summary.png").read_bytes().startswith(b"\x89PNG")
    assert "data:image/png;base64," in (run / "report.html").read_text()
    # The written config reruns as a plain `flanlab run`, finding every stage complete.
    assert main(["run", str(run / "quickstart.yaml"), "--run-name", str(run)]) == 0
    assert (run / "log.txt").read_text().count("skipped") >= 4
