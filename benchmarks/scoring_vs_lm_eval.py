"""MMLU 5-shot scoring: flanlab's HF backend vs lm-evaluation-harness, side by side in one process.

Both score the very same (context, continuation) requests — the lm-eval MMLU prompt, four
one-token answers " A".." D" per question — with the very same model object (SmolLM2-135M-Instruct
by default), through lm-eval's own ``HFLM.loglikelihood``. Prints both throughputs, their ratio, and
whether the per-question choices agree.

    python benchmarks/scoring_vs_lm_eval.py --data-dir ../shared/data --questions 200

Needs the ``bench`` extra (lm-eval) and the MMLU CSVs (``mmlu/{dev,test}/*.csv``).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import time
from pathlib import Path

LETTERS = "ABCD"


def _format(row: list[str], answer: bool) -> str:
    q = row[0].strip() + "".join(f"\n{letter}. {row[1 + i]}" for i, letter in enumerate(LETTERS)) + "\nAnswer:"
    return q + (f" {row[5]}\n\n" if answer else "")


def _read_csv(path: Path) -> list[list[str]]:
    with open(path, encoding="utf-8", newline="") as f:
        return list(csv.reader(f))


def mmlu_requests(data_dir: Path, questions: int, per_subject: int) -> tuple[list[tuple[str, str]], list[str]]:
    """(context, continuation) pairs for ``questions`` test questions, ``per_subject`` from each
    subject in name order, each with the subject's 5 dev exemplars in front (lm-eval's MMLU prompt)."""
    pairs, subjects = [], []
    for test_file in sorted((data_dir / "mmlu" / "test").glob("*_test.csv")):
        subject = test_file.name[: -len("_test.csv")]
        dev = _read_csv(data_dir / "mmlu" / "dev" / f"{subject}_dev.csv")[:5]
        header = f"The following are multiple choice questions (with answers) about {subject.replace('_', ' ')}.\n\n"
        prefix = header + "".join(_format(r, True) for r in dev)
        rows = _read_csv(test_file)[:per_subject]
        for row in rows:
            if len(subjects) >= questions:
                return pairs, subjects
            ctx = prefix + _format(row, False)
            pairs += [(ctx, f" {letter}") for letter in LETTERS]
            subjects.append(subject)
    return pairs, subjects


def token_counts(tok, pairs: list[tuple[str, str]], groups) -> tuple[int, int]:
    """Tokens each side runs through the model: lm-eval each distinct context plus its one-token
    continuation once (its logits cache shares a context across one-token answers), flanlab each
    shared exemplar prefix once plus every question's own tokens (``groups``: flanlab's grouping of
    the distinct contexts). Both sides are compute-bound on a CPU, so this bounds the ratio."""
    contexts = sorted({tuple(tok(c, add_special_tokens=False).input_ids) for c, _ in pairs})
    lm_eval = sum(len(c) + 1 for c in contexts)
    flanlab = sum(g.prefix_len + sum(len(contexts[r]) - g.prefix_len for r in g.rows) for g in groups(contexts))
    return lm_eval, flanlab


def choices(scores: list[float]) -> list[int]:
    return [max(range(4), key=lambda k: scores[4 * q + k]) for q in range(len(scores) // 4)]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", default=os.environ.get("FLANLAB_DATA_DIR", "../shared/data"))
    p.add_argument("--model", default="smollm2-135m", help="any flanlab model name (embedded, folder, hub)")
    p.add_argument("--questions", type=int, default=200)
    p.add_argument("--per-subject", type=int, default=20, help="questions per subject (prefix sharing as in a full run)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--lm-eval-batch-sizes", default="1", help="comma-separated; the best is the baseline")
    p.add_argument("--flanlab-batch-size", default="auto")
    p.add_argument("--no-plain-kernels", dest="plain_kernels", action="store_false",
                   help="skip the flanlab run on PyTorch's own linear kernels (cpu_linear=torch)")
    p.add_argument("--out", default=None, help="also write the figures as JSON here")
    args = p.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    from lm_eval.api.instance import Instance
    from lm_eval.models.huggingface import HFLM as LMEvalHFLM

    from flanlab.inference import LoglikelihoodRequest, ModelSpec
    from flanlab.inference.hf import HFLM
    from flanlab.inference.loading import load_pretrained

    data_dir = Path(args.data_dir)
    if not (data_dir / "mmlu" / "test").is_dir():
        print(f"no MMLU data under {data_dir}/mmlu (pass --data-dir)", file=sys.stderr)
        return 2
    pairs, subjects = mmlu_requests(data_dir, args.questions, args.per_subject)
    n_q = len(subjects)
    loaded = load_pretrained(ModelSpec(name=args.model, device="cpu", dtype="float32"))
    print(f"{n_q} questions ({len(set(subjects))} subjects, {len(pairs)} requests), model {args.model}, "
          f"{args.threads} threads, torch {torch.__version__}", flush=True)

    batch = args.flanlab_batch_size if args.flanlab_batch_size == "auto" else int(args.flanlab_batch_size)
    ours = HFLM(loaded, batch_size=batch, show_progress=False)
    start = time.perf_counter()
    mine = ours.loglikelihood([LoglikelihoodRequest(c, o) for c, o in pairs])
    t_ours = time.perf_counter() - start
    kernels = "oneDNN-packed" if ours._linears is not None else "PyTorch's"
    print(f"flanlab ({kernels} linears): {t_ours:.1f}s", flush=True)
    t_plain = plain_scores = None
    if ours._linears is not None and args.plain_kernels:
        # The same on PyTorch's own linear kernels (lm-eval's): what the fewer tokens alone give.
        plain = HFLM(loaded, batch_size=batch, show_progress=False, cpu_linear="torch")
        start = time.perf_counter()
        plain_scores = [r.logprob for r in plain.loglikelihood([LoglikelihoodRequest(c, o) for c, o in pairs])]
        t_plain = time.perf_counter() - start
        print(f"flanlab (PyTorch's linears): {t_plain:.1f}s", flush=True)

    runs = []
    theirs_scores = None
    for bs in [int(x) for x in args.lm_eval_batch_sizes.split(",")]:
        lm = LMEvalHFLM(pretrained=loaded.model, tokenizer=loaded.tokenizer, batch_size=bs,
                        max_length=loaded.max_length, device="cpu")
        instances = [Instance(request_type="loglikelihood", doc={}, arguments=pair, idx=i)
                     for i, pair in enumerate(pairs)]
        start = time.perf_counter()
        out = lm.loglikelihood(instances, disable_tqdm=True)
        elapsed = time.perf_counter() - start
        runs.append((bs, elapsed))
        theirs_scores = [float(lp) for lp, _ in out]
        print(f"lm-eval batch {bs}: {elapsed:.1f}s", flush=True)

    mine_scores = [r.logprob for r in mine]
    agree = sum(a == b for a, b in zip(choices(mine_scores), choices(theirs_scores), strict=True))
    delta = max(abs(a - b) for a, b in zip(mine_scores, theirs_scores, strict=True))
    best_bs, best_t = min(runs, key=lambda r: r[1])
    rows = [(f"flanlab HFLM, {kernels} linears", str(batch), t_ours)]
    if t_plain is not None:
        rows.append(("flanlab HFLM, PyTorch's linears (cpu_linear=torch)", str(batch), t_plain))
    rows += [(f"lm-eval {LMEvalHFLM.__module__}.HFLM", str(bs), t)
                                                     for bs, t in runs]
    print()
    print("| scorer | batch size | seconds | questions/s |")
    print("| --- | --- | ---: | ---: |")
    for name, bs, t in rows:
        print(f"| {name} | {bs} | {t:.1f} | {n_q / t:.2f} |")
    print()
    print(f"speed-up over lm-eval's best (batch {best_bs}): {best_t / t_ours:.2f}x")
    if t_plain is not None:
        print(f"of which fewer tokens (both on PyTorch's linears): {best_t / t_plain:.2f}x, "
              f"oneDNN-packed linears: {t_plain / t_ours:.2f}x")
    print(f"per-question choices agree: {agree}/{n_q}; max |delta log-likelihood| = {delta:.2e}")
    if plain_scores is not None:
        same_kernels = sum(a == b for a, b in zip(choices(mine_scores), choices(plain_scores), strict=True))
        print(f"flanlab on oneDNN vs PyTorch's linears: choices agree {same_kernels}/{n_q}, max |delta| = "
              f"{max(abs(a - b) for a, b in zip(mine_scores, plain_scores, strict=True)):.2e}")
    from flanlab.inference.planning import group_rows

    tok_lme, tok_ours = token_counts(loaded.tokenizer, pairs, group_rows)
    print(f"tokens run through the model: lm-eval {tok_lme:,}, flanlab {tok_ours:,} ({tok_lme / tok_ours:.2f}x fewer; "
          f"lm-eval also computes the LM head at every position)")
    if args.out:
        Path(args.out).write_text(json.dumps({
            "questions": n_q, "model": args.model, "threads": args.threads,
            "flanlab_s": t_ours, "flanlab_torch_linears_s": t_plain, "lm_eval_s": dict(runs), "ratio": best_t / t_ours,
            "agree": agree, "max_abs_delta": delta, "tokens": {"lm_eval": tok_lme, "flanlab": tok_ours},
        }, indent=2) + "\n")
    return 0 if agree == n_q else 1


if __name__ == "__main__":
    sys.exit(main())
