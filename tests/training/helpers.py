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


def write_mixture(folder: Path, rows: list[dict], shards: int = 2, fmt: str = "jsonl") -> Path:
    """A finished mixture folder as ``flanlab mix`` writes it: ``shards`` shards in ``fmt``
    (jsonl, jsonl.zst, parquet) and a manifest listing them."""
    from flanlab.mixture.shards import FIELDS, shard_name, write_shard

    folder.mkdir(parents=True, exist_ok=True)
    metas = []
    for s in range(shards):
        lines = [(json.dumps({f: str(row.get(f, "")) for f in FIELDS}) + "\n").encode() for row in rows[s::shards]]
        metas.append(write_shard(folder / shard_name(s, shards, fmt), lines, fmt))
    (folder / "manifest.json").write_text(json.dumps({"examples": len(rows), "output_format": fmt,
                                                      "shards": metas}))
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



def _bbh_prompt(answer: str | None) -> str:
    reply = answer or "fig"
    return ("canary\n-----\nCopy the word.\n\nQ: Which word? fig\n"
            f"A: Let's think step by step. The word is fig. So the answer is {reply}.\n")


def write_bbh_copy_data(root: Path, n: int, seed: int = 1, answer: str | None = None) -> Path:
    """A one-subtask BBH data dir (``copy_word``) in the official layout: "Which word? W" answered
    by W, or always by ``answer`` when given."""
    rng = random.Random(seed)
    (root / "bbh" / "tasks").mkdir(parents=True, exist_ok=True)
    (root / "bbh" / "cot-prompts").mkdir(parents=True, exist_ok=True)
    examples = [{"input": f"Which word? {w}", "target": answer or w} for w in (rng.choice(WORDS) for _ in range(n))]
    (root / "bbh" / "tasks" / "copy_word.json").write_text(json.dumps({"examples": examples}))
    (root / "bbh" / "cot-prompts" / "copy_word.txt").write_text(_bbh_prompt(answer))
    return root


def bbh_answer_rows(n: int, answer: str, seed: int = 0) -> list[dict]:
    """Training rows in the direct prompt format of ``write_bbh_copy_data(..., answer=answer)``
    (description, shot, query), all answered ``answer``: a tiny model learns it in a few steps."""
    rng = random.Random(seed)
    head = f"Copy the word.\n\nQ: Which word? fig\nA: {answer}"
    return [{"inputs": f"{head}\n\nQ: Which word? {rng.choice(WORDS)}\nA:", "targets": f" {answer}",
             "task": "bbh_answer", "template_id": 0, "format": "fs_noopt", "submixture": "synthetic"}
            for _ in range(n)]
