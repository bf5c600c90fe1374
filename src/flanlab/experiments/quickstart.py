"""``flanlab quickstart``: the README's main job, offline on a CPU: the Flan effect on a base model.

Gemma 3 270M **base** (embedded GGUF, dequantized to float32) is LoRA-finetuned on a small Flan-style
mixture — BIG-bench tasks (the PyPI sdist, fetched once into the cache; BBH's sources are held out)
picked by a content rule, plus a small Flan CoT share — and evaluated on held-out BBH subtasks
before and after: zero-shot (the paper's headline setting, answers generated and read back) and
3-shot for contrast. The before/after difference on the same items is printed with a paired
bootstrap 95 % interval. It is an ordinary ``kind: run`` config, written into the run folder and run
by the pipeline.

Fixed up front, never tuned on the evaluation items: the held-out subtasks are the 8 BBH subtasks
whose targets come from a label set of at most 7 answers (classification / multiple choice) with
the shortest mean input; the items are the first ``--limit`` of each, in file order. Learning rate,
schedule and steps come from the held-out-loss sweep ``benchmarks/quickstart_lr_sweep.py`` (README).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flanlab.core.errors import UserError

__all__ = ["QuickstartOptions", "estimate_seconds", "measure_speed", "paired_difference",
           "pick_bigbench_tasks", "quickstart_config"]

# The rule above, applied to BBH's 27 subtasks (mean input length in characters, ascending).
DEFAULT_SUBTASKS = ("boolean_expressions", "sports_understanding", "hyperbaton", "ruin_names", "web_of_lies",
                    "navigate", "movie_recommendation", "snarks")
# Content rule for training tasks: no encoded images or other blobs, no very long inputs.
_MAX_BYTES_PER_EXAMPLE = 1500
_MIN_EXAMPLES = 50
_BLOB_WORDS = ("base64", "ascii", "image", "cifar", "mnist")
# Flan 2022 gives CoT a small fixed share (1.8 %); at this scale 10 % so that it is seen at all.
_COT_RATE = 0.10


@dataclass(frozen=True)
class QuickstartOptions:
    model: str = "gemma3-270m"
    steps: int = 30
    tasks: int = 24
    benchmarks: tuple[str, ...] = ("bbh",)
    subtasks: tuple[str, ...] = DEFAULT_SUBTASKS
    limit: int = 10
    batch_size: int = 2
    seq_len: int = 256
    lr: float = 1.0e-4
    cot: bool = True
    fewshot: bool = True
    cap: int = 40
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("steps", "tasks", "limit", "batch_size", "cap"):
            if getattr(self, name) < 1:
                raise UserError(f"quickstart: --{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}")
        if self.seq_len < 32:
            raise UserError(f"quickstart: --seq-len must be >= 32, got {self.seq_len}")
        if not self.lr > 0:
            raise UserError(f"quickstart: --lr must be > 0, got {self.lr}")


def _eligible(info: Any) -> bool:
    """The content rule for a training task (see the module docstring)."""
    from flanlab.tasks.bigbench import heldout_tags

    name = info.path.lower()
    return (not heldout_tags(info.path) and info.n_examples >= _MIN_EXAMPLES
            and info.size / max(info.n_examples, 1) <= _MAX_BYTES_PER_EXAMPLE
            and not any(w in name for w in _BLOB_WORDS))


def pick_bigbench_tasks(n: int, seed: int = 0) -> list[str]:
    """``n`` BIG-bench JSON tasks that are not held out (BBH sources and other evaluation sets are)
    and pass the content rule (at least 50 examples, at most 1.5 kB of task.json per example, no
    encoded images), one subtask per BIG-bench task, in a fixed pseudo-random order (a hash of the
    name under ``seed``): the first ``k`` of the order are the ``k``-task point of the CPU study."""
    from flanlab.tasks.bigbench import fetch_sdist, open_store, task_name

    sdist = fetch_sdist(download=True)
    if sdist is None:
        raise UserError("quickstart: the BIG-bench sdist is not in the cache and pip could not fetch it "
                        "(`pip download --no-deps bigbench==1.0.0 -d ~/.cache/flanlab/downloads`)")
    usable = [i for i in open_store(sdist).index().values() if _eligible(i)]

    def order(info: Any) -> bytes:
        return hashlib.blake2b(f"{seed}/{info.path}".encode(), digest_size=8).digest()

    chosen: list[Any] = []
    seen: set[str] = set()
    for info in sorted(usable, key=order):
        top = info.path.split("/")[0]
        if top not in seen:
            seen.add(top)
            chosen.append(info)
    if len(chosen) < n:
        raise UserError(f"quickstart: --tasks {n}: only {len(chosen)} BIG-bench tasks pass the content rule")
    return [task_name(i.path) for i in chosen[:n]]


def _has_cot_data(data_dir: Path | None) -> bool:
    return data_dir is not None and any((data_dir / "flan_cot").glob("*.tsv"))


def quickstart_config(opts: QuickstartOptions, data_dir: Path | None, tasks: list[str]) -> dict[str, Any]:
    """The quickstart as a ``kind: run`` config (a plain mapping, validated by the pipeline).

    Mixture by Flan's rules: examples-proportional within each submixture with a per-task cap
    (``cap``), fixed submixture rates (BIG-bench 90 %, CoT 10 %). Training: LoRA, AdamW with warmup
    and cosine decay, a 5 % held-out split for the held-out loss. Decoder-only examples are joined
    as evaluation prompts them (the run's ``prompt_format``: inputs, a newline, the answer)."""
    members: list[dict[str, Any]] = [{"task": t, "submixture": "bigbench"} for t in tasks]
    cot = opts.cot and _has_cot_data(data_dir)
    if cot:
        members.append({"task": "cot_*", "submixture": "cot"})
    rates = {"bigbench": 1.0 - _COT_RATE, "cot": _COT_RATE} if cot else {"bigbench": 1.0}
    # Enough examples for every step to see fresh rows (several short examples pack into one row).
    examples = max(256, opts.steps * opts.batch_size * 4)
    strategies = ["zs_direct", "direct"] if opts.fewshot else ["zs_direct"]
    return {
        "kind": "run",
        "name": "quickstart",
        "seed": opts.seed,
        "data_dir": str(data_dir) if data_dir else None,
        "model": {"name": opts.model},
        "prompt_format": {"style": "plain", "separator": "\n"},
        "mixture": {"set": {
            "name": "quickstart", "examples": examples, "rule": "examples_proportional",
            "submixture_rates": rates, "default_cap": opts.cap, "members": members,
        }},
        "train": {"set": {
            "data": {"heldout_fraction": 0.05, "max_heldout": 16, "max_input_length": opts.seq_len - 32,
                     "max_target_length": min(128, opts.seq_len // 2)},
            "packing": {"enabled": True, "max_length": opts.seq_len, "target_length": min(128, opts.seq_len // 2)},
            "optim": {"name": "adamw", "lr": opts.lr, "schedule": "cosine",
                      "warmup_steps": max(1, opts.steps // 10), "min_lr_ratio": 0.1},
            "lora": {"enabled": True, "r": 16, "alpha": 32, "dropout": 0.0, "merge_on_save": True},
            "train": {"steps": opts.steps, "batch_size": opts.batch_size, "log_every": max(1, opts.steps // 20),
                      "save_every": max(1, opts.steps // 2), "eval_every": max(1, opts.steps // 2),
                      "tensorboard": False, "dropout": 0.0, "seed": opts.seed, "keep_best": False},
        }},
        "eval": {"before": True, "after": True, "set": {
            "benchmarks": list(opts.benchmarks), "strategies": strategies, "subtasks": list(opts.subtasks),
            "limit": opts.limit, "data_dir": str(data_dir) if data_dir else None, "seed": opts.seed,
            # Direct answers are a word or an option ("Yes", "False", "(B)"): don't pay for long generations.
            "max_new_tokens": 8,
        }},
        "report": {"enabled": True, "title": f"flanlab quickstart: {opts.model}, before vs after LoRA finetuning"},
    }


@dataclass(frozen=True)
class Speed:
    """This machine's speed for the quickstart's model, measured at start."""

    step_s: float  # one training step (forward + backward) of batch_size x seq_len tokens
    request_s: float  # one zero-shot request (a ~100-token prompt, 8 tokens generated, in a chunk of 8)
    threads: int


def measure_speed(opts: QuickstartOptions) -> Speed:
    """Time one LoRA training step and one short generation of ``opts.model`` on this machine."""
    import torch

    from flanlab.inference.spec import ModelSpec
    from flanlab.training.config import LoraConfig
    from flanlab.training.modeling import apply_lora, load_for_training

    tm = load_for_training(ModelSpec(name=opts.model), LoraConfig(enabled=True, r=16, alpha=32, dropout=0.0))
    model = apply_lora(tm, LoraConfig(enabled=True, r=16, alpha=32, dropout=0.0))
    vocab = int(getattr(tm.tokenizer, "vocab_size", 1000))
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(10, max(11, vocab - 1), (opts.batch_size, opts.seq_len), generator=gen)
    t0 = time.perf_counter()
    # Loss on the last eighth of each row, as short Flan targets are (logits only where they count).
    keep = max(1, opts.seq_len // 8)
    out = model(input_ids=ids, logits_to_keep=keep)
    out.logits.float().logsumexp(-1).mean().backward()
    step_s = time.perf_counter() - t0
    model.eval()
    # Evaluation generates in chunks of up to 16 requests: time a chunk of 8, per request.
    prompts = torch.randint(10, max(11, vocab - 1), (8, 100), generator=gen)
    t0 = time.perf_counter()
    with torch.no_grad():
        model.generate(prompts, attention_mask=torch.ones_like(prompts), max_new_tokens=8, min_new_tokens=8,
                       do_sample=False, pad_token_id=tm.tokenizer.pad_token_id or 0)
    request_s = (time.perf_counter() - t0) / len(prompts)
    return Speed(step_s, request_s, torch.get_num_threads())


def estimate_seconds(opts: QuickstartOptions, speed: Speed) -> float:
    """Wall-clock estimate from the measured speed: training steps (plus a held-out loss pass at the
    start, middle and end), and two evaluations; a 3-shot request reads ~6x the tokens of a zero-shot one,
    though its exemplars are shared, so it counts ~3 zero-shot requests. Model loads, the mixture
    and the report add a fixed-size overhead of a few step-times."""
    heldout = 3 * 16 * 256 / (opts.batch_size * opts.seq_len) / 3  # 3 passes over 16 examples, no backward
    train = (opts.steps + heldout + 8) * speed.step_s
    per_eval = len(opts.benchmarks) * len(opts.subtasks) * opts.limit * (1 + (3 if opts.fewshot else 0))
    return train + 2 * per_eval * speed.request_s


def describe(opts: QuickstartOptions, data_dir: Path | None, tasks: list[str], seconds: float | None,
             speed: Speed | None = None) -> str:
    """What the quickstart will do, said up front."""
    cot = opts.cot and _has_cot_data(data_dir)
    shown = ", ".join(t.removeprefix("bigbench.") for t in tasks[:6]) + (", ..." if len(tasks) > 6 else "")
    evals = "zero-shot and 3-shot" if opts.fewshot else "zero-shot"
    lines = [
        "flanlab quickstart will:",
        f"  1. build a mixture of {len(tasks)} BIG-bench tasks ({shown}), examples-proportional with a cap of "
        f"{opts.cap} per task" + (f", plus the Flan CoT data at a {_COT_RATE:.0%} share" if cot
                                  else " (no CoT data: pass --data-dir with flan_cot/ to add it)"),
        f"  2. evaluate {opts.model} on held-out {'/'.join(opts.benchmarks)} "
        f"({', '.join(opts.subtasks)}; first {opts.limit} examples each, {evals}, answers generated)",
        f"  3. LoRA-finetune it for {opts.steps} steps of {opts.batch_size} x {opts.seq_len} packed tokens "
        f"(AdamW, lr {opts.lr:g}, warmup + cosine)",
        "  4. evaluate the finetuned model the same way; print the paired before/after difference with its "
        "95 % interval; write a report",
    ]
    if seconds is not None and speed is not None:
        lines.append(f"Measured here at start: a training step takes {speed.step_s:.1f} s and a zero-shot answer "
                     f"{speed.request_s:.1f} s on {speed.threads} threads, so this should take about "
                     f"{seconds / 60:.0f} minutes (more if other jobs share the CPU). Rerun the same command to "
                     "resume after an interruption.")
    return "\n".join(lines)


def paired_difference(before: Sequence[float], after: Sequence[float], *, resamples: int = 10_000,
                      seed: int = 0) -> dict[str, Any]:
    """Mean of ``after - before`` over the same items (in points), with a 95 % paired bootstrap
    interval (items resampled with replacement, ``resamples`` times, fixed ``seed``; percentile),
    computed by :func:`flanlab.evaluation.stats.paired_bootstrap`."""
    from flanlab.evaluation.stats import paired_bootstrap

    if len(before) != len(after):
        raise ValueError(f"paired difference: {len(before)} items before but {len(after)} after")
    if not before:
        return {"n": 0, "diff": None, "low": None, "high": None, "excludes_zero": False}
    d = paired_bootstrap(list(before), list(after), macro=False, n_boot=resamples, seed=seed)
    return {"n": d.n, "diff": 100 * d.diff, "low": 100 * d.low, "high": 100 * d.high, "resamples": resamples,
            "seed": seed, "method": "paired bootstrap over items, percentile 95 %", "excludes_zero": d.excludes_zero}


def paired_table(run_dir: Path) -> tuple[str, dict[str, Any]]:
    """Before/after per (benchmark, strategy) on the same items from the two eval stages' per-example
    records: scores with n, and the paired difference with its 95 % interval."""
    from flanlab.core.io import read_jsonl

    def records(stage: str) -> dict[tuple[str, str], dict[str, float]]:
        out: dict[tuple[str, str], dict[str, float]] = {}
        path = run_dir / stage / "examples.jsonl"
        for r in read_jsonl(path) if path.is_file() else []:
            out.setdefault((r["benchmark"], r["strategy"]), {})[f"{r['subtask']}/{r['index']}"] = float(r["correct"])
        return out

    before, after = records("eval_before"), records("eval_after")
    rows = ["| benchmark | strategy | n | before | after | after − before [95 % CI] | excludes 0 |",
            "| --- | --- | ---: | ---: | ---: | ---: | --- |"]
    data: dict[str, Any] = {}
    for key in sorted(set(before) & set(after)):
        items = sorted(set(before[key]) & set(after[key]))
        b = [before[key][i] for i in items]
        a = [after[key][i] for i in items]
        d = paired_difference(b, a)
        d.update(before=100 * sum(b) / max(len(b), 1), after=100 * sum(a) / max(len(a), 1))
        data[f"{key[0]}/{key[1]}"] = d
        if d["n"]:
            rows.append(f"| {key[0]} | {key[1]} | {d['n']} | {d['before']:.1f} | {d['after']:.1f} | "
                        f"{d['diff']:+.1f} [{d['low']:+.1f}, {d['high']:+.1f}] | "
                        f"{'yes' if d['excludes_zero'] else 'no'} |")
    note = ("Paired bootstrap over the same items (10,000 resamples, seed 0, percentile interval); "
            "zs_direct = zero-shot, direct = 3-shot, answers generated and exact-matched.")
    return "\n".join(rows) + "\n\n" + note + "\n", data
