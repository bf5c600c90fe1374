"""Tiny data and configs for the pipeline and sweep tests: three pre-rendered "tasks" as JSONL
files, a run config over them, and the real MMLU files (via ``shared_data``) for evaluation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

WORDS = ["apple", "banana", "cherry", "date", "fig", "grape", "lemon", "mango"]
TASKS = {
    "copy": lambda w: w,
    "upper": lambda w: w.upper(),
    "length": lambda w: str(len(w)),
}


def write_tasks(folder: Path) -> list[dict[str, str]]:
    """One JSONL file per task; returns the mixture members naming them (relative paths)."""
    folder.mkdir(parents=True, exist_ok=True)
    members = []
    for name, fn in TASKS.items():
        rows = [{"inputs": f"{name}: {w}", "targets": fn(w)} for w in WORDS * 2]
        (folder / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        members.append({"file": f"tasks/{name}.jsonl"})
    return members


def run_config(folder: Path, model: Path, data: Path, **extra) -> dict:
    """A small `kind: run` config: 3-task mixture, 3 training steps, MMLU direct on 2 subjects."""
    cfg = {
        "kind": "run",
        "name": "tiny",
        "model": {"name": str(model)},
        "mixture": {"set": {"examples": 48, "submixture_rates": "proportional",
                            "members": write_tasks(folder / "tasks")}},
        "train": {"set": {"train": {"steps": 3, "batch_size": 4, "tensorboard": False, "log_every": 1},
                          "packing": {"max_length": 64, "target_length": 16}}},
        "eval": {"set": {"benchmarks": ["mmlu"], "strategies": ["direct"], "limit": 4,
                         "subtasks": ["astronomy", "virology"], "data_dir": str(data)}},
    }
    cfg.update(extra)
    return cfg


def write_config(path: Path, cfg: dict, command: str) -> Path:
    path.write_text(f"# {command}\n" + yaml.safe_dump(cfg, sort_keys=False))
    return path


@pytest.fixture(scope="session")
def tiny_llama_wide_dir(tmp_path_factory) -> Path:
    """A second, wider tiny Llama: the sweep's "larger model"."""
    from flanlab.inference.tiny import make_tiny_model

    return make_tiny_model("llama", tmp_path_factory.mktemp("tiny") / "llama-wide", hidden=96, seed=1)
