"""SIGKILL during ``flanlab eval``: rerunning resumes, recomputes no finished request, and gives
the results of an uninterrupted run."""

from __future__ import annotations

import json

import pytest

from flanlab.cli import main
from flanlab.core.io import read_jsonl
from tests.reliability.conftest import sigkill, start, wait_stopped

QUESTIONS = 160  # 3 chunks of the runner (64, 64, 32)


def _key(r: dict) -> tuple:
    return (r["benchmark"], r["subtask"], r["index"], r["strategy"])


def _eval_args(model, data, runs, name) -> list[str]:
    return ["eval", "--model", str(model), "--data-dir", str(data), "--benchmarks", "mmlu",
            "--strategies", "direct", "--runs-dir", str(runs), "--run-name", name, "--seed", "0",
            "--batch-size", "8"]


def _assert_same_records(got: list[dict], ref: list[dict]) -> None:
    assert len(got) == len(ref) == QUESTIONS
    by_key = {_key(r): r for r in ref}
    for r in got:
        want = by_key[_key(r)]
        assert r["answer"] == want["answer"] and r["correct"] == want["correct"]
        assert r["logprobs"] == pytest.approx(want["logprobs"], abs=1e-4)


@pytest.mark.slow
def test_sigkill_mid_eval_then_rerun_resumes(tiny_llama_dir, mmlu_data, tmp_path):
    runs = tmp_path / "runs"
    # The uninterrupted reference, in this process.
    assert main(_eval_args(tiny_llama_dir, mmlu_data, runs, "whole")) == 0
    ref = json.loads((runs / "whole" / "results.json").read_text())
    ref_records = read_jsonl(runs / "whole" / "examples.jsonl")

    # The same command in a subprocess, SIGKILLed once its first chunk of records is on disk.
    examples = runs / "killed" / "examples.jsonl"
    proc = start(_eval_args(tiny_llama_dir, mmlu_data, runs, "killed"), tmp_path / "killed.log",
                 stop_at={"lines": str(examples), "count": 64})
    wait_stopped(proc, "first chunk of records")
    sigkill(proc)
    done_before = read_jsonl(examples)
    assert len(done_before) == 64, "the kill lands right after the first chunk"
    assert not (runs / "killed" / "results.json").exists()

    # Rerun the same command: it resumes.
    assert main(_eval_args(tiny_llama_dir, mmlu_data, runs, "killed")) == 0
    res = json.loads((runs / "killed" / "results.json").read_text())
    assert res["sent"] == QUESTIONS - len(done_before)  # no finished request is sent again
    records = read_jsonl(runs / "killed" / "examples.jsonl")
    assert len({_key(r) for r in records}) == len(records)  # nothing scored twice
    assert records[: len(done_before)] == done_before  # earlier records untouched
    _assert_same_records(records, ref_records)
    assert res["scores"] == ref["scores"]
    assert res["normalized_average"] == ref["normalized_average"]
    print(f"eval kill: {len(done_before)}/{QUESTIONS} records on disk at the kill, {res['sent']} sent on rerun")


def test_torn_last_record_is_dropped_and_the_file_stays_valid(tiny_llama_dir, mmlu_data, tmp_path):
    """A kill in the middle of an append leaves half a line: the rerun recomputes that request and
    the per-example file stays valid JSONL for every later reader."""
    runs = tmp_path / "runs"
    args = _eval_args(tiny_llama_dir, mmlu_data, runs, "torn") + ["--limit", "70"]
    assert main(args) == 0
    path = runs / "torn" / "examples.jsonl"
    ref_records = read_jsonl(path)
    ref = json.loads((runs / "torn" / "results.json").read_text())
    # Keep 65 whole lines and half of the 66th, as a SIGKILL mid-write would.
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join(lines[:65]) + lines[65][: len(lines[65]) // 2])
    (runs / "torn" / "results.json").unlink()
    (runs / "torn" / "requests.sqlite").unlink()
    assert main(args) == 0
    res = json.loads((runs / "torn" / "results.json").read_text())
    assert res["sent"] == 5
    records = read_jsonl(path, skip_torn_tail=False)  # every line whole
    assert [_key(r) for r in records] == [_key(r) for r in ref_records]
    assert res["scores"] == ref["scores"]
    # A third run finds everything done.
    assert main(args) == 0
    assert json.loads((runs / "torn" / "results.json").read_text())["sent"] == 0
