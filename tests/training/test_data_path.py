"""Training reads mixtures through the mixture stage's one reader and builds a missing mixture
through the mixture API (issue #18, item 1)."""

from __future__ import annotations

import json
import subprocess

import torch
from safetensors.torch import load_file

from flanlab.cli import main
from flanlab.core.io import read_jsonl
from flanlab.mixture.shards import iter_mixture
from flanlab.training.data import iter_rows
from tests.training.helpers import copy_task_rows, write_config, write_mixture


def _losses(run) -> list[float]:
    return [r["loss"] for r in read_jsonl(run / "metrics.jsonl") if "loss" in r]


def test_every_mixture_format_reads_the_same_rows(tmp_path):
    rows = copy_task_rows(30, seed=2)
    got = {}
    for fmt in ("jsonl", "jsonl.zst", "parquet"):
        folder = write_mixture(tmp_path / fmt.replace(".", "_"), rows, shards=3, fmt=fmt)
        got[fmt] = [(e.inputs, e.targets, e.task) for e in iter_rows(folder)]
        # The training reader and the mixture stage's reader are one: same rows, same order.
        assert got[fmt] == [(r["inputs"], r["targets"], r["task"]) for r in iter_mixture(folder)]
    assert got["jsonl"] == got["jsonl.zst"] == got["parquet"]
    assert len(got["jsonl"]) == 30


def test_parquet_mixture_trains_like_jsonl(tmp_path, tiny_llama_dir):
    rows = copy_task_rows(80, seed=4)
    runs = {}
    for fmt in ("jsonl", "parquet"):
        mix = write_mixture(tmp_path / f"mix_{fmt}", rows, fmt=fmt)
        cfg = write_config(tmp_path / f"{fmt}.yaml", tiny_llama_dir, mix, train={"steps": 2, "dropout": 0.0})
        assert main(["train", str(cfg), "--run-name", str(tmp_path / fmt)]) == 0
        runs[fmt] = tmp_path / fmt
    assert _losses(runs["jsonl"]) == _losses(runs["parquet"]) and len(_losses(runs["jsonl"])) == 2
    wa = load_file(str(runs["jsonl"] / "final" / "model.safetensors"))
    wb = load_file(str(runs["parquet"] / "final" / "model.safetensors"))
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_missing_mixture_is_built_through_the_mixture_api(tmp_path, tiny_llama_dir, monkeypatch):
    from tests.mixture.helpers import toy_mixture

    mix_cfg = toy_mixture(tmp_path, extra="output_format: parquet\n")
    built = tmp_path / "built"

    def no_subprocess(*args, **kwargs):
        raise AssertionError(f"training started a subprocess: {args}")

    monkeypatch.setattr(subprocess, "run", no_subprocess)
    monkeypatch.setattr(subprocess, "Popen", no_subprocess)
    cfg = write_config(tmp_path / "t.yaml", tiny_llama_dir, built, train={"steps": 1},
                       data={"build_config": str(mix_cfg)})
    assert main(["train", str(cfg), "--run-name", str(tmp_path / "run")]) == 0
    manifest = json.loads((built / "manifest.json").read_text())
    assert manifest["output_format"] == "parquet" and manifest["name"] == "toy"
    assert [s["file"].endswith(".parquet") for s in manifest["shards"]] == [True] * len(manifest["shards"])
    assert json.loads((tmp_path / "run" / "results.json").read_text())["steps"] == 1


def test_manifest_without_a_shard_list_is_a_clear_error(tmp_path, tiny_llama_dir, capsys):
    mix = write_mixture(tmp_path / "mix", copy_task_rows(10))
    (mix / "manifest.json").write_text(json.dumps({"rows": 10}))
    cfg = write_config(tmp_path / "c.yaml", tiny_llama_dir, mix)
    assert main(["train", str(cfg), "--run-name", str(tmp_path / "r")]) == 2
    assert "manifest.json: expected 'shards'" in capsys.readouterr().err


def test_missing_shard_is_named(tmp_path, tiny_llama_dir, capsys):
    mix = write_mixture(tmp_path / "mix", copy_task_rows(10))
    (mix / "shard-00001-of-00002.jsonl").unlink()
    cfg = write_config(tmp_path / "c.yaml", tiny_llama_dir, mix)
    assert main(["train", str(cfg), "--run-name", str(tmp_path / "r")]) == 2
    assert "shard-00001-of-00002.jsonl: shard listed in manifest.json is missing" in capsys.readouterr().err
