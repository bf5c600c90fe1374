"""``flanlab run --flan-repo`` / ``flan_repo:``: the run hands the FLAN checkout to its mixture stage."""

from __future__ import annotations

from flanlab.core.config import load_config
from flanlab.experiments.config import RunConfig
from flanlab.experiments.pipeline import plan_run

from .conftest import run_config, write_config


def test_run_flan_repo_reaches_the_mixture_stage(tmp_path, tiny_llama_dir):
    path = write_config(tmp_path / "run.yaml", run_config(tmp_path, tiny_llama_dir, tmp_path, tasks=2),
                        "flanlab run run.yaml")
    cfg = load_config(path, ["flan_repo=/checkouts/FLAN"], schema=RunConfig)
    plans = {p.name: p for p in plan_run(cfg, tmp_path / "out", path)}
    assert plans["mixture"].config["flan_repo"] == "/checkouts/FLAN"
    # Without it the mixture keeps its own setting (none: flanlab's templates or $FLANLAB_FLAN_REPO).
    plain = {p.name: p for p in plan_run(load_config(path, schema=RunConfig), tmp_path / "o2", path)}
    assert plain["mixture"].config["flan_repo"] is None
