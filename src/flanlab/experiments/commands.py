"""``flanlab run``, ``flanlab sweep`` and ``flanlab quickstart``."""

from __future__ import annotations

import argparse
from pathlib import Path

import flanlab.experiments.config  # noqa: F401  (registers the run / sweep config kinds; pydantic only)
from flanlab.core.commands import add_common_args

__all__ = ["register"]


def _setup(args: argparse.Namespace, prefix: str):
    from flanlab.core.log import setup_logging
    from flanlab.core.runs import RunDir
    from flanlab.core.seed import seed_everything

    run = RunDir.create(args.run_name, args.runs_dir, prefix=prefix)
    setup_logging(args.verbose, run.log_file)
    if args.seed is not None:
        seed_everything(args.seed)
    if args.data_dir:
        import os

        from flanlab.core.paths import DATA_DIR_ENV

        # Stages read the data folder from the environment when their config names none.
        os.environ[DATA_DIR_ENV] = str(args.data_dir)
    return run


def _run(args: argparse.Namespace) -> int:
    from flanlab.core.config import load_config
    from flanlab.experiments.config import RunConfig
    from flanlab.experiments.pipeline import run_pipeline

    cfg = load_config(args.config, args.overrides, schema=RunConfig)
    if args.run_name is None:
        args.run_name = cfg.name  # a fixed folder per config, so rerunning resumes
    run = _setup(args, cfg.name)
    result = run_pipeline(cfg, run, Path(args.config).resolve().parent)
    print((run.path / "results.md").read_text(encoding="utf-8"), end="")
    print(f"run folder: {run.path}" + (f"; report: {result.report}" if result.report else ""))
    return 0


def _sweep(args: argparse.Namespace) -> int:
    from flanlab.core.config import load_config
    from flanlab.experiments.config import SweepConfig
    from flanlab.experiments.sweep import run_sweep

    cfg = load_config(args.config, args.overrides, schema=SweepConfig)
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


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="mixture → finetune → evaluate before/after → report, resumable")
    p.add_argument("config", help="a kind: run config")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="dotted overrides, e.g. train.set.train.steps=5")
    add_common_args(p)
    p.set_defaults(func=_run)

    p = sub.add_parser("sweep", help="grid of runs over tasks × model × CoT, then the paper's figures")
    p.add_argument("config", help="a kind: sweep config")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="dotted overrides")
    p.add_argument("--emit-jobs", metavar="DIR", default=None,
                   help="write one run config + job script per cell into DIR instead of running them")
    add_common_args(p)
    p.set_defaults(func=_sweep)
