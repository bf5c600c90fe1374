"""Throughput, per-stage CPU cost and peak memory of `flanlab mix`.

Runs the real CLI once per (examples, workers) pair on a mixture config (default
``configs/mixtures/bigbench_cot.yaml``: every BIG-bench JSON task plus the Flan CoT data) with the
config's tokenizer, so flan/v2's token budgets apply, and prints one table row per run:

- wall time and CPU seconds of the whole process tree (``getrusage`` of the children: workers
  included). On a shared machine wall time depends on other load; **examples per CPU-second** is the
  per-core rate and is what the table leads with;
- start-up (imports, resolving and counting tasks, loading the tokenizer, opening each stream)
  apart from the steady state (rendering, budget checks, token statistics, writing), from the
  ``stage cpu`` line every build logs; per-stage cost in µs of CPU per example;
- peak resident memory of the process tree and of its largest process;
- whether the shards are byte-identical to the first run of the same size (other worker counts);
- for more than one worker count: the wall-time speed-up over the first worker count and the cores
  the build had on average (CPU seconds / wall seconds), with the load average (``os.getloadavg``)
  before and after each run: on a shared machine a second worker only speeds a build up when a core
  is free for it.

``--baseline SRC`` adds a run of another checkout's ``src`` (e.g. the code before an optimisation,
``git archive COMMIT src | tar -x -C /tmp/old``) on the first size with 1 worker, in the same
benchmark run, for an honest ratio; it has no stage line, so only its totals are shown.

``--repeat R`` then runs R more rounds on the first size: the baseline's 1-worker build and this
checkout's with each worker count, the order rotated from round to round (a machine shared with
other virtual machines drifts by ±10-20 % within minutes, more than many changes are worth), and
prints each round's ratios (CPU time against the baseline, wall time against the first worker
count) with their geometric means and 95 % t-intervals.

    python benchmarks/mixture_throughput.py --data-dir ../shared/data --examples 20000 --workers 1 2

Needs the BIG-bench sdist (fetched into the cache when missing), the Flan CoT TSVs and the
config's tokenizer (``flanlab models`` caches smollm2-135m).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "configs" / "mixtures" / "bigbench_cot.yaml"
# Student's t 0.975 quantiles by degrees of freedom (10 stands for 10 and more: conservative).
T975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228}
STEADY = ("render", "budget_tokenize", "stats_tokenize", "write", "assemble_shards")


def run(workers: int, examples: int, out: Path, args, src: Path) -> dict:
    """One `flanlab mix` run, sampling the RSS of its process tree every 50 ms."""
    cmd = [sys.executable, "-m", "flanlab", "mix", str(args.config), "--out", str(out), "--examples", str(examples),
           "--workers", str(workers), "--data-dir", args.data_dir]
    if args.tokenizer:
        cmd += ["--tokenizer", args.tokenizer]
    env = {**os.environ, "FLANLAB_PROGRESS": "0", "PYTHONPATH": str(src), "TOKENIZERS_PARALLELISM": "false",
           "COLUMNS": "400"}
    load0 = os.getloadavg()[0]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, text=True)
    parent = psutil.Process(proc.pid)
    peak_total = peak_single = 0
    while proc.poll() is None:
        try:
            rss = []
            for p in [parent, *parent.children(recursive=True)]:
                with contextlib.suppress(psutil.Error):
                    rss.append(p.memory_info().rss)
            peak_total = max(peak_total, sum(rss))
            peak_single = max(peak_single, max(rss, default=0))
        except psutil.Error:
            pass
        time.sleep(0.05)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    err = proc.stderr.read() if proc.stderr else ""
    if proc.returncode != 0:
        raise SystemExit(f"flanlab mix failed ({proc.returncode}):\n{err[-3000:]}")
    stages = None
    log_text = (out / "log.txt").read_text() if (out / "log.txt").is_file() else err
    m = re.search(r"stage cpu: (\{.*\})", log_text) or re.search(r"stage cpu: (\{.*\})", err)
    if m:
        stages = json.loads(m.group(1))
    manifest = json.loads((out / "manifest.json").read_text())
    return {"workers": workers, "wall_s": wall, "cpu_s": cpu, "examples": manifest["examples"],
            "tasks": len(manifest["tasks"]), "streams": sum(len(t["formats"]) for t in manifest["tasks"].values()),
            "peak_total_mib": peak_total / 2**20, "peak_single_mib": peak_single / 2**20, "stages": stages,
            "tokenizer": manifest.get("tokenizer"), "shards": [s["sha256"] for s in manifest["shards"]],
            "load": (load0, os.getloadavg()[0])}


def steady_rate(r: dict) -> str:
    """Examples per CPU-second of the steady stages (start-up left out), from the build's stage line."""
    steady = sum(r["stages"].get(k, 0.0) for k in STEADY) if r["stages"] else 0.0
    return f"{r['examples'] / steady:,.0f}" if steady else "–"


def row(label: str, r: dict, same: str, speedup: str = "–") -> str:
    n = r["examples"]
    st = r["stages"]
    if st:
        steady = sum(st.get(k, 0.0) for k in STEADY)
        startup = max(0.0, r["cpu_s"] - steady)
        per = " | ".join(f"{1e6 * st.get(k, 0.0) / n:.0f}" for k in STEADY)
        steady_rate_s = steady_rate(r)
        startup_s = f"{startup:.1f}"
    else:
        per, steady_rate_s, startup_s = " | ".join("–" for _ in STEADY), "–", "–"
    return (f"| {label} | {n:,} | {r['workers']} | {r['wall_s']:.1f} | {r['cpu_s']:.1f} | {startup_s} | "
            f"{steady_rate_s} | {n / r['cpu_s']:,.0f} | {per} | {r['peak_total_mib']:.0f} | "
            f"{r['peak_single_mib']:.0f} | {same} | {speedup} | {r['cpu_s'] / r['wall_s']:.2f} | "
            f"{r['load'][0]:.1f} → {r['load'][1]:.1f} |")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", default=os.environ.get("FLANLAB_DATA_DIR", str(REPO.parent / "shared" / "data")))
    ap.add_argument("--examples", type=int, nargs="+", default=[20000])
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--config", type=Path, default=CONFIG)
    ap.add_argument("--tokenizer", default=None, help="override the config's tokenizer (default: the config's)")
    ap.add_argument("--baseline", type=Path, default=None, help="another checkout's src folder, run once to compare")
    ap.add_argument("--repeat", type=int, default=0,
                    help="this many more rounds of the first size (baseline and each worker count, order rotated)")
    args = ap.parse_args()
    load = os.getloadavg()
    rows = []
    base_shards, same_as_base = None, []
    with tempfile.TemporaryDirectory(prefix="mix-bench-") as tmp:
        if args.baseline:
            r = run(1, args.examples[0], Path(tmp) / "baseline", args, args.baseline.resolve())
            base_shards = r["shards"]
            print(f"baseline: {r['wall_s']:.1f}s wall, {r['cpu_s']:.1f} CPU s", file=sys.stderr)
            rows.append(row(f"baseline ({args.baseline})", r, "–"))
        for n in args.examples:
            first = None
            for w in args.workers:
                r = run(w, n, Path(tmp) / f"n{n}-w{w}", args, REPO / "src")
                print(f"examples={n} workers={w}: {r['wall_s']:.1f}s wall, {r['cpu_s']:.1f} CPU s", file=sys.stderr)
                first = first or r
                speedup = f"{first['wall_s'] / r['wall_s']:.2f}x" if r is not first else "–"
                rows.append(row("this checkout", r, str(r["shards"] == first["shards"]), speedup))
                if base_shards is not None and n == args.examples[0]:
                    same_as_base.append(f"workers={w}: {r['shards'] == base_shards}")
                if w == args.workers[0]:
                    info = r
                # Each run's folder is removed at once: disk stays at one build's size.
                shutil.rmtree(Path(tmp) / f"n{n}-w{w}", ignore_errors=True)
    print(f"mixture: {args.config.name}, {info['tasks']} tasks ({info['streams']} task×format streams), "
          f"tokenizer {info['tokenizer']} (token budgets applied), cpu cores: {os.cpu_count()}")
    print(f"load average before the runs: {load[0]:.1f} (wall-clock figures depend on it; CPU seconds less so)")
    print("| code | examples | workers | wall s | CPU s | start-up CPU s | steady examples per CPU s | "
          "examples per CPU s (all) | read+render µs/ex | budget tokenize µs/ex | stats tokenize µs/ex | "
          "write streams µs/ex | assemble shards µs/ex | peak RSS, all processes (MiB) | "
          "peak RSS, largest process (MiB) | same shards as 1st worker count | wall speed-up over 1st worker "
          "count | cores used (CPU s / wall s) | load average before → after |")
    print("| --- " * 19 + "|")
    for line in rows:
        print(line)
    if same_as_base:
        print(f"shards byte-identical to the baseline's ({args.examples[0]:,} examples): {', '.join(same_as_base)}")
    if args.repeat > 0:
        rounds(args)
    return 0


def rounds(args) -> None:
    """``--repeat`` rounds on the first size: in each, the baseline's 1-worker build (with
    ``--baseline``) and this checkout's build with each worker count, in an order rotated from
    round to round. Per round the ratios of runs made minutes apart (baseline CPU s / this
    checkout's 1-worker CPU s; this checkout's 1-worker wall s / its k-worker wall s), then each
    ratio's geometric mean with a 95 % t-interval over the rounds: the rounds average out the
    machine's drift, which one side-by-side run does not."""
    from statistics import mean, stdev

    n, first = args.examples[0], args.workers[0]
    sides = ([("baseline", 1, args.baseline.resolve())] if args.baseline else []) + \
        [(f"this, {w} worker{'s' if w > 1 else ''}", w, REPO / "src") for w in args.workers]
    ratios: dict[str, list[float]] = {}
    lines = []
    with tempfile.TemporaryDirectory(prefix="mix-bench-rounds-") as tmp:
        for i in range(args.repeat):
            k = i % len(sides)
            order = sides[k:] + sides[:k]
            got = {}
            for name, w, src in order:
                got[name] = r = run(w, n, Path(tmp) / f"r{i}", args, src)
                shutil.rmtree(Path(tmp) / f"r{i}", ignore_errors=True)
                print(f"round {i + 1}, {name}: {r['wall_s']:.1f} s wall, {r['cpu_s']:.1f} CPU s", file=sys.stderr)
            one = got[sides[1 if args.baseline else 0][0]]
            cells = []
            if args.baseline:
                b = got["baseline"]
                ratios.setdefault(f"CPU speed-up over the baseline (this with {first} worker{'s' if first > 1 else ''}, "
                                  "the baseline with 1)", []).append(b["cpu_s"] / one["cpu_s"])
                cells.append(f"{n / b['cpu_s']:,.0f}")
            for name, w, _ in sides[1 if args.baseline else 0:]:
                r = got[name]
                cells.append(f"{n / r['cpu_s']:,.0f} ({steady_rate(r)} steady; {r['wall_s']:.1f} s)")
                if w != first:
                    ratios.setdefault(f"wall speed-up, {w} workers over {first}", []).append(one["wall_s"] / r["wall_s"])
            same = len({tuple(r["shards"]) for r in got.values()}) == 1
            lines.append(f"| {i + 1} | {order[0][0]} | " + " | ".join(cells) + f" | {same} | "
                         f"{min(r['load'][0] for r in got.values()):.1f}–{max(r['load'][1] for r in got.values()):.1f} |")
    heads = (["baseline ex per CPU s"] if args.baseline else []) + \
        [f"{name}: ex per CPU s (steady; wall)" for name, _, _ in sides[1 if args.baseline else 0:]]
    print(f"\n{args.repeat} rounds, {n:,} examples, the order rotated each round:")
    print("| round | first run | " + " | ".join(heads) + " | same shards | load average |")
    print("| --- " * (len(heads) + 4) + "|")
    for line in lines:
        print(line)
    for what, values in ratios.items():
        logs = [math.log(v) for v in values]
        g = math.exp(mean(logs))
        if len(logs) > 1:
            half = T975[min(len(logs) - 1, 10)] * stdev(logs) / math.sqrt(len(logs))
            print(f"{what}: geometric mean {g:.3f}x, 95 % t-interval {math.exp(mean(logs) - half):.3f}x–"
                  f"{math.exp(mean(logs) + half):.3f}x over {len(logs)} rounds "
                  f"(each: {', '.join(f'{v:.2f}x' for v in values)})")
        else:
            print(f"{what}: {g:.3f}x (one round: no interval)")


if __name__ == "__main__":
    sys.exit(main())
