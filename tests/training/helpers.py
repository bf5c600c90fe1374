"""Tiny mixture folders in the format ``flanlab mix`` writes, and train configs around them."""

from __future__ import annotations

import json
import random
from pathlib import Path

WORDS = ["apple", "banana", "cherry", "date", "fig", "grape", "yes", "no", "True", "False", "valid", "invalid"]


def copy_task_rows(n: int, seed: int = 0) -> list[dict]:
    """A synthetic instruction task: answer with the word named in the question."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        word = rng.choice(WORDS)
        filler = " ".join(rng.choice(WORDS) for _ in range(rng.randint(0, 6)))
        rows.append({"inputs": f"Question: {filler} Which word? {word} Answer:", "targets": f" {word}",
                     "task": "copy", "template_id": 0, "format": "zs_noopt", "submixture": "synthetic"})
    return rows


def write_mixture(folder: Path, rows: list[dict], shards: int = 2) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for s in range(shards):
        with open(folder / f"shard-{s:05d}.jsonl", "w", encoding="utf-8") as f:
            for row in rows[s::shards]:
                f.write(json.dumps(row) + "\n")
    (folder / "manifest.json").write_text(json.dumps({"rows": len(rows), "shards": shards}))
    return folder


def write_config(path: Path, model: Path, mixture: Path, **sections: dict) -> Path:
    import yaml

    cfg = {
        "kind": "train",
        "name": "test",
        "model": {"name": str(model)},
        "data": {"mixture": str(mixture), "heldout_fraction": 0.1, "max_heldout": 32, "shuffle_buffer": 64},
        "packing": {"max_length": 64, "target_length": 16, "window": 64},
        "optim": {"name": "adamw", "lr": 3e-3, "schedule": "cosine", "warmup_steps": 2},
        "train": {"steps": 6, "batch_size": 4, "log_every": 1, "save_every": 1000, "eval_every": 1000,
                  "tensorboard": False, "dropout": 0.1},
    }
    for key, value in sections.items():
        cfg.setdefault(key, {}).update(value)
    path.write_text(yaml.safe_dump(cfg))
    return path
