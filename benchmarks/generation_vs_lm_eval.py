"""CoT generation: flanlab's HF backend vs lm-evaluation-harness's ``HFLM.generate_until``, side by side.

Both generate from the very same prompts (flanlab's BBH CoT and GSM8K CoT requests: the official
3-shot / 8-shot exemplars), with the very same model object (SmolLM2-135M-Instruct by default),
stop sequences and token budget, greedily. Prints each side's time, the ratio, the tokens each
processed (prompt tokens run through the model plus tokens generated), and whether the outputs
are identical.

Self-consistency: k samples of each prompt drawn by one flanlab request (the prompt encoded once,
the samples decoded from views of its cache) vs k separate one-sample requests (flanlab, each
request seeded to draw the same sample: the samples must be equal) and vs lm-eval's way, the
request repeated k times through ``generate_until`` (its sampler and RNG differ, so only its time
is compared).

    python benchmarks/generation_vs_lm_eval.py --data-dir ../shared/data

Needs the ``bench`` extra (lm-eval) and the BBH and GSM8K data (``bbh/``, ``gsm8k/``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path


def cot_requests(data_dir: Path, bbh_subtasks: list[str], per_subtask: int, gsm8k: int, max_new_tokens: int | None,
                 strategy: str = "cot", samples: int | None = None):
    """flanlab's own requests: BBH CoT (first ``per_subtask`` of each subtask) and GSM8K CoT."""
    from flanlab.evaluation.plan import build_requests, resolve_strategies

    strategies = [s for s in resolve_strategies([strategy], samples) if s.name == strategy]
    reqs = []
    if bbh_subtasks and per_subtask:
        reqs += build_requests(["bbh"], strategies, data_dir, limit=per_subtask, subtasks=bbh_subtasks,
                               max_new_tokens=max_new_tokens)[0]
    if gsm8k:
        reqs += build_requests(["gsm8k"], strategies, data_dir, limit=gsm8k, max_new_tokens=max_new_tokens)[0]
    return reqs


def _lm_eval_run(lm, reqs, *, repeats: int = 1, sample: dict | None = None):
    """lm-eval's generate_until over the same prompts (each repeated ``repeats`` times), timed."""
    from lm_eval.api.instance import Instance

    instances = []
    for r in reqs:
        kwargs = {"until": list(r.stop), "max_gen_toks": r.max_new_tokens, **(sample or {"do_sample": False})}
        for _ in range(repeats):
            instances.append(Instance(request_type="generate_until", doc={}, arguments=(r.prompt, kwargs),
                                      idx=len(instances)))
    start = time.perf_counter()
    out = lm.generate_until(instances, disable_tqdm=True)
    return out, time.perf_counter() - start


def _tokens(tok, prompts: list[str], outputs: list[list[str]], shared_prefix: bool, generator=None) -> int:
    """Prompt tokens run through the model (a shared prefix once when flanlab groups prompts) plus the
    tokens generated (re-encoded from the returned text: the stop-cut output, a close lower bound)."""
    ids = [tok(p, add_special_tokens=False).input_ids for p in prompts]
    if shared_prefix and generator is not None:
        prompt_tokens = 0
        for prefix_len, members in generator.groups(ids):
            prompt_tokens += prefix_len + sum(len(ids[i]) - prefix_len for i in members)
    else:
        prompt_tokens = sum(map(len, ids))
    gen = sum(len(tok(o, add_special_tokens=False).input_ids) for outs in outputs for o in outs)
    return prompt_tokens + gen


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", default=os.environ.get("FLANLAB_DATA_DIR", "../shared/data"))
    p.add_argument("--model", default="smollm2-135m", help="any flanlab model name (embedded, folder, hub)")
    p.add_argument("--bbh-subtasks", default="boolean_expressions,object_counting")
    p.add_argument("--per-subtask", type=int, default=4, help="BBH questions per subtask")
    p.add_argument("--gsm8k", type=int, default=4, help="GSM8K questions")
    p.add_argument("--max-new-tokens", type=int, default=64,
                   help="token budget of every request, both sides (the benchmarks' own: 0)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--lm-eval-batch-sizes", default="1,8", help="comma-separated; the fastest is the baseline")
    p.add_argument("--sc-questions", type=int, default=1, help="GSM8K questions for self-consistency (0: skip)")
    p.add_argument("--sc-k", type=int, default=8, help="self-consistency samples")
    p.add_argument("--sc-max-new-tokens", type=int, default=32)
    p.add_argument("--out", default=None, help="also write the figures as JSON here")
    args = p.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    from lm_eval.models.huggingface import HFLM as LMEvalHFLM

    from flanlab.inference import GenerateRequest, ModelSpec
    from flanlab.inference.generation import Generator, seed_of_sample
    from flanlab.inference.hf import HFLM
    from flanlab.inference.loading import load_pretrained

    data_dir = Path(args.data_dir)
    if not (data_dir / "bbh").is_dir() or not (data_dir / "gsm8k").is_dir():
        print(f"no bbh/ or gsm8k/ under {data_dir} (pass --data-dir)", file=sys.stderr)
        return 2
    subtasks = [s for s in args.bbh_subtasks.split(",") if s]
    reqs = cot_requests(data_dir, subtasks, args.per_subtask, args.gsm8k, args.max_new_tokens or None)
    loaded = load_pretrained(ModelSpec(name=args.model, device="cpu", dtype="float32"))
    tok = loaded.tokenizer
    ours = HFLM(loaded, show_progress=False)
    print(f"{len(reqs)} greedy CoT prompts (BBH {len(subtasks)}x{args.per_subtask}, GSM8K {args.gsm8k}), "
          f"budget {args.max_new_tokens or 'per benchmark'} tokens, model {args.model}, {args.threads} threads, "
          f"torch {torch.__version__}", flush=True)

    greedy = [GenerateRequest(prompt=r.prompt, stop=r.stop, max_new_tokens=r.max_new_tokens) for r in reqs]
    start = time.perf_counter()
    mine = ours.generate(greedy)
    t_ours = time.perf_counter() - start
    tok_ours = _tokens(tok, [r.prompt for r in reqs], mine, True, Generator(ours))
    kernels = "oneDNN-packed" if ours._linears is not None else "PyTorch's"
    print(f"flanlab ({kernels} linears): {t_ours:.1f}s", flush=True)
    t_plain = same_plain = None
    if ours._linears is not None:
        # The same on PyTorch's own linear kernels (lm-eval's): what the fewer tokens alone give.
        plain = HFLM(loaded, show_progress=False, cpu_linear="torch")
        start = time.perf_counter()
        plain_out = plain.generate(greedy)
        t_plain = time.perf_counter() - start
        same_plain = sum(a == b for a, b in zip(mine, plain_out, strict=True))
        print(f"flanlab (PyTorch's linears): {t_plain:.1f}s, {same_plain}/{len(reqs)} outputs identical", flush=True)

    runs, theirs = [], None
    for bs in [int(x) for x in args.lm_eval_batch_sizes.split(",") if x]:
        lm = LMEvalHFLM(pretrained=loaded.model, tokenizer=tok, batch_size=bs, max_length=loaded.max_length,
                        device="cpu")
        out, elapsed = _lm_eval_run(lm, reqs)
        same = sum(a[0] == b for a, b in zip(mine, out, strict=True))
        runs.append((bs, elapsed, same))
        theirs = theirs or out
        print(f"lm-eval batch {bs}: {elapsed:.1f}s, {same}/{len(reqs)} outputs identical to flanlab's", flush=True)
    tok_theirs = _tokens(tok, [r.prompt for r in reqs], [[o] for o in theirs], False)
    best_bs, best_t, _ = min(runs, key=lambda r: r[1])

    print()
    print("| greedy CoT | batch size | seconds | prompts/s | tokens processed | outputs identical |")
    print("| --- | --- | ---: | ---: | ---: | ---: |")
    print(f"| flanlab HFLM, {kernels} linears | auto | {t_ours:.1f} | {len(reqs) / t_ours:.2f} | {tok_ours:,} | - |")
    if t_plain is not None:
        print(f"| flanlab HFLM, PyTorch's linears (cpu_linear=torch) | auto | {t_plain:.1f} | {len(reqs) / t_plain:.2f} "
              f"| {tok_ours:,} | {same_plain}/{len(reqs)} |")
    for bs, t, same in runs:
        print(f"| lm-eval HFLM.generate_until | {bs} | {t:.1f} | {len(reqs) / t:.2f} | {tok_theirs:,} "
              f"| {same}/{len(reqs)} |")
    print(f"\nspeed-up over lm-eval's best (batch {best_bs}): {best_t / t_ours:.2f}x")
    if t_plain is not None:
        print(f"of which fewer tokens (both on PyTorch's linears): {best_t / t_plain:.2f}x, "
              f"oneDNN-packed linears: {t_plain / t_ours:.2f}x")
    figures = {"prompts": len(reqs), "model": args.model, "threads": args.threads, "flanlab_s": t_ours,
               "lm_eval": [{"batch": bs, "s": t, "identical": same} for bs, t, same in runs],
               "ratio": best_t / t_ours, "tokens": {"flanlab": tok_ours, "lm_eval": tok_theirs},
               "flanlab_torch_linears_s": t_plain, "torch_linears_identical": same_plain}
    ok = all(same == len(reqs) for _, _, same in runs) and same_plain in (None, len(reqs))

    if args.sc_questions and args.sc_k > 1:
        sc = cot_requests(data_dir, [], 0, args.sc_questions, args.sc_max_new_tokens, "self_consistency", args.sc_k)
        one = [GenerateRequest(prompt=r.prompt, stop=r.stop, max_new_tokens=r.max_new_tokens,
                               temperature=r.temperature, top_p=r.top_p, n=r.n, seed=r.seed) for r in sc]
        start = time.perf_counter()
        joint = ours.generate(one)
        t_joint = time.perf_counter() - start
        separate_reqs = [GenerateRequest(prompt=r.prompt, stop=r.stop, max_new_tokens=r.max_new_tokens,
                                         temperature=r.temperature, top_p=r.top_p, n=1,
                                         seed=seed_of_sample(r.seed, k)) for r in one for k in range(r.n)]
        # k separate requests, one at a time, as a client sending each sample as its own request would.
        sep = HFLM(loaded, batch_size=1, prefix_reuse=False, show_progress=False)
        start = time.perf_counter()
        separate = [sep.generate([r])[0][0] for r in separate_reqs]
        t_sep = time.perf_counter() - start
        flat = [s for outs in joint for s in outs]
        equal = sum(a == b for a, b in zip(flat, separate, strict=True))
        lm = LMEvalHFLM(pretrained=loaded.model, tokenizer=tok, batch_size=best_bs, max_length=loaded.max_length,
                        device="cpu")
        _, t_lme = _lm_eval_run(lm, sc, repeats=args.sc_k,
                                sample={"do_sample": True, "temperature": sc[0].temperature, "top_p": sc[0].top_p})
        n_samples = len(flat)
        print()
        print(f"| self-consistency, k={args.sc_k}, {len(sc)} GSM8K prompts | seconds | samples/s "
              "| speed vs one request of k |")
        print("| --- | ---: | ---: | ---: |")
        print(f"| flanlab, one request of k samples | {t_joint:.1f} | {n_samples / t_joint:.2f} | 1.00x |")
        print(f"| flanlab, k separate one-sample requests | {t_sep:.1f} | {n_samples / t_sep:.2f} | "
              f"{t_joint / t_sep:.2f}x |")
        print(f"| lm-eval generate_until, request repeated k times (batch {best_bs}) | {t_lme:.1f} | "
              f"{n_samples / t_lme:.2f} | {t_joint / t_lme:.2f}x |")
        print(f"\nk samples in one request vs k separate requests: {t_sep / t_joint:.2f}x (flanlab), "
              f"{t_lme / t_joint:.2f}x (lm-eval repeats); samples equal under the same seeds: {equal}/{n_samples}")
        figures["self_consistency"] = {"prompts": len(sc), "k": args.sc_k, "joint_s": t_joint, "separate_s": t_sep,
                                       "lm_eval_repeats_s": t_lme, "equal": equal, "samples": n_samples}
        ok = ok and equal == n_samples
    if args.out:
        Path(args.out).write_text(json.dumps(figures, indent=2) + "\n")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
