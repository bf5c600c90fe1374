"""Throughput and peak memory of `flanlab mix` on every BIG-bench JSON task plus the Flan CoT data.

Runs the real CLI once per worker count (1 worker is the baseline) on
``configs/mixtures/bigbench_cot.yaml`` and prints, per run: wall time, examples/s, the peak resident
memory of the whole process tree and of its largest process, the speed-up over 1 worker, and
whether the shards are byte-identical to the 1-worker run.

    python benchmarks/mixture_throughput.py --data-dir ../shared/data --examples 20000

Needs the BIG-bench sdist (fetched into the cache when missing) and the Flan CoT TSVs.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "configs" / "mixtures" / "bigbench_cot.yaml"


def run(workers: int, examples: int, out: Path, data_dir: str, config: Path) -> dict:
    """One `flanlab mix` run, sampling the RSS of its process tree every 50 ms."""
    cmd = [sys.executable, "-m", "flanlab", "mix", str(config), "--out", str(out), "--examples", str(examples),
           "--workers", str(workers), "--data-dir", data_dir]
    env = {**os.environ, "FLANLAB_PROGRESS": "0"}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, text=True)
    parent = psutil.Process(proc.pid)
    peak_total = peak_single = 0
    while proc.poll() is None:
        try:
            procs = [parent, *parent.children(recursive=True)]
            rss = []
            for p in procs:
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
    manifest = json.loads((out / "manifest.json").read_text())
    return {"workers": workers, "wall_s": wall, "cpu_s": cpu, "examples": manifest["examples"],
            "tasks": len(manifest["tasks"]), "streams": sum(len(t["formats"]) for t in manifest["tasks"].values()),
            "peak_total_mib": peak_total / 2**20, "peak_single_mib": peak_single / 2**20,
            "shards": [s["sha256"] for s in manifest["shards"]]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", default=os.environ.get("FLANLAB_DATA_DIR", str(REPO.parent / "shared" / "data")))
    ap.add_argument("--examples", type=int, default=20000)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--config", type=Path, default=CONFIG)
    args = ap.parse_args()
    results = []
    load = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="mix-bench-") as tmp:
        for w in args.workers:
            r = run(w, args.examples, Path(tmp) / f"w{w}", args.data_dir, args.config)
            results.append(r)
            print(f"workers={w}: {r['wall_s']:.1f}s", file=sys.stderr)
    base = results[0]
    print(f"mixture: {args.config.name}, {base['examples']:,} examples from {base['tasks']} tasks "
          f"({base['streams']} task×format streams), cpu cores: {os.cpu_count()}")
    print(f"load average before the runs: {load[0]:.1f} (wall-clock figures depend on it; CPU seconds less so)")
    print("| workers | wall s | CPU s | examples/s (wall) | examples per CPU s | peak RSS, all processes (MiB) "
          "| peak RSS, largest process (MiB) | speed-up vs 1st | same shards |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in results:
        print(f"| {r['workers']} | {r['wall_s']:.1f} | {r['cpu_s']:.1f} | {r['examples'] / r['wall_s']:.0f} | "
              f"{r['examples'] / r['cpu_s']:.0f} | {r['peak_total_mib']:.0f} | {r['peak_single_mib']:.0f} | "
              f"{base['wall_s'] / r['wall_s']:.2f}x | {r['shards'] == base['shards']} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
