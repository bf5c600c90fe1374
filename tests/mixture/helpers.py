"""Tiny pre-rendered task files and mixture configs for the mixture tests."""

from __future__ import annotations

import json
import random
from pathlib import Path

WORDS = ["the", "a", "cat", "dog", "runs", "jumps", "over", "under", "red", "blue", "small", "large", "river", "hill", "quickly", "slowly"]


def write_task(path: Path, name: str, n: int, seed: int = 0) -> Path:
    """``n`` distinct examples of a made-up task, as pre-rendered JSONL."""
    rng = random.Random(f"{name}-{seed}")
    with open(path, "w", encoding="utf-8") as f:
        for i in range(n):
            words = " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 30)))
            f.write(json.dumps({"inputs": f"{name} #{i}: {words}?", "targets": f"{name}-{i % 7}",
                                "template_id": f"{name}:t{i % 3}"}) + "\n")
    return path


def write_config(folder: Path, body: str, name: str = "mix.yaml") -> Path:
    path = folder / name
    path.write_text(f"# flanlab mix {name} --out OUT\nkind: mixture\n{body}", encoding="utf-8")
    return path


def toy_mixture(folder: Path, extra: str = "", sizes=(1000, 100, 50)) -> Path:
    """Three file tasks: two in NIv2 (cap lowered to 300), one in CoT."""
    names = ["alpha", "beta", "gamma"]
    for name, n in zip(names, sizes, strict=True):
        write_task(folder / f"{name}.jsonl", name, n)
    return write_config(folder, f"""name: toy
seed: 7
shard_size: 400
caps: {{niv2: 300}}
members:
  - {{file: alpha.jsonl, submixture: niv2, category: qa}}
  - {{file: beta.jsonl, submixture: niv2, category: nli}}
  - {{file: gamma.jsonl, submixture: cot, category: math}}
{extra}""")
