"""``flanlab train CONFIG [key=value ...]``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import flanlab.training.config  # noqa: F401  (registers `kind: train`, so shipped configs load; pydantic only)
from flanlab.core.commands import add_common_args

if TYPE_CHECKING:
    from flanlab.training.config import TrainConfig

__all__ = ["register"]


def with_cli_settings(cfg: TrainConfig, seed: int | None, data_dir: str | Path | None) -> TrainConfig:
    """``cfg`` with ``--seed`` as the seed of training and of its ``eval:`` section, and ``--data-dir``
    as the data folder of the mixture build and of that evaluation (the flags win over the file; an
    unset one was filled from $FLANLAB_DATA_DIR when the config was validated)."""
    data: dict[str, object] = {}
    train: dict[str, object] = {}
    section: dict[str, object] = {}
    if seed is not None:
        train["seed"] = seed
        section["seed"] = seed
    if data_dir:
        data["data_dir"] = Path(data_dir).expanduser().resolve()
        section["data_dir"] = data["data_dir"]
    update = {"data": cfg.data.model_copy(update=data), "train": cfg.train.model_copy(update=train)}
    if cfg.eval is not None:
        update["eval"] = cfg.eval.model_copy(update=section)
    return cfg.model_copy(update=update)


def _train(args: argparse.Namespace) -> int:
    from flanlab.core.config import load_config
    from flanlab.core.log import setup_logging
    from flanlab.core.runs import RunDir, check_same_settings
    from flanlab.training.config import NOT_RESULT_CHANGING, TrainConfig
    from flanlab.training.trainer import train

    cfg = with_cli_settings(load_config(args.config, args.overrides, schema=TrainConfig), args.seed, args.data_dir)
    run = RunDir.locate(args.run_name or cfg.name, args.runs_dir, prefix="train")
    if not args.no_resume:
        # Before anything is written: checkpoints of other settings must not be resumed, nor the
        # recorded config replaced by one that does not describe them.
        # At a constant rate the schedule does not depend on train.steps: a run may be extended or
        # stopped at a checkpoint. Any other schedule changes every step's rate with it.
        steps = ("train.steps",) if cfg.optim.schedule == "constant" else ()
        check_same_settings(run, cfg, ignore=NOT_RESULT_CHANGING + steps, what="training run")
    run = RunDir.create(args.run_name or cfg.name, args.runs_dir, prefix="train")
    setup_logging(args.verbose, run.log_file)
    run.write_config(cfg)
    results = train(cfg, run, resume=not args.no_resume)
    sys.stdout.write(
        f"{run.path}: {results['steps']} steps, loss {results['final_loss']}, held-out loss "
        f"{results['heldout_loss']}; model in {results['model']}\n"
    )
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="finetune a T5 or decoder-only model on a mixture (packed, targets-only loss)")
    p.add_argument("config", help="a kind: train YAML config (see configs/train/)")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="dotted overrides, e.g. optim.lr=1e-4")
    p.add_argument("--no-resume", action="store_true", help="ignore checkpoints already in the run folder")
    add_common_args(p)
    p.set_defaults(func=_train)
