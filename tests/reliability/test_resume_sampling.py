"""Resuming an evaluation whose requests are sampled (self-consistency) or generated: the requests
recomputed after a kill land in other batches than in the uninterrupted run, yet their outputs are
the same — each request's samples depend on its own seed, not on its batch."""

from __future__ import annotations

import json

import pytest

from flanlab.cli import main
from flanlab.core.io import read_jsonl


@pytest.fixture
def gsm8k_data(tmp_path):
    root = tmp_path / "data"
    (root / "gsm8k").mkdir(parents=True)
    rows = [{"question": f"Tom has {i} apples and buys {i + 2}. How many apples does he have?",
             "answer": f"{i} + {i + 2} = {2 * i + 2}\n#### {2 * i + 2}"} for i in range(6)]
    (root / "gsm8k" / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return root


@pytest.mark.slow
def test_resumed_samples_equal_uninterrupted_samples(tiny_llama_dir, gsm8k_data, tmp_path):
    def args(name):
        return ["eval", "--model", str(tiny_llama_dir), "--data-dir", str(gsm8k_data), "--benchmarks", "gsm8k",
                "--strategies", "self_consistency", "--samples", "3", "--max-new-tokens", "6", "--seed", "1",
                "--runs-dir", str(tmp_path / "runs"), "--run-name", name]

    assert main(args("whole")) == 0
    ref = {(r["strategy"], r["index"]): r for r in read_jsonl(tmp_path / "runs" / "whole" / "examples.jsonl")}
    assert len(ref) == 12  # self_consistency brings its greedy cot baseline along
    # A run killed after 4 records: the other 8 are recomputed in batches of their own.
    killed = tmp_path / "runs" / "killed"
    killed.mkdir(parents=True)
    lines = (tmp_path / "runs" / "whole" / "examples.jsonl").read_text(encoding="utf-8").splitlines(keepends=True)
    (killed / "examples.jsonl").write_text("".join(lines[:4]), encoding="utf-8")
    assert main(args("killed")) == 0
    res = json.loads((killed / "results.json").read_text())
    assert res["sent"] == 8
    got = {(r["strategy"], r["index"]): r for r in read_jsonl(killed / "examples.jsonl")}
    assert got.keys() == ref.keys()
    for key, r in got.items():
        assert r["outputs"] == ref[key]["outputs"], key
        assert r["answer"] == ref[key]["answer"] and r["correct"] == ref[key]["correct"]
    whole = json.loads((tmp_path / "runs" / "whole" / "results.json").read_text())
    assert res["scores"] == whole["scores"]
