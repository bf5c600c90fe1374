"""Training throughput: flanlab packed vs flanlab unpacked vs TRL's SFTTrainer (its defaults), and
for a tiny T5, flanlab packed vs unpacked (random and length-sorted batches).

    python benchmarks/train_throughput.py                         # tiny random Llama + T5 (minutes)
    python benchmarks/train_throughput.py --model smollm2-135m --examples 400 --steps 20

Examples are Flan CoT prompt/completion pairs from ``--data-dir`` (flan_cot/*.tsv), or rows of a
mixture folder (``--mixture``). Every layout trains a fresh copy of the same model with AdamW on the
same examples for the same number of optimizer steps; it reports real (non-pad) tokens/s, tokens/s
counting padding, packing efficiency and the mean target-token loss of the steps. Timings are wall
time of forward + backward + optimizer step on this machine; nothing here is asserted.
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import random
import sys
import tempfile
import time
from pathlib import Path

import torch

from flanlab.training.data import Example, Tokenized, iter_rows, tokenize_row
from flanlab.training.loss import target_loss_sum
from flanlab.training.packing import collate, group_by_length, pack


def load_examples(args) -> list[Example]:
    if args.mixture:
        return list(itertools.islice(iter_rows(args.mixture), args.examples))
    folder = Path(args.data_dir) / "flan_cot"
    out: list[Example] = []
    for tsv in sorted(folder.glob("*_train.tsv")):
        with open(tsv, encoding="utf-8") as f:
            for row in csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE):
                if len(row) >= 3:
                    q, a, cot = (x.replace("\\n", "\n") for x in row[:3])
                    out.append(Example(f"{q}\nLet's think step by step.", f" {cot} So the answer is {a}.",
                                       tsv.stem, str(tsv)))
    random.Random(0).shuffle(out)
    return out[: args.examples]


def load_model(name: str, seq2seq: bool):
    from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM, AutoTokenizer

    if name == "smollm2-135m":
        from flanlab.inference.loading import resolve_source

        name = resolve_source(name)
    cls = AutoModelForSeq2SeqLM if seq2seq else AutoModelForCausalLM
    model = cls.from_pretrained(name, dtype=torch.float32)
    tok = AutoTokenizer.from_pretrained(name)
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    return model, tok


def run_flanlab(name, seq2seq, tokenized, layout, args) -> dict:
    model, tok = load_model(name, seq2seq)
    model.train()
    torch.manual_seed(0)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr)
    start_id = getattr(model.config, "decoder_start_token_id", None)
    if layout == "packed":
        rows = list(pack(tokenized, encoder_decoder=seq2seq, max_length=args.max_length,
                         target_length=args.target_length, window=len(tokenized)))
        random.Random(0).shuffle(rows)
        per_batch = args.packed_rows
    elif layout == "sorted":
        rows = list(group_by_length(tokenized, encoder_decoder=seq2seq, max_length=args.max_length,
                                    target_length=args.target_length, batch_size=args.batch_size,
                                    window=len(tokenized), rng=random.Random(0)))
        per_batch = args.batch_size
    else:  # random batches, one example per row
        rows = list(group_by_length(tokenized, encoder_decoder=seq2seq, max_length=args.max_length,
                                    target_length=args.target_length, batch_size=1,
                                    window=len(tokenized), rng=random.Random(0)))
        per_batch = args.batch_size
    batches = [rows[i:i + per_batch] for i in range(0, len(rows), per_batch)]
    real = slots = target = 0
    loss_sum = 0.0
    seconds = 0.0
    for rows_ in itertools.islice(itertools.cycle(batches), args.steps):
        batch = collate(rows_, encoder_decoder=seq2seq, pad_id=tok.pad_token_id, start_id=start_id)
        t0 = time.perf_counter()
        loss = target_loss_sum(model, batch, encoder_decoder=seq2seq)
        (loss / batch.n_target).backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        seconds += time.perf_counter() - t0
        real += batch.n_real
        slots += batch.n_slots
        target += batch.n_target
        loss_sum += loss.item()
    return {"layout": f"flanlab {layout}", "tokens_per_s": real / seconds, "tokens_per_s_with_padding": slots / seconds,
            "packing_efficiency": real / slots, "loss": loss_sum / target, "seconds": seconds,
            "examples_per_step": sum(len(r.segments) for b in batches for r in b) / len(batches)}


def run_trl(name, examples, args) -> dict:
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    model, tok = load_model(name, seq2seq=False)
    data = Dataset.from_list([{"prompt": e.inputs, "completion": e.targets} for e in examples])
    with tempfile.TemporaryDirectory() as out:
        cfg = SFTConfig(output_dir=out, per_device_train_batch_size=args.batch_size, max_steps=args.steps,
                        learning_rate=args.lr, lr_scheduler_type="constant", warmup_steps=0,
                        logging_steps=args.steps, save_strategy="no", report_to=[], use_cpu=True,
                        dataloader_num_workers=0, seed=0, max_length=args.max_length)
        trainer = SFTTrainer(model=model, args=cfg, train_dataset=data, processing_class=tok)
        counts = {"real": 0, "slots": 0}
        collator = trainer.data_collator

        def counting(features):
            batch = collator(features)
            ids = batch["input_ids"]
            mask = batch.get("attention_mask")
            counts["slots"] += ids.numel()
            counts["real"] += int(mask.sum()) if mask is not None else ids.numel()
            return batch

        trainer.data_collator = counting
        metrics = trainer.train().metrics
    seconds = metrics["train_runtime"]
    return {"layout": "TRL SFTTrainer defaults", "tokens_per_s": counts["real"] / seconds,
            "tokens_per_s_with_padding": counts["slots"] / seconds,
            "packing_efficiency": counts["real"] / max(counts["slots"], 1), "loss": metrics["train_loss"],
            "seconds": seconds, "examples_per_step": args.batch_size}


def table(rows: list[dict], baseline: str) -> str:
    base = next((r["tokens_per_s"] for r in rows if r["layout"] == baseline), None)
    lines = ["| layout | real tok/s | tok/s incl. pad | packing eff. | examples/step | loss | vs " + baseline + " |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in rows:
        ratio = f"{r['tokens_per_s'] / base:.2f}×" if base else "–"
        lines.append(f"| {r['layout']} | {r['tokens_per_s']:.0f} | {r['tokens_per_s_with_padding']:.0f} | "
                     f"{r['packing_efficiency']:.1%} | {r['examples_per_step']:.1f} | {r['loss']:.4f} | {ratio} |")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None, help="decoder-only model (default: a tiny random Llama)")
    ap.add_argument("--t5", default=None, help="T5 model (default: a tiny random T5); 'none' skips")
    ap.add_argument("--data-dir", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    ap.add_argument("--mixture", default=None)
    ap.add_argument("--examples", type=int, default=800)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--packed-rows", type=int, default=4, help="rows per packed micro-batch")
    ap.add_argument("--max-length", type=int, default=512)
    ap.add_argument("--target-length", type=int, default=256)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--skip-trl", action="store_true")
    ap.add_argument("--json", default=None, help="also write the results here")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    examples = load_examples(args)
    results: dict[str, list[dict]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        from flanlab.inference.tiny import make_tiny_model

        llama = args.model or str(make_tiny_model("llama", Path(tmp) / "llama", hidden=128, layers=4))
        _, tok = load_model(llama, seq2seq=False)
        pairs = [(e, tokenize_row(e, tok, encoder_decoder=False, max_input=args.max_length - args.target_length,
                                  max_target=args.target_length)) for e in examples]
        # Only examples that fit a row unchanged, so TRL (which truncates differently) sees the same data.
        pairs = [(e, t) for e, t in pairs if len(t) <= args.max_length]
        kept, toks = [e for e, _ in pairs], [t for _, t in pairs]
        rows = [run_flanlab(llama, False, toks, layout, args) for layout in ("packed", "sorted", "random")]
        if not args.skip_trl:
            rows.append(run_trl(llama, kept, args))
        results["decoder"] = rows
        print(f"\n## decoder-only: {args.model or 'tiny random Llama'}, {len(toks)} examples, {args.steps} steps\n")
        print(table(rows, "TRL SFTTrainer defaults" if not args.skip_trl else "flanlab random"))
        if args.t5 != "none":
            t5 = args.t5 or str(make_tiny_model("t5", Path(tmp) / "t5", hidden=128, layers=4))
            _, ttok = load_model(t5, seq2seq=True)
            ttoks: list[Tokenized] = [tokenize_row(e, ttok, encoder_decoder=True, max_input=args.max_length,
                                                   max_target=args.target_length) for e in examples]
            trows = [run_flanlab(t5, True, ttoks, layout, args) for layout in ("packed", "sorted", "random")]
            results["t5"] = trows
            print(f"\n## encoder-decoder: {args.t5 or 'tiny random T5'}, {len(ttoks)} examples\n")
            print(table(trows, "flanlab random"))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
