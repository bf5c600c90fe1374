"""MMLU 5-shot prompts are byte-identical to lm-evaluation-harness's default ``mmlu`` task.

With lm-eval installed (the ``bench`` extra), every one of the 14,042 prompts is compared with the
context and continuations lm-eval's own task code builds: its shipped ``mmlu_<subject>.yaml`` task
configs, with the dataset handed in as ``custom_dataset`` (the CSVs of the data dir in the hub
dataset's row layout), so nothing is fetched from the hub. Without lm-eval, a pinned sample of
those prompts (SHA-256 of context + continuations, recorded from lm-eval 0.4.13 by
``python tests/evaluation/test_mmlu_lm_eval.py --pin DATA_DIR``) is checked instead.
"""

from __future__ import annotations

import csv
import hashlib
import json
import sys
from pathlib import Path

import pytest

from flanlab.evaluation.benchmarks import get_benchmark
from flanlab.evaluation.plan import request_for, resolve_strategies

PINNED = Path(__file__).parent / "data" / "mmlu_lm_eval_pinned.json"


def _digest(context: str, continuations) -> str:
    return hashlib.sha256(json.dumps([context, list(continuations)], ensure_ascii=False).encode()).hexdigest()


def _hub_rows(data_dir: Path, subject: str, split: str) -> list[dict]:
    """The CSV rows in cais/mmlu's row layout (question, subject, choices, answer index)."""
    with open(data_dir / "mmlu" / split / f"{subject}_{split}.csv", encoding="utf-8", newline="") as f:
        return [{"question": r[0], "subject": subject, "choices": r[1:5], "answer": "ABCD".index(r[5].strip())}
                for r in csv.reader(f)]


def lm_eval_prompts(data_dir: Path, subject: str) -> list[tuple[str, tuple[str, ...]]]:
    """(context, continuations) of each test question, built by lm-eval's default mmlu task code."""
    import datasets
    import lm_eval
    from lm_eval.api.task import ConfigurableTask
    from lm_eval.tasks._yaml_loader import load_yaml

    path = Path(lm_eval.__file__).parent / "tasks" / "mmlu" / "default" / f"mmlu_{subject}.yaml"
    cfg = dict(load_yaml(path, resolve_func=True))
    for key in ("tag", "group"):
        cfg.pop(key, None)

    def local_dataset(**_: object) -> datasets.DatasetDict:
        return datasets.DatasetDict({s: datasets.Dataset.from_list(_hub_rows(data_dir, subject, s))
                                     for s in ("test", "dev")})

    cfg["custom_dataset"] = local_dataset
    task = ConfigurableTask(config=cfg)
    out = []
    for i, doc in enumerate(task.test_docs()):
        ctx = task.fewshot_context(doc, num_fewshot=5)
        reqs = task.construct_requests(doc, ctx, metadata=(task.config.task, i, 5))
        assert all(r.args[0] == ctx for r in reqs)
        out.append((ctx, tuple(r.args[1] for r in reqs)))
    return out


def flanlab_prompts(data_dir: Path):
    """{subject: [(context, continuations)]} of flanlab's MMLU direct (5-shot log-likelihood) requests."""
    bench = get_benchmark("mmlu", data_dir)
    direct = resolve_strategies(["direct"])[0]
    out = {}
    for subject in bench.subtasks():
        reqs = [request_for(bench, ex, direct) for ex in bench.examples(subject)]
        out[subject] = [(r.prompt, r.continuations) for r in reqs]
    return out


@pytest.mark.slow
def test_every_mmlu_prompt_equals_lm_evals(shared_data):
    pytest.importorskip("lm_eval", reason="lm-eval (the bench extra) builds the reference prompts")
    pytest.importorskip("lm_eval.tasks._yaml_loader", reason="lm-eval >= 0.4.13's task config loader")
    ours = flanlab_prompts(shared_data)
    assert len(ours) == 57
    total, differ = 0, []
    for subject, prompts in ours.items():
        theirs = lm_eval_prompts(shared_data, subject)
        assert len(theirs) == len(prompts), subject
        total += len(prompts)
        differ += [(subject, i) for i, (a, b) in enumerate(zip(prompts, theirs, strict=True)) if a != b]
    assert total == 14_042
    assert differ == [], f"{len(differ)} prompts differ from lm-eval's, first {differ[:5]}"


def test_pinned_sample_of_lm_eval_prompts(shared_data):
    pinned = json.loads(PINNED.read_text(encoding="utf-8"))
    bench = get_benchmark("mmlu", shared_data)
    direct = resolve_strategies(["direct"])[0]
    assert len(pinned["prompts"]) >= 100
    for row in pinned["prompts"]:
        ex = bench.examples(row["subject"])[row["index"]]
        req = request_for(bench, ex, direct)
        assert _digest(req.prompt, req.continuations) == row["sha256"], (row["subject"], row["index"])


def _pin(data_dir: Path) -> None:
    """Record the sample: every 150th question, plus every question or subject whose text carries
    surrounding whitespace (where lm-eval's stripping matters)."""
    rows = []
    for subject in sorted(p.name[: -len("_test.csv")] for p in (data_dir / "mmlu" / "test").glob("*_test.csv")):
        test = _hub_rows(data_dir, subject, "test")
        dev_ws = any(r["question"] != r["question"].strip() for r in _hub_rows(data_dir, subject, "dev"))
        prompts = lm_eval_prompts(data_dir, subject)
        for i, (row, (ctx, conts)) in enumerate(zip(test, prompts, strict=True)):
            ws = row["question"] != row["question"].strip()
            if (len(rows) + i) % 150 == 0 or (ws and i % 5 == 0) or (dev_ws and i == 0):
                rows.append({"subject": subject, "index": i, "sha256": _digest(ctx, conts)})
    import lm_eval

    PINNED.write_text(json.dumps({"lm_eval": getattr(lm_eval, "__version__", "?"), "prompts": rows}, indent=0)
                      + "\n", encoding="utf-8")
    print(f"pinned {len(rows)} prompts to {PINNED}")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--pin":
        _pin(Path(sys.argv[2]))
    else:
        sys.exit(f"usage: {sys.argv[0]} --pin DATA_DIR")
