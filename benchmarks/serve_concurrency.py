"""`flanlab serve` under concurrent clients: 8 clients at once vs one client at a time, side by side.

One server (``flanlab.inference.serve.Server`` on a free 127.0.0.1 port, the same code as ``flanlab
serve``) answers the very same chat requests — GSM8K test questions, greedy, ``max_tokens`` each —
twice through the official ``openai`` client: first one request at a time, then from ``--clients``
threads at once (each sends its next request when its answer arrives), with continuous batching
(requests join the running batch) and, with ``--compare-collected``, again with collected batches
only. Prints the throughputs, the ratios, how many requests each decoding step carried, and whether
every answer is identical to the one-at-a-time answer.

    python benchmarks/serve_concurrency.py --data-dir ../shared/data --requests 32 --clients 8 --repeat 2

Needs the ``serve`` extra and the ``openai`` client (``dev``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path


def questions(data_dir: Path, n: int) -> list[str]:
    """The first ``n`` GSM8K test questions."""
    path = data_dir / "gsm8k" / "test.jsonl"
    with open(path, encoding="utf-8") as f:
        return [json.loads(line)["question"] for _, line in zip(range(n), f, strict=False)]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", default=os.environ.get("FLANLAB_DATA_DIR", "../shared/data"))
    p.add_argument("--model", default="smollm2-135m",
                   help="any flanlab model name (embedded, folder, hub), or tiny-llama (random, built here)")
    p.add_argument("--requests", type=int, default=32)
    p.add_argument("--clients", type=int, default=8)
    p.add_argument("--max-tokens", type=int, default=32)
    p.add_argument("--threads", type=int, default=2, help="torch threads")
    p.add_argument("--batch-window-ms", type=float, default=20.0)
    p.add_argument("--repeat", type=int, default=1,
                   help="run the modes this many times, interleaved, and keep each mode's fastest run "
                        "(other jobs on a shared machine slow runs, never speed them up)")
    p.add_argument("--compare-collected", action="store_true",
                   help="also run the concurrent clients without continuous batching (collected batches)")
    p.add_argument("--out", default=None, help="also write the figures as JSON here")
    args = p.parse_args(argv)

    import openai
    import torch

    torch.set_num_threads(args.threads)
    from flanlab.inference import ModelSpec
    from flanlab.inference.hf import HFLM
    from flanlab.inference.serve import Server

    data_dir = Path(args.data_dir)
    if not (data_dir / "gsm8k" / "test.jsonl").is_file():
        print(f"no GSM8K data under {data_dir}/gsm8k (pass --data-dir)", file=sys.stderr)
        return 2
    qs = questions(data_dir, args.requests)
    name = args.model
    if name == "tiny-llama":  # per-step overhead dominates, as for a small model on a GPU
        import tempfile

        from flanlab.inference.tiny import make_tiny_model

        name = str(make_tiny_model("llama", Path(tempfile.mkdtemp()) / "tiny-llama"))
    lm = HFLM.from_spec(ModelSpec(name=name, device="cpu", dtype="float32"), show_progress=False)
    srv = Server(lm, port=0, model_name=args.model, batch_window_ms=args.batch_window_ms).start()
    client = openai.OpenAI(base_url=srv.url, api_key="unused", max_retries=0, timeout=600)
    print(f"{len(qs)} chat requests (GSM8K test questions, greedy, max_tokens {args.max_tokens}), model "
          f"{args.model}, {args.threads} torch threads, torch {torch.__version__}", flush=True)

    def ask(q: str) -> tuple[str, int]:
        r = client.chat.completions.create(model=args.model, messages=[{"role": "user", "content": q}],
                                           max_tokens=args.max_tokens, temperature=0)
        return r.choices[0].message.content, r.usage.completion_tokens

    try:
        ask(qs[0])  # warm-up: first-call allocations count for neither side
        runs = {}
        plan = [("one at a time", 1, True), (f"{args.clients} concurrent clients", args.clients, True)]
        if args.compare_collected:
            plan.append((f"{args.clients} concurrent clients, collected batches only", args.clients, False))
        times: dict[str, list[float]] = {}
        for _ in range(args.repeat):
            for name, workers, continuous in plan:
                srv.batcher.continuous = continuous
                with ThreadPoolExecutor(max_workers=workers) as pool:
                    # Client threads and their connections exist before the clock starts, for both sides.
                    list(pool.map(lambda _: client.models.list(), range(workers)))
                    before, steps_before = len(srv.batcher.batches), len(srv.batcher.steps)
                    start = time.perf_counter()
                    answers = list(pool.map(ask, qs))
                    elapsed = time.perf_counter() - start
                sizes = Counter(srv.batcher.batches[before:])
                steps = Counter(srv.batcher.steps[steps_before:])
                times.setdefault(name, []).append(elapsed)
                if name not in runs or elapsed < runs[name][0]:
                    runs[name] = (elapsed, answers, sizes, steps)
                if runs[name][1] != answers:
                    print(f"{name}: answers differ between repeats", flush=True)
                print(f"{name}: {elapsed:.1f}s", flush=True)
    finally:
        client.close()
        srv.stop()

    runs_list = list(runs.values())
    t_seq, seq = runs_list[0][0], runs_list[0][1]
    t_con = runs_list[1][0]
    tokens = sum(n for _, n in seq)
    print()
    print("| clients | requests | seconds | requests/s | generated tokens/s | vs one at a time | identical |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    identical = {}
    for name, (t, answers, _, _) in runs.items():
        n_tok = sum(n for _, n in answers)
        identical[name] = sum(a[0] == b[0] for a, b in zip(seq, answers, strict=True))
        print(f"| {name} | {len(answers)} | {t:.1f} | {len(answers) / t:.2f} | {n_tok / t:.1f} | {t_seq / t:.2f}x "
              f"| {identical[name]}/{len(qs)} |")
    same = identical[list(runs)[1]]
    print()
    print(f"throughput ratio: {t_seq / t_con:.2f}x; identical answers: {same}/{len(qs)}; "
          f"{tokens} generated tokens per run")
    if args.repeat > 1:
        print("fastest of " + str(args.repeat) + " interleaved runs; all (s): "
              + "; ".join(f"{name}: " + ", ".join(f"{t:.1f}" for t in ts) for name, ts in times.items()))
    for name, (_, _, sizes, steps) in list(runs.items())[1:]:
        print(f"{name}: requests taken from the queue together (requests: count): "
              + ", ".join(f"{k}: {v}" for k, v in sorted(sizes.items())))
        if steps:
            print(f"{name}: decoding steps by requests in the running batch (requests: steps): "
                  + ", ".join(f"{k}: {v}" for k, v in sorted(steps.items())))
    if args.out:
        Path(args.out).write_text(json.dumps({
            "requests": len(qs), "clients": args.clients, "model": args.model, "threads": args.threads,
            "max_tokens": args.max_tokens, "sequential_s": t_seq, "concurrent_s": t_con,
            "ratio": t_seq / t_con, "identical": identical,
            "runs": {name: {"seconds": t, "all_seconds": times[name], "queue_groups": dict(sizes),
                            "step_requests": dict(steps)} for name, (t, _, sizes, steps) in runs.items()},
        }, indent=2) + "\n")
    return 0 if all(v == len(qs) for v in identical.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
