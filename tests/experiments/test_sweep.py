"""``flanlab sweep``: a 2 × 2 grid of tiny runs and the paper's figures, and job scripts per cell."""

from __future__ import annotations

import json
import os

import pytest
import yaml

from flanlab.cli import main
from flanlab.core.config import ConfigError, load_config
from flanlab.experiments.config import RunConfig, SweepConfig
from flanlab.experiments.sweep import plan_cells, sweep_figures

from .conftest import run_config, write_config


def _sweep(tmp_path, models: dict, data, **axes) -> tuple:
    base = run_config(tmp_path, next(iter(models.values())), data)
    base["eval"]["before"] = False  # cells that finetune report their finetuned model only
    write_config(tmp_path / "run.yaml", base, "flanlab run run.yaml")
    sweep = {"kind": "sweep", "name": "grid", "run": "run.yaml",
             "axes": {"models": {k: {"name": str(v)} for k, v in models.items()}, **axes},
             "cot_members": [{"file": "tasks/length.jsonl", "submixture": "cot"}]}
    return write_config(tmp_path / "sweep.yaml", sweep, "flanlab sweep sweep.yaml"), sweep


def test_cells_and_errors(tmp_path, tiny_llama_dir):
    path, raw = _sweep(tmp_path, {"S": tiny_llama_dir, "M": tiny_llama_dir}, tmp_path,
                       tasks=[0, 2], cot=[False, True])
    cells = plan_cells(load_config(path, schema=SweepConfig), path)
    # one base-model cell per model: without finetuning the CoT axis changes nothing
    assert [c.name for c in cells] == ["S-t0", "S-t2-nocot", "S-t2-cot", "M-t0", "M-t2-nocot", "M-t2-cot"]
    cot_cell = cells[2].config
    assert cot_cell.tasks == 2 and cot_cell.extra_members == [{"file": "tasks/length.jsonl", "submixture": "cot"}]
    raw["cot_members"] = []
    write_config(path, raw, "flanlab sweep sweep.yaml")
    with pytest.raises(ConfigError, match="cot_members is empty"):
        load_config(path, schema=SweepConfig)


def test_emit_jobs_writes_a_runnable_script_per_cell(tmp_path, tiny_llama_dir, capsys):
    path, _ = _sweep(tmp_path, {"S": tiny_llama_dir}, tmp_path, tasks=[1, 3])
    jobs = tmp_path / "jobs"
    assert main(["sweep", str(path), "--runs-dir", str(tmp_path / "runs"), "--emit-jobs", str(jobs)]) == 0
    scripts = capsys.readouterr().out.split()
    assert [os.path.basename(s) for s in scripts] == ["S-t1-nocot.sh", "S-t3-nocot.sh"]
    text = (jobs / "S-t3-nocot.sh").read_text()
    assert os.access(jobs / "S-t3-nocot.sh", os.X_OK) and text.startswith("#!/usr/bin/env bash")
    assert f"-m flanlab run {jobs / 'S-t3-nocot.yaml'} --run-name {tmp_path / 'runs' / 'grid' / 'cells' / 'S-t3-nocot'}" in text
    # The cell config stands alone: absolute stage paths, loads as a run config.
    cell = load_config(jobs / "S-t3-nocot.yaml", schema=RunConfig)
    assert cell.tasks == 3 and cell.name == "grid-S-t3-nocot"
    assert cell.mixture.set["members"][0]["file"] == str(tmp_path / "tasks" / "copy.jsonl")
    assert not (tmp_path / "runs" / "grid" / "cells").exists()  # nothing ran


def test_cot_figure_from_rows():
    cfg = SweepConfig.model_validate({"run": "r.yaml", "axes": {"models": {"S": {"name": "a"}, "M": {"name": "b"}},
                                                                "tasks": [None], "cot": [False, True]},
                                      "cot_members": [{"file": "x.jsonl"}]})
    rows = [{"model": m, "tasks": None, "cot": c, "mean": {"direct": 30 + 5 * c + i, "cot": 10 + 12 * c + i}}
            for i, m in enumerate(["S", "M"]) for c in (False, True)]
    figs = sweep_figures(rows, cfg)
    assert sorted(figs) == ["cot_vs_direct.png", "scaling_tasks.png"]
    assert all(png.startswith(b"\x89PNG") for png in figs.values())


@pytest.mark.slow
def test_tiny_sweep_2x2_runs_and_plots(tmp_path, tiny_llama_dir, tiny_llama_wide_dir, shared_data, capsys):
    path, _ = _sweep(tmp_path, {"S": tiny_llama_dir, "M": tiny_llama_wide_dir}, shared_data, tasks=[0, 2])
    assert main(["sweep", str(path), "--runs-dir", str(tmp_path / "runs")]) == 0
    out = capsys.readouterr().out
    root = tmp_path / "runs" / "grid"
    results = json.loads((root / "results.json").read_text())
    cells = {c["cell"]: c for c in results["cells"]}
    assert sorted(cells) == ["M-t0", "M-t2-nocot", "S-t0", "S-t2-nocot"]
    # tasks 0 evaluates the base model; the others their finetuned model
    assert cells["S-t0"]["stage"] == "eval_before" and cells["S-t2-nocot"]["stage"] == "eval_after"
    assert not (root / "cells" / "S-t0" / "train").exists()
    assert all(c["mean"]["direct"] % 12.5 == 0 for c in cells.values())  # 8 four-way MMLU questions
    # every cell's score carries n, its 95 % interval (Wilson: 8 right/wrong MMLU items) and chance
    for c in cells.values():
        assert c["n"] == {"mmlu/direct": 8} and c["chance"] == {"direct": 25.0}
        lo, hi = c["mean_ci95"]["direct"]
        assert lo <= c["mean"]["direct"] <= hi and hi - lo > 20
    assert results["figures"] == ["scaling_tasks.png"]
    png = (root / "plots" / "scaling_tasks.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 10_000
    html = (root / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 1 and "M-t2-nocot" in html
    assert "| S-t2-nocot |" in out
    assert yaml.safe_load((root / "cells" / "M-t2-nocot" / "configs" / "train.yaml").read_text())["model"][
        "name"] == str(tiny_llama_wide_dir)


@pytest.mark.slow
def test_tiny_sweep_cot_axis_draws_the_cot_figure(tmp_path, tiny_llama_dir, shared_data):
    """A real grid over with/without CoT data, evaluated direct and with CoT, draws both figures."""
    path, raw = _sweep(tmp_path, {"S": tiny_llama_dir}, shared_data, tasks=[2], cot=[False, True])
    run = yaml.safe_load((tmp_path / "run.yaml").read_text())
    run["eval"]["set"].update({"strategies": ["direct", "cot"], "limit": 2, "max_new_tokens": 16})
    write_config(tmp_path / "run.yaml", run, "flanlab run run.yaml")
    assert main(["sweep", str(path), "--runs-dir", str(tmp_path / "runs")]) == 0
    root = tmp_path / "runs" / "grid"
    results = json.loads((root / "results.json").read_text())
    cells = {c["cell"]: c for c in results["cells"]}
    assert sorted(cells) == ["S-t2-cot", "S-t2-nocot"]
    assert all(set(c["mean"]) == {"direct", "cot"} for c in cells.values())
    assert sorted(results["figures"]) == ["cot_vs_direct.png", "scaling_tasks.png"]
    png = (root / "plots" / "cot_vs_direct.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 10_000
