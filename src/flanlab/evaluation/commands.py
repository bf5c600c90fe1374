"""``flanlab eval`` (and ``--dry-run``) and ``flanlab score``. Cheap to import: the model,
torch and the benchmarks load inside the command functions."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from flanlab.core.commands import add_common_args
from flanlab.evaluation.config import DEFAULT_BENCHMARKS, DEFAULT_STRATEGIES, EvalConfig

__all__ = ["register"]


def _csv(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def _config(args: argparse.Namespace) -> EvalConfig:
    from flanlab.core.config import load_config, validate

    if args.config:
        cfg = load_config(args.config, args.set or [], schema=EvalConfig)
    else:
        if not args.model:
            from flanlab.core.errors import UserError

            raise UserError("flanlab eval: pass --model NAME_OR_DIR (or --config FILE)")
        cfg = validate(EvalConfig, {"model": {"name": args.model}}, source="command line")
    model = cfg.model.model_dump()
    for flag, key in (("model", "name"), ("backend", "backend"), ("dtype", "dtype"), ("device", "device"),
                      ("batch_size", "batch_size"), ("cache", "cache"), ("cpu_linear", "cpu_linear")):
        value = getattr(args, flag)
        if value is not None:
            model[key] = int(value) if key == "batch_size" and str(value).isdigit() else value
    updates = {"model": model}
    for flag in ("benchmarks", "strategies", "subtasks"):
        if getattr(args, flag):
            updates[flag] = _csv(getattr(args, flag))
    for flag in ("limit", "samples", "max_new_tokens", "data_dir", "seed", "strict"):
        if getattr(args, flag) is not None:
            updates[flag] = getattr(args, flag)
    if args.prompt_format is not None:
        updates["prompt_format"] = (None if args.prompt_format == "published"
                                    else {"style": args.prompt_format, "separator": args.separator})
    return validate(EvalConfig, {**cfg.model_dump(), **updates}, source=args.config or "command line")


def _token_counter(name: str | None):
    """``len(tokenizer(text))`` for ``--tokenizer`` (a folder or hub name), or None."""
    if not name:
        return None
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(name, trust_remote_code=False)
    return lambda text: len(tok(text, add_special_tokens=True)["input_ids"])


def _eval(args: argparse.Namespace) -> int:
    from flanlab.core.log import setup_logging
    from flanlab.core.runs import RunDir
    from flanlab.evaluation.api import check_resume, clear_results, evaluate, plan
    from flanlab.evaluation.parallel import processes

    cfg = _config(args)
    if args.run_name is None and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        from flanlab.core.errors import UserError

        raise UserError("flanlab eval under several processes: pass --run-name, so that they share one run folder")
    setup_logging(args.verbose)
    # Every input is checked before the run folder is made or touched: a rejected command leaves
    # no empty folder behind and never rewrites an existing run's config.yaml.
    run = RunDir.locate(args.run_name, args.runs_dir, prefix="eval-dry" if args.dry_run else "eval")
    if not args.no_resume:
        check_resume(run, cfg)
    planned = plan(cfg)
    if not args.dry_run and cfg.model.backend in ("hf", "vllm"):
        from flanlab.inference.loading import resolve_source

        resolve_source(cfg.model.name)  # an unknown model fails here, quickly when offline
    run = RunDir.create(args.run_name, args.runs_dir, prefix="eval-dry" if args.dry_run else "eval")
    setup_logging(args.verbose, run.log_file)
    if args.no_resume and processes().main:
        # One process clears; the others wait at evaluate's first barrier, after it.
        clear_results(run, cfg)
    if args.dry_run:
        return _dry_run(args, cfg, run, planned)
    evaluate(cfg, run, planned)
    sys.stdout.write((run.path / "results.md").read_text(encoding="utf-8"))
    return 0


def _dry_run(args: argparse.Namespace, cfg: EvalConfig, run, planned) -> int:
    """Write every request ``eval`` would send to ``requests.jsonl``, without loading a model."""
    import json

    from flanlab.core.io import atomic_open
    from flanlab.core.log import get_logger

    run.write_config(cfg)
    reqs, _, notes, _ = planned
    if cfg.prompt_format is not None and cfg.prompt_format.style == "plain":
        # (a chat template needs the model's tokenizer: chat-formatted prompts are made at eval time)
        from flanlab.evaluation.plan import apply_prompt_format

        reqs = apply_prompt_format(reqs, cfg.prompt_format)
    count = _token_counter(args.tokenizer)
    counts: dict[str, int] = {}
    tokens: dict[str, int] = {}
    with atomic_open(run.file("requests.jsonl")) as f:
        for r in reqs:
            row = r.to_json()
            group = f"{r.benchmark}/{r.strategy}"
            counts[group] = counts.get(group, 0) + 1
            if count is not None:
                row["tokens"] = count(r.prompt)
                tokens[group] = tokens.get(group, 0) + row["tokens"]
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    run.write_results({"dry_run": True, "requests": len(reqs), "by_benchmark_strategy": counts,
                       **({"prompt_tokens": tokens} if count is not None else {}), "notes": notes})
    get_logger("evaluation").info("wrote %d requests to %s", len(reqs), run.file("requests.jsonl"))
    print(run.path / "requests.jsonl")
    return 0


def _read_predictions(path: Path, bench) -> list[tuple[object, list[str]]]:
    """(example, outputs) for each row of a ``flanlab score`` predictions file, in file order. Any
    problem is a UserError starting ``FILE:LINE:`` (``FILE:`` when the file itself is unreadable)."""
    import json
    import re

    from flanlab.core.errors import UserError

    expected = '(expected {"subtask", "index", "output"})'
    try:
        data = path.read_bytes()
    except OSError as e:
        raise UserError(f"{path}: cannot read the predictions file ({e.strerror or e})") from None
    out: list[tuple[object, list[str]]] = []
    seen: dict[tuple[str, int], int] = {}
    subtasks: list[str] | None = None
    for line, raw in enumerate(data.split(b"\n"), 1):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise UserError(f"{path}:{line}: not UTF-8 (byte {raw[e.start]:#04x} at column {e.start + 1})") from None
        if not text.strip():
            continue
        try:
            row = json.loads(text)
        except json.JSONDecodeError as e:
            raise UserError(f"{path}:{line}: invalid JSON ({e.msg} at column {e.colno}) {expected}") from None
        if not isinstance(row, dict):
            raise UserError(f"{path}:{line}: expected a JSON object {expected}, got {type(row).__name__}")
        missing = {"subtask", "index", "output"} - set(row)
        if missing:
            raise UserError(f"{path}:{line}: missing {', '.join(sorted(missing))} {expected}")
        subtask, index, output = row["subtask"], row["index"], row["output"]
        if subtasks is None:
            try:
                subtasks = bench.subtasks()
            except UserError as e:  # the benchmark's data, not this file, is at fault: say both
                raise UserError(f"{path}:{line}: cannot list {bench.name}'s subtasks: {e}") from None
        if not isinstance(subtask, str) or subtask not in subtasks:
            shown = ", ".join(subtasks[:10]) + (", ..." if len(subtasks) > 10 else "")
            raise UserError(f"{path}:{line}: unknown {bench.name} subtask {subtask!r}; known: {shown}")
        # ASCII digits only: str.isdigit() also accepts '²', which int() refuses.
        if isinstance(index, bool) or not isinstance(index, int | str) or not re.fullmatch(r"\s*[0-9]+\s*", str(index)):
            raise UserError(f"{path}:{line}: 'index' must be a non-negative integer, got {index!r:.80}")
        outputs = output if isinstance(output, list) else [output]
        if not outputs or not all(isinstance(o, str | int | float) and not isinstance(o, bool) for o in outputs):
            raise UserError(f"{path}:{line}: 'output' must be a string or a non-empty list of strings, "
                            f"got {output!r:.80}")
        bad = next((o for o in outputs if isinstance(o, str) and re.search("[\ud800-\udfff]", o)), None)
        if bad is not None:  # a JSON escape like \ud800 alone: not a character, cannot be written as UTF-8
            raise UserError(f"{path}:{line}: 'output' holds a lone surrogate (a \\u escape of half a character)")
        key = (subtask, int(index))
        if key in seen:  # scoring an example twice would silently weight it double
            raise UserError(f"{path}:{line}: {bench.name}/{subtask} example {key[1]} already scored on line {seen[key]}")
        seen[key] = line
        try:
            examples = bench.examples(subtask)
        except UserError as e:
            raise UserError(f"{path}:{line}: cannot read {bench.name}/{subtask}: {e}") from None
        ex = next((e for e in examples if e.index == key[1]), None)
        if ex is None:
            raise UserError(f"{path}:{line}: {bench.name}/{subtask} has no example {key[1]} "
                            f"(it has {len(examples)}, indexed 0..{len(examples) - 1} in file order)")
        out.append((ex, [str(o) for o in outputs]))
    if not out:
        raise UserError(f"{path}: no predictions (one JSON object per line {expected})")
    return out


def _score(args: argparse.Namespace) -> int:
    from flanlab.core.errors import UserError
    from flanlab.core.log import setup_logging
    from flanlab.core.paths import data_dir as resolve_data_dir
    from flanlab.core.runs import RunDir
    from flanlab.evaluation.benchmarks import get_benchmark
    from flanlab.evaluation.plan import request_for, resolve_strategies
    from flanlab.evaluation.results import EXAMPLES_FILE, Results, score_example

    bench = get_benchmark(args.benchmark, resolve_data_dir(args.data_dir))
    strategy = resolve_strategies([args.strategy])[-1]
    if not bench.supports(strategy.style):
        raise UserError(f"{args.benchmark} has no {strategy.style} prompt (strategy {args.strategy})")
    if bench.uses_loglikelihood(strategy):
        strategy = strategy.model_copy(update={"mode": "generate"})  # raw outputs are text
    path = Path(args.predictions)
    # Every row is checked before the run folder is made: a bad file leaves nothing behind, and each
    # error names the predictions file and line (the user's to fix), never only the benchmark.
    records = [score_example(bench, ex, request_for(bench, ex, strategy), outputs=outputs)
               for ex, outputs in _read_predictions(path, bench)]
    run = RunDir.create(args.run_name, args.runs_dir, prefix="score")
    setup_logging(args.verbose, run.log_file)
    run.write_config({"kind": "score", "benchmark": args.benchmark, "strategy": args.strategy,
                      "predictions": str(path)})
    from flanlab.core.io import atomic_write_jsonl

    atomic_write_jsonl(run.file(EXAMPLES_FILE), records)
    results = Results(args.model or path.stem, {bench.name: bench})
    results.add(records)
    data = results.write(run, extra={"predictions": str(path)})
    sys.stdout.write(results.markdown(data))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    ev = sub.add_parser("eval", help="evaluate a model on MMLU, BBH, TyDiQA, MGSM, GSM8K")
    ev.add_argument("--model", default=None, help="hub name, local folder, .gguf file or embedded model name")
    ev.add_argument("--config", default=None, help="an eval config (kind: eval)")
    ev.add_argument("--set", nargs="*", metavar="key=value", help="dotted overrides of --config")
    ev.add_argument("--benchmarks", default=None,
                    help=f"comma-separated (default {','.join(DEFAULT_BENCHMARKS)}; also mgsm_en)")
    ev.add_argument("--strategies", default=None,
                    help=f"comma-separated: direct,direct_gen,cot,zs_cot,self_consistency "
                         f"(default {','.join(DEFAULT_STRATEGIES)})")
    ev.add_argument("--subtasks", default=None, help="comma-separated subtasks (subjects, languages, ...)")
    ev.add_argument("--limit", type=int, default=None, help="first N examples of each subtask")
    ev.add_argument("--samples", type=int, default=None, help="self-consistency samples k")
    ev.add_argument("--max-new-tokens", type=int, default=None, help="override every generation budget")
    ev.add_argument("--prompt-format", default=None, choices=["published", "plain", "chat"],
                    help="how prompts end before the answer: as published (default), plain (+ --separator, "
                         "as `flanlab train` joins inputs and targets by default) or the chat template")
    ev.add_argument("--separator", default="\n", help="with --prompt-format plain (default: a newline)")
    ev.add_argument("--backend", default=None, choices=["hf", "http", "vllm"])
    ev.add_argument("--dtype", default=None)
    ev.add_argument("--device", default=None)
    ev.add_argument("--batch-size", default=None)
    ev.add_argument("--cpu-linear", default=None, choices=["auto", "onednn", "torch"],
                    help="float32 linear layers on the CPU: oneDNN-packed weights (auto: when available and they "
                         "fit in memory) or PyTorch's own kernels")
    ev.add_argument("--cache", default=None, help="request cache (SQLite); default: in the run folder")
    ev.add_argument("--strict", action="store_true", default=None,
                    help="fail when a benchmark's data is missing (default: skip it with a warning)")
    ev.add_argument("--no-resume", action="store_true",
                    help="start the run folder over: drop records of earlier settings instead of reusing them")
    ev.add_argument("--dry-run", action="store_true",
                    help="write every request to requests.jsonl without loading a model")
    ev.add_argument("--tokenizer", default=None,
                    help="with --dry-run: count each prompt's tokens with this tokenizer (folder or hub name)")
    add_common_args(ev)
    ev.set_defaults(func=_eval)

    sc = sub.add_parser("score", help="score raw outputs produced elsewhere, like flanlab eval does")
    sc.add_argument("--benchmark", required=True)
    sc.add_argument("--strategy", required=True)
    sc.add_argument("--predictions", required=True, help='JSONL of {"subtask", "index", "output"}')
    sc.add_argument("--model", default=None, help="a name for the results table (default: the file's name)")
    add_common_args(sc)
    sc.set_defaults(func=_score)
