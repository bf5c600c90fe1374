"""`flanlab serve` under concurrent clients: 8 clients at once vs one client at a time, side by side.

One server (``flanlab.inference.serve.Server`` on a free 127.0.0.1 port, the same code as ``flanlab
serve``) answers the very same chat requests — GSM8K test questions, greedy, ``max_tokens`` each —
twice through the official ``openai`` client: first one request at a time, then from ``--clients``
threads at once (each sends its next request when its answer arrives). Prints both throughputs, the
ratio, the backend batches the server formed, and whether every answer is identical.

    python benchmarks/serve_concurrency.py --data-dir ../shared/data --requests 32 --clients 8

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
        for name, workers in (("one at a time", 1), (f"{args.clients} concurrent clients", args.clients)):
            with ThreadPoolExecutor(max_workers=workers) as pool:
                # Client threads and their connections exist before the clock starts, for both sides.
                list(pool.map(lambda _: client.models.list(), range(workers)))
                before = len(srv.batcher.batches)
                start = time.perf_counter()
                answers = list(pool.map(ask, qs))
                elapsed = time.perf_counter() - start
            sizes = Counter(srv.batcher.batches[before:])
            runs[name] = (elapsed, answers, sizes)
            print(f"{name}: {elapsed:.1f}s", flush=True)
    finally:
        client.close()
        srv.stop()

    (t_seq, seq, _), (t_con, con, sizes) = runs.values()
    same = sum(a[0] == b[0] for a, b in zip(seq, con, strict=True))
    tokens = sum(n for _, n in seq)
    print()
    print("| clients | requests | seconds | requests/s | generated tokens/s | vs one at a time |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for name, (t, answers, _) in runs.items():
        n_tok = sum(n for _, n in answers)
        print(f"| {name} | {len(answers)} | {t:.1f} | {len(answers) / t:.2f} | {n_tok / t:.1f} | {t_seq / t:.2f}x |")
    print()
    print(f"throughput ratio: {t_seq / t_con:.2f}x; identical answers: {same}/{len(qs)}; "
          f"{tokens} generated tokens per run")
    print("backend batches with concurrent clients (requests per batch: count): "
          + ", ".join(f"{k}: {v}" for k, v in sorted(sizes.items())))
    if args.out:
        Path(args.out).write_text(json.dumps({
            "requests": len(qs), "clients": args.clients, "model": args.model, "threads": args.threads,
            "max_tokens": args.max_tokens, "sequential_s": t_seq, "concurrent_s": t_con,
            "ratio": t_seq / t_con, "identical": same, "batch_sizes": dict(sizes),
        }, indent=2) + "\n")
    return 0 if same == len(qs) else 1


if __name__ == "__main__":
    sys.exit(main())
