"""The quickstart's learning-rate / schedule sweep, on held-out LOSS (never on the BBH test items).

Retrains the quickstart's finetune (same mixture, same model, same LoRA, same steps and data
order) under each (peak lr, schedule) and reports the held-out loss of the mixture's 5 % split
before and after, and the last training loss. The quickstart's default is the setting with the
lowest held-out loss.

    python benchmarks/quickstart_lr_sweep.py runs/quickstart --lrs 3e-4,1e-3,3e-3 --schedules cosine \\
        --out runs/quickstart-lr-sweep

``runs/quickstart`` is a finished (or at least mixture-complete) ``flanlab quickstart`` run folder:
its ``configs/train.yaml`` and ``mixture/`` are reused. Writes ``OUT/sweep.json`` and ``OUT/sweep.md``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import yaml


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", type=Path, help="a flanlab quickstart run folder (its mixture/ and configs/train.yaml)")
    p.add_argument("--lrs", default="3e-4,1e-3,3e-3", help="peak learning rates, comma-separated")
    p.add_argument("--schedules", default="cosine", help="constant, cosine and/or linear, comma-separated")
    p.add_argument("--steps", type=int, default=None, help="steps per cell (default: the quickstart's)")
    p.add_argument("--out", type=Path, required=True, help="sweep folder (one train run per cell, resumable)")
    args = p.parse_args()

    from flanlab.core.io import atomic_write_json, atomic_write_text
    from flanlab.core.log import setup_logging
    from flanlab.core.runs import RunDir
    from flanlab.training.config import TrainConfig
    from flanlab.training.trainer import train

    base = yaml.safe_load((args.run / "configs" / "train.yaml").read_text(encoding="utf-8"))
    if not (args.run / "mixture" / "manifest.json").is_file():
        raise SystemExit(f"{args.run}/mixture is not complete: run `flanlab quickstart` first")
    setup_logging(False, args.out / "log.txt")
    rows = []
    for schedule in [s.strip() for s in args.schedules.split(",") if s.strip()]:
        for lr in [float(x) for x in args.lrs.split(",") if x.strip()]:
            cfg = json.loads(json.dumps(base))
            cfg["name"] = f"lr{lr:g}-{schedule}"
            cfg["data"]["mixture"] = str(args.run / "mixture")
            cfg["optim"].update(lr=lr, schedule=schedule)
            if args.steps:
                cfg["train"].update(steps=args.steps, eval_every=max(1, args.steps // 2),
                                    save_every=args.steps)
                cfg["optim"]["warmup_steps"] = max(1, args.steps // 10)
            cfg["train"]["keep_best"] = False
            t0 = time.time()
            res = train(TrainConfig.model_validate(cfg), RunDir.create(str(args.out / cfg["name"])), resume=True)
            rows.append({"lr": lr, "schedule": schedule, "steps": res["steps"],
                         "initial_heldout_loss": res["initial_heldout_loss"], "heldout_loss": res["heldout_loss"],
                         "final_train_loss": res["final_loss"], "wall_s": round(time.time() - t0, 1)})
    best = min(rows, key=lambda r: r["heldout_loss"] if r["heldout_loss"] is not None else float("inf"))
    lines = ["| peak lr | schedule | steps | held-out loss before | after | last train loss | wall s |",
             "| ---: | --- | ---: | ---: | ---: | ---: | ---: |"]
    for r in rows:
        mark = " **(lowest)**" if r is best else ""
        lines.append(f"| {r['lr']:g} | {r['schedule']} | {r['steps']} | {r['initial_heldout_loss']:.3f} | "
                     f"{r['heldout_loss']:.3f}{mark} | {r['final_train_loss']:.3f} | {r['wall_s']:.0f} |")
    table = "\n".join(lines) + "\n"
    atomic_write_json(args.out / "sweep.json", {"run": str(args.run), "cells": rows, "best": best})
    atomic_write_text(args.out / "sweep.md", table)
    print(table, end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
