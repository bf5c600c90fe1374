"""SIGKILL during ``flanlab train``: rerunning the command resumes from the last checkpoint and
reproduces the uninterrupted run's losses and final weights bit for bit."""

from __future__ import annotations

import pytest

from flanlab.cli import main
from flanlab.core.io import read_jsonl
from tests.reliability.conftest import sigkill, start, wait_stopped
from tests.training.helpers import copy_task_rows, write_config, write_mixture

STEPS = 40


def _losses(run) -> dict[int, float]:
    """step → loss."""
    return {r["step"]: r["loss"] for r in read_jsonl(run / "metrics.jsonl") if "loss" in r}


def _checkpoints(run) -> list[str]:
    root = run / "checkpoints"
    return sorted(p.name for p in root.iterdir() if not p.name.endswith(".tmp")) if root.is_dir() else []


@pytest.mark.slow
def test_sigkill_mid_train_then_rerun_reproduces_losses(tmp_path, tiny_llama_dir):
    import torch
    from safetensors.torch import load_file

    mix = write_mixture(tmp_path / "mix", copy_task_rows(400))
    # One thread in both processes: the same float reductions, so equality can be exact.
    cfg = write_config(tmp_path / "c.yaml", tiny_llama_dir, mix,
                       train={"steps": STEPS, "save_every": 4, "keep_checkpoints": 2, "threads": 1,
                              "eval_every": 20})
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    assert main(["train", str(cfg), "--run-name", str(whole)]) == 0

    proc = start(["train", str(cfg), "--run-name", str(killed)], tmp_path / "killed.log",
                 stop_at={"glob": str(killed / "checkpoints"), "pattern": "*", "count": 1})
    wait_stopped(proc, "a checkpoint")
    sigkill(proc)
    assert not (killed / "results.json").exists() and not (killed / "final").exists(), "kill must land mid-run"
    resumed_from = int(_checkpoints(killed)[-1].split("-")[1])
    assert resumed_from < STEPS

    assert main(["train", str(cfg), "--run-name", str(killed)]) == 0
    log = (killed / "log.txt").read_text()
    assert f"(step {resumed_from})" in log
    a, b = _losses(whole), _losses(killed)
    assert sorted(a) == sorted(b) == list(range(1, STEPS + 1))
    # The rows the killed run wrote after its checkpoint were dropped on resume: one row per step.
    shape = lambda run: [(r["step"], sorted(r)) for r in read_jsonl(run / "metrics.jsonl")]  # noqa: E731
    assert shape(killed) == shape(whole)
    assert a == b  # bit for bit, before and after the kill
    held_a = [r for r in read_jsonl(whole / "metrics.jsonl") if "heldout_loss" in r]
    held_b = {r["step"]: r["heldout_loss"] for r in read_jsonl(killed / "metrics.jsonl") if "heldout_loss" in r}
    assert all(held_b[r["step"]] == r["heldout_loss"] for r in held_a)
    wa = load_file(str(whole / "final" / "model.safetensors"))
    wb = load_file(str(killed / "final" / "model.safetensors"))
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
    print(f"train kill: checkpoint step {resumed_from} of {STEPS}; {len(a)} losses equal bit for bit")
