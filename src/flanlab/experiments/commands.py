"""``flanlab run``, ``flanlab sweep`` and ``flanlab quickstart``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import flanlab.experiments.config  # noqa: F401  (registers the run / sweep config kinds; pydantic only)
from flanlab.core.commands import add_common_args

__all__ = ["register"]

# Mirrors QuickstartOptions' defaults without importing it at CLI start (kept in sync by a test).
QS_DEFAULTS = {"model": "gemma3-270m", "steps": 30, "tasks": 24, "limit": 10, "batch_size": 2, "seq_len": 256,
               "lr": 1.0e-4, "cap": 40}


def _setup(args: argparse.Namespace, prefix: str):
    from flanlab.core.log import setup_logging
    from flanlab.core.runs import RunDir
    from flanlab.core.seed import seed_everything

    run = RunDir.create(args.run_name, args.runs_dir, prefix=prefix)
    setup_logging(args.verbose, run.log_file)
    if args.seed is not None:
        seed_everything(args.seed)
    return run


def _cli_overrides(args: argparse.Namespace) -> list[str]:
    """``--seed`` and ``--data-dir`` as overrides of the config's ``seed`` and ``data_dir`` (the
    stages get both from the config, never from the environment)."""
    extra = []
    if args.seed is not None:
        extra.append(f"seed={args.seed}")
    if args.data_dir:
        extra.append(f"data_dir={json.dumps(str(Path(args.data_dir).expanduser().resolve()))}")
    return [*args.overrides, *extra]


def _run(args: argparse.Namespace) -> int:
    from flanlab.core.config import load_config
    from flanlab.experiments.config import RunConfig
    from flanlab.experiments.pipeline import run_pipeline

    cfg = load_config(args.config, _cli_overrides(args), schema=RunConfig)
    if args.flan_repo:
        cfg = cfg.model_copy(update={"flan_repo": args.flan_repo})
    if args.run_name is None:
        args.run_name = cfg.name  # a fixed folder per config, so rerunning resumes
    run = _setup(args, cfg.name)
    result = run_pipeline(cfg, run, Path(args.config).resolve())
    print((run.path / "results.md").read_text(encoding="utf-8"), end="")
    print(f"run folder: {run.path}" + (f"; report: {result.report}" if result.report else ""))
    return 0


def _sweep(args: argparse.Namespace) -> int:
    from flanlab.core.config import load_config
    from flanlab.experiments.config import SweepConfig
    from flanlab.experiments.sweep import run_sweep

    cfg = load_config(args.config, _cli_overrides(args), schema=SweepConfig)
    if args.run_name is None:
        args.run_name = cfg.name
    run = _setup(args, cfg.name)
    results = run_sweep(cfg, Path(args.config).resolve(), run,
                        jobs_dir=Path(args.emit_jobs) if args.emit_jobs else None)
    if args.emit_jobs:
        print("\n".join(results["jobs"]))
    else:
        print((run.path / "results.md").read_text(encoding="utf-8"), end="")
        print(f"sweep folder: {run.path}; figures: {', '.join(results['figures']) or 'none'}")
    return 0


def _quickstart(args: argparse.Namespace) -> int:
    import yaml

    from flanlab.core.config import validate
    from flanlab.core.errors import UserError
    from flanlab.core.log import console
    from flanlab.core.paths import data_dir as resolve_data_dir
    from flanlab.experiments.config import RunConfig
    from flanlab.experiments.pipeline import run_pipeline
    from flanlab.experiments.quickstart import (
        QuickstartOptions,
        describe,
        estimate_seconds,
        measure_speed,
        paired_table,
        pick_bigbench_tasks,
        quickstart_config,
    )

    def csv(text: str) -> tuple[str, ...]:
        return tuple(t.strip() for t in text.split(",") if t.strip())

    opts = QuickstartOptions(model=args.model, steps=args.steps, tasks=args.tasks, benchmarks=csv(args.benchmarks),
                             subtasks=csv(args.subtasks) if args.subtasks else QuickstartOptions.subtasks,
                             limit=args.limit, batch_size=args.batch_size, seq_len=args.seq_len, lr=args.lr,
                             cap=args.cap, cot=not args.no_cot, fewshot=not args.no_fewshot,
                             seed=args.seed if args.seed is not None else 0)
    data = resolve_data_dir(args.data_dir)
    if data is not None and not data.is_dir():
        source = "--data-dir" if args.data_dir else "FLANLAB_DATA_DIR"
        raise UserError(f"quickstart: data folder {data} does not exist (from {source}); pass the folder "
                        "holding bbh/ (e.g. ../shared/data)")
    if data is None:
        raise UserError("quickstart: evaluation needs the benchmark data folder (bbh/ ...): pass --data-dir DIR "
                        "or set FLANLAB_DATA_DIR")
    if args.run_name is None:
        args.run_name = "quickstart"
    run = _setup(args, "quickstart")
    tasks = pick_bigbench_tasks(opts.tasks, opts.seed)
    raw = quickstart_config(opts, data.resolve(), tasks)
    console.print(describe(opts, data, tasks, None))
    # The time estimate comes from this machine, now: one training step and one answer, timed.
    speed = measure_speed(opts)
    console.print(describe(opts, data, tasks, estimate_seconds(opts, speed), speed).splitlines()[-1])
    path = run.path / "quickstart.yaml"
    path.write_text(f"# flanlab run {path} --run-name {run.path} --data-dir {data.resolve()}\n"
                    + yaml.safe_dump(raw, sort_keys=False))
    cfg = validate(RunConfig, raw, source=str(path))
    result = run_pipeline(cfg, run, path)
    from flanlab.core.io import atomic_write_json, atomic_write_text

    table, paired = paired_table(run.path)
    atomic_write_json(run.path / "paired.json", paired)
    atomic_write_text(run.path / "paired.md", table)
    train = result.results.get("train") or {}
    if train.get("initial_heldout_loss") is not None:
        after = train.get("heldout_loss")
        print(f"held-out loss (the mixture's 5 % split): {train['initial_heldout_loss']:.3f} before, "
              + (f"{after:.3f}" if after is not None else "?") + f" after {train.get('steps')} steps")
    print(table, end="")
    print(f"report: {result.report}\nrun folder: {run.path} (config: {path}; paired differences: paired.md)")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    q = sub.add_parser("quickstart", help="offline demo: LoRA-finetune base Gemma 3 270M on BIG-bench (+CoT), "
                                          "held-out BBH zero-shot before/after with a paired interval, report")
    q.add_argument("--model", default=QS_DEFAULTS["model"],
                   help="model to finetune (default: %(default)s, the embedded base model)")
    q.add_argument("--steps", type=int, default=QS_DEFAULTS["steps"], help="LoRA steps (default %(default)s)")
    q.add_argument("--lr", type=float, default=QS_DEFAULTS["lr"],
                   help="peak learning rate (default %(default)s, from configs/sweeps/quickstart_lr.yaml)")
    q.add_argument("--cap", type=int, default=QS_DEFAULTS["cap"],
                   help="examples-proportional cap: most examples any one task contributes (default %(default)s)")
    q.add_argument("--no-fewshot", action="store_true", help="skip the 3-shot contrast evaluation")
    q.add_argument("--tasks", type=int, default=QS_DEFAULTS["tasks"],
                   help="BIG-bench training tasks (default %(default)s)")
    q.add_argument("--benchmarks", default="bbh", help="held-out benchmarks, comma-separated (default bbh)")
    q.add_argument("--subtasks", default=None, help="comma-separated subtasks (default: the 8 BBH classification / "
                                                          "multiple-choice subtasks with the shortest inputs)")
    q.add_argument("--limit", type=int, default=QS_DEFAULTS["limit"],
                   help="examples per subtask in each evaluation (small eval; default %(default)s)")
    q.add_argument("--batch-size", type=int, default=QS_DEFAULTS["batch_size"], help="packed rows per step")
    q.add_argument("--seq-len", type=int, default=QS_DEFAULTS["seq_len"], help="tokens per packed row")
    q.add_argument("--no-cot", action="store_true", help="leave the Flan CoT data out of the mixture")
    add_common_args(q)
    q.set_defaults(func=_quickstart)

    p = sub.add_parser("run", help="mixture → finetune → evaluate before/after → report, resumable")
    p.add_argument("config", help="a kind: run config")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="dotted overrides, e.g. train.set.train.steps=5")
    p.add_argument("--flan-repo", default=None,
                   help="google-research/FLAN checkout: the mixture renders the Flan 2022 collection with flan/v2's "
                        "templates and assembly (same as flan_repo=PATH)")
    add_common_args(p)
    p.set_defaults(func=_run)

    p = sub.add_parser("sweep", help="grid of runs over tasks × model × CoT, then the paper's figures")
    p.add_argument("config", help="a kind: sweep config")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="dotted overrides")
    p.add_argument("--emit-jobs", metavar="DIR", default=None,
                   help="write one run config + job script per cell into DIR instead of running them")
    add_common_args(p)
    p.set_defaults(func=_sweep)
