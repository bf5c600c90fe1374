"""``flanlab quickstart``: its run config, its up-front description, and (slow) the real thing at
a small size: SmolLM2-135M, BIG-bench + CoT mixture, LoRA, BBH before/after, report."""

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
from flanlab.experiments.pipeline import plan_run
from flanlab.experiments.quickstart import QuickstartOptions, describe, estimate_seconds, quickstart_config


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
    assert plans["eval_before"]["model"]["name"] == "smollm2-135m"
    assert plans["eval_after"]["benchmarks"] == ["bbh"] and plans["eval_after"]["limit"] == 10
    no_cot = quickstart_config(dataclasses.replace(opts, cot=False), shared_data, ["bigbench.a"])
    assert [m["task"] for m in no_cot["mixture"]["set"]["members"]] == ["bigbench.a"]


def test_default_run_is_budgeted_under_15_minutes_and_says_so():
    opts = QuickstartOptions()
    assert estimate_seconds(opts) < 15 * 60
    text = describe(opts, None, [f"bigbench.t{i}" for i in range(16)])
    assert "40 steps" in text and re.search(r"about \d+ minutes", text) and "no CoT data" in text
    with pytest.raises(UserError, match="--steps must be >= 1"):
        QuickstartOptions(steps=0)


def test_missing_data_dir_is_one_clear_error(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("FLANLAB_DATA_DIR", raising=False)
    assert main(["quickstart", "--runs-dir", str(tmp_path)]) == 2
    assert "pass --data-dir DIR" in capsys.readouterr().err


@pytest.mark.slow
def test_quickstart_small(tmp_path, shared_data, capsys, monkeypatch):
    monkeypatch.setenv("FLANLAB_DATA_DIR", str(shared_data))  # restored afterwards (the CLI sets it)
    argv = ["quickstart", "--steps", "1", "--tasks", "2", "--limit", "2", "--subtasks", "sports_understanding",
            "--batch-size", "2", "--seq-len", "128", "--data-dir", str(shared_data), "--runs-dir", str(tmp_path)]
    assert main(argv) == 0
    out = capsys.readouterr()
    assert "flanlab quickstart will:" in out.err.replace("\n", " ") or "flanlab quickstart will:" in out.out
    assert "| bbh/direct |" in out.out
    run = tmp_path / "quickstart"
    results = json.loads((run / "results.json").read_text())
    assert set(results["stages"]) == {"eval_before", "eval_after"}
    assert results["train"]["steps"] == 1
    before, after = results["stages"]["eval_before"]["bbh/direct"], results["stages"]["eval_after"]["bbh/direct"]
    assert before in (0.0, 50.0, 100.0) and after in (0.0, 50.0, 100.0)  # 2 examples
    md = (run / "report.md").read_text()
    assert "| benchmark | chance | before | after | Δ after − before [95 % CI] |" in md
    assert f"| bbh (direct) | 50.0 | {before:.1f} [" in md and "n=2 (no clear change) |" in md
    assert (run / "plots" / "summary.png").read_bytes().startswith(b"\x89PNG")
    assert "data:image/png;base64," in (run / "report.html").read_text()
    # The written config reruns as a plain `flanlab run`, finding every stage complete.
    assert main(["run", str(run / "quickstart.yaml"), "--run-name", str(run)]) == 0
    assert (run / "log.txt").read_text().count("skipped") >= 4
