"""Data-parallel evaluation (issue #18, item 6): two processes started with ``accelerate launch``
shard the requests, the main process gathers them, and the results equal a single-process run's;
an interrupted parallel run resumes."""

from __future__ import annotations

import json
import shutil

import pytest

from flanlab.cli import main
from flanlab.core.io import read_jsonl
from tests.training.helpers import write_bbh_copy_data
from tests.training.test_multiprocess import launch

TIMING = {"seconds", "sent"}


def _args(model, data, run) -> list[str]:
    return ["eval", "--model", str(model), "--benchmarks", "bbh", "--strategies", "direct,self_consistency",
            "--samples", "2", "--limit", "5", "--max-new-tokens", "6", "--data-dir", str(data), "--seed", "3",
            "--run-name", str(run)]


def _results(run) -> dict:
    data = json.loads((run / "results.json").read_text())
    return {k: v for k, v in data.items() if k not in TIMING}


@pytest.mark.slow
def test_two_processes_evaluate_like_one_and_resume(tmp_path, tiny_llama_dir):
    data = write_bbh_copy_data(tmp_path / "data", 8)
    one, two = tmp_path / "one", tmp_path / "two"
    assert main(_args(tiny_llama_dir, data, one)) == 0
    done = launch("accelerate", _args(tiny_llama_dir, data, two), tmp_path)
    # direct, cot (self-consistency's prompts) and self-consistency: 3 × 5 requests, split 8 / 7.
    assert "8 of the 15 pending on process 0 of 2" in (two / "log.txt").read_text()
    assert _results(one) == _results(two)
    assert read_jsonl(one / "examples.jsonl") == read_jsonl(two / "examples.jsonl")
    assert len(read_jsonl(two / "examples.jsonl")) == 15
    assert not list(two.glob("examples.rank*.jsonl"))
    assert done.stdout.count("| bbh") >= 1

    # An interrupted parallel run: some records merged, some still in a rank file, the rest missing.
    part = tmp_path / "part"
    part.mkdir()
    shutil.copy(two / "config.yaml", part / "config.yaml")
    records = read_jsonl(two / "examples.jsonl")
    (part / "examples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records[:3]))
    (part / "examples.rank1.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records[3:5]))
    launch("accelerate", _args(tiny_llama_dir, data, part), tmp_path)
    assert _results(part) == _results(one)
    assert json.loads((part / "results.json").read_text())["sent"] == 10
    assert sorted(map(json.dumps, read_jsonl(part / "examples.jsonl"))) == sorted(map(json.dumps, records))
