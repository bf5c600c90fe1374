"""Inputs are checked before anything runs or is written: unknown subtasks, missing benchmark data,
unknown models offline, and reruns into a folder recorded under other settings."""

from __future__ import annotations

import json
import shutil

import pytest
import yaml

from flanlab.cli import main


def _eval(tiny_data, tmp_path, *extra, model="no/such-model", run="r"):
    return main(["eval", "--model", model, "--data-dir", str(tiny_data), "--runs-dir", str(tmp_path / "runs"),
                 "--run-name", run, *extra])


def test_unknown_subtask_is_an_error_with_did_you_mean(tiny_data, tmp_path, capsys):
    rc = _eval(tiny_data, tmp_path, "--benchmarks", "bbh,mmlu", "--subtasks", "yes_n,nope", "--dry-run")
    err = capsys.readouterr().err
    assert rc == 2
    assert "unknown subtasks 'yes_n' (did you mean 'yes_no'?), 'nope'" in err
    assert "bbh: yes_no" in err and "mmlu: astronomy" in err
    assert not (tmp_path / "runs").exists()  # nothing written, not even an empty run folder


def test_missing_benchmark_data_is_skipped_with_where_to_get_it(tiny_data, tmp_path, capsys):
    shutil.rmtree(tiny_data / "tydiqa")
    assert _eval(tiny_data, tmp_path, "--benchmarks", "mmlu,tydiqa", "--strategies", "direct", "--dry-run") == 0
    results = json.loads((tmp_path / "runs" / "r" / "results.json").read_text())
    assert results["by_benchmark_strategy"] == {"mmlu/direct": 2}
    note = next(n for n in results["notes"] if n.startswith("tydiqa skipped"))
    assert "tydiqa-goldp-v1.1-dev.json not found" in note and "storage.googleapis.com/tydiqa" in note
    assert "tydiqa skipped" in capsys.readouterr().err  # warned on the console, not only recorded


@pytest.mark.parametrize("extra", [["--benchmarks", "mmlu,tydiqa", "--strict"], ["--benchmarks", "tydiqa"]])
def test_missing_data_is_fatal_when_strict_or_alone(tiny_data, tmp_path, capsys, extra):
    shutil.rmtree(tiny_data / "tydiqa")
    assert _eval(tiny_data, tmp_path, *extra, "--strategies", "direct", "--dry-run") == 2
    assert "tydiqa-goldp-v1.1-dev.json not found" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


def test_unknown_model_offline_is_not_found_without_a_run_folder(tiny_data, tmp_path, capsys, monkeypatch):
    from flanlab.inference.loading import hub_offline

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    hub_offline.cache_clear()
    try:
        rc = _eval(tiny_data, tmp_path, "--benchmarks", "mmlu", "--strategies", "direct")
    finally:
        hub_offline.cache_clear()
    err = capsys.readouterr().err
    assert rc == 2
    assert "'no/such-model' not found locally" in err and "or on the hub (HF_HUB_OFFLINE is set)" in err
    assert not (tmp_path / "runs").exists()


def _config(tmp_path, run="r"):
    return yaml.safe_load((tmp_path / "runs" / run / "config.yaml").read_text())


@pytest.mark.slow
def test_rerun_with_other_settings_refuses_then_no_resume_starts_over(tiny_llama_dir, tiny_data, tmp_path, capsys):
    base = ["--benchmarks", "bbh", "--strategies", "self_consistency", "--limit", "1", "--seed", "0"]
    assert _eval(tiny_data, tmp_path, *base, "--samples", "3", "--max-new-tokens", "4", model=str(tiny_llama_dir)) == 0
    before = (tmp_path / "runs" / "r" / "config.yaml").read_text()
    capsys.readouterr()
    rc = _eval(tiny_data, tmp_path, *base, "--samples", "5", "--max-new-tokens", "6", model=str(tiny_llama_dir))
    err = capsys.readouterr().err
    assert rc == 2
    assert "max_new_tokens: 4 -> 6" in err and "samples: 3 -> 5" in err and "--no-resume" in err
    assert "--run-name" in err and len(err.strip().splitlines()) == 1
    assert (tmp_path / "runs" / "r" / "config.yaml").read_text() == before  # nothing written
    # Settings that do not change results (batch size) resume; the records are reused.
    assert _eval(tiny_data, tmp_path, *base, "--samples", "3", "--max-new-tokens", "4", "--batch-size", "2",
                 model=str(tiny_llama_dir)) == 0
    assert _eval(tiny_data, tmp_path, *base, "--samples", "5", "--max-new-tokens", "6", "--no-resume",
                 model=str(tiny_llama_dir)) == 0
    assert _config(tmp_path)["samples"] == 5 and _config(tmp_path)["max_new_tokens"] == 6
    records = [json.loads(line) for line in (tmp_path / "runs" / "r" / "examples.jsonl").read_text().splitlines()]
    sc = [r for r in records if r["strategy"] == "self_consistency"]
    assert len(sc) == 1 and len(sc[0]["outputs"]) == 5  # the maj@3 record was dropped, not reused


def test_no_resume_also_drops_an_earlier_data_parallel_runs_files(tmp_path):
    """Per-process records of an earlier `accelerate launch` run would otherwise be merged into the
    fresh one; records kept elsewhere (another cache path) are left alone."""
    from flanlab.core.runs import RunDir
    from flanlab.evaluation.api import clear_results
    from flanlab.evaluation.config import EvalConfig

    run = RunDir.create(str(tmp_path / "r"))
    names = ["examples.jsonl", "examples.rank0.jsonl", "examples.rank1.jsonl", "requests.rank1.sqlite",
             "requests.rank1.sqlite-wal", "results.json", "config.yaml", "log.txt"]
    for name in names:
        (run.path / name).write_text("x")
    clear_results(run, EvalConfig.model_validate({"model": {"name": "m"}}))
    assert sorted(p.name for p in run.path.iterdir()) == ["log.txt"]
    for name in names:
        (run.path / name).write_text("x")
    clear_results(run, EvalConfig.model_validate({"model": {"name": "m", "cache": str(tmp_path / "c.sqlite")}}))
    assert sorted(p.name for p in run.path.iterdir()) == ["log.txt", "requests.rank1.sqlite", "requests.rank1.sqlite-wal"]


def test_cpu_linear_flag_is_recorded_in_the_model_section(tiny_data, tmp_path):
    assert _eval(tiny_data, tmp_path, "--benchmarks", "mmlu", "--strategies", "direct", "--cpu-linear", "torch",
                 "--dry-run") == 0
    assert _config(tmp_path)["model"]["cpu_linear"] == "torch"
