"""Training throughput at equal work and equal loss: flanlab packed vs flanlab unpacked (length-sorted
and random micro-batches) vs TRL's SFTTrainer with its defaults, for a decoder-only model; and for a
T5, flanlab packed vs unpacked (sorted and random).

    python benchmarks/train_throughput.py                         # tiny random Llama + T5 (minutes)
    python benchmarks/train_throughput.py --model smollm2-135m --t5 none --steps 8 --examples-per-step 16

What makes the comparison fair: the examples (Flan CoT prompt/completion pairs from ``--data-dir``
flan_cot/*.tsv, or rows of ``--mixture``) are cut once into ``--steps`` groups of
``--examples-per-step``; every layout trains a fresh copy of the same model on the *same groups in
the same order*, one group per optimizer step (AdamW, constant lr, weight decay 0, clipping at 1.0,
dropout 0; the loss of a step is the mean over the group's target tokens). Layouts differ only in
how a group becomes micro-batches: packed (what ``flanlab train`` does by default: rows of examples
filled first-fit-decreasing, a micro-batch of rows run as one unpadded row with per-example
attention where the model family allows, else with block masks), packed-mask (the same rows, 4D
block masks), packed-posids (position ids only), the group sorted by length then cut into
micro-batches, or cut in its given order (random), and TRL batches
it with its default collator (``train_sampling_strategy="sequential"`` so it sees the same order;
everything else is SFTTrainer's default). So every layout processes the same real (non-pad) tokens
and takes the same optimizer steps, and the losses should agree: the table gives the mean training
loss and the per-token loss on a fixed held-out set after training (computed by the same code for
every layout). Timed: batching + forward + backward + optimizer step, per step; TRL: its
``train_runtime``. flanlab's layouts train in lockstep (step i of each in turn), so a change in the
machine's load hits them alike; TRL runs its own loop afterwards. Nothing here is asserted; the CPU
load is printed because other processes on the machine distort timings.

On a busy CPU use ``--threads 1``: with more torch threads than free cores, every multi-threaded op
waits for a descheduled thread (~10 ms each), which penalises big tensors (packed rows) far more than
small ones. That, not the packing code, made packed T5 look slower than random batches before
(tiny T5, 2 threads at load ~9: packed 160 vs random 441 real tok/s; same batches at 1 thread: 2716
vs 1762). What remains is real: dense masked attention computes every score pair of a packed row,
so for a tiny T5 (d_model 128), where attention dominates at 512-token rows, packed is only on par
with length-sorted batches; skipping masked blocks needs flex-attention block masks or varlen
kernels.

Measured here, idle, ``--model smollm2-135m --t5 none --threads 2 --layouts packed,packed-mask,sorted``
(2026-11-25, full finetuning fp32, 30 steps × 32 Flan CoT examples), real tok/s vs TRL's defaults at
equal loss: packed 206 (0 % padding) 2.08×, packed-mask 168 (7.0 %) 1.70×, sorted 151 (22.3 %)
1.53×, TRL 99 (47.2 %). Earlier, shared CPU, ``--threads 1``: tiny Llama packed-mask 2.02×,
sorted 2.07×, random 1.44×; tiny T5 vs random: packed 1.12×, sorted 1.21×.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

import torch

from flanlab.training.data import Example, Tokenized, iter_rows, tokenize_row
from flanlab.training.loss import target_loss_sum
from flanlab.training.packing import Row, collate, pack
from flanlab.training.segment_attention import use_segment_attention

DEC_LAYOUTS = ("packed", "packed-mask", "packed-posids", "sorted", "random")
T5_LAYOUTS = ("packed", "sorted", "random")
TRL = "TRL SFTTrainer defaults"


def load_examples(args) -> list[Example]:
    if args.mixture:
        return list(iter_rows(args.mixture))
    folder = Path(args.data_dir) / "flan_cot"
    out: list[Example] = []
    for tsv in sorted(folder.glob("*_train.tsv")):
        with open(tsv, encoding="utf-8") as f:
            for row in csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE):
                if len(row) >= 3:
                    q, a, cot = (x.replace("\\n", "\n") for x in row[:3])
                    out.append(Example(f"{q}\nLet's think step by step.", f" {cot} So the answer is {a}.",
                                       tsv.stem, str(tsv)))
    if not out:
        raise SystemExit(f"no examples: {folder} has no flan_cot/*_train.tsv (pass --data-dir or --mixture)")
    random.Random(0).shuffle(out)
    return out


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


def select(examples: list[Example], tok, seq2seq: bool, args) -> tuple[list[Example], list[Tokenized]]:
    """Tokenize and keep the examples that fit a row uncut (TRL truncates differently)."""
    keep_e, keep_t = [], []
    need = args.steps * args.examples_per_step + args.heldout
    for e in examples:
        t = tokenize_row(e, tok, encoder_decoder=seq2seq, max_input=10**6, max_target=10**6)
        fits = (len(t.prompt) <= args.max_length and len(t.target) <= args.target_length) if seq2seq \
            else len(t) <= args.max_length
        if fits:
            keep_e.append(e)
            keep_t.append(t)
        if len(keep_t) == need:
            return keep_e, keep_t
    raise SystemExit(f"only {len(keep_t)} examples fit max_length {args.max_length}; need {need}")


def micro_batches(group: list[Tokenized], layout: str, seq2seq: bool, args) -> list[list[Row]]:
    """How one optimizer step's examples become micro-batches under ``layout``."""
    if layout.startswith("packed"):
        rows = list(pack(group, encoder_decoder=seq2seq, max_length=args.max_length,
                         target_length=args.target_length, window=len(group)))
        size = args.packed_rows
    else:
        order = sorted(group, key=len) if layout == "sorted" else group
        rows = [Row([t], len(t.prompt) if seq2seq else len(t), len(t.target) if seq2seq else 0) for t in order]
        size = args.batch_size
    return [rows[i:i + size] for i in range(0, len(rows), size)]


def heldout_loss(model, batches, seq2seq: bool) -> float:
    model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for b in batches:
            total += float(target_loss_sum(model, b, encoder_decoder=seq2seq))
            count += b.n_target
    model.train()
    return total / count


class FlanlabRun:
    """One layout's model and optimizer, stepped one group at a time."""

    def __init__(self, name: str, seq2seq: bool, layout: str, args) -> None:
        from flanlab.training.modeling import set_dropout

        self.model, self.tok = load_model(name, seq2seq)
        set_dropout(self.model, 0.0)
        self.model.train()
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=args.lr, weight_decay=0.0)
        self.start_id = getattr(self.model.config, "decoder_start_token_id", None)
        # "packed" is what `flanlab train` does by default (packing.attention=auto): per-example
        # attention where the model family allows it, else block masks.
        self.attention = {"packed-posids": "position_ids", "packed-mask": "mask"}.get(layout, "mask")
        if layout == "packed" and not seq2seq and use_segment_attention(self.model):
            self.attention = "segments"
        self.seq2seq, self.layout, self.args = seq2seq, layout, args
        self.real = self.slots = self.micro = 0
        self.seconds = 0.0
        self.losses: list[float] = []

    def step(self, group: list[Tokenized]) -> None:
        t0 = time.perf_counter()
        target = sum(len(t.target) for t in group)
        step_loss = 0.0
        for rows in micro_batches(group, self.layout, self.seq2seq, self.args):
            batch = collate(rows, encoder_decoder=self.seq2seq, pad_id=self.tok.pad_token_id, start_id=self.start_id,
                            attention=self.attention)
            loss = target_loss_sum(self.model, batch, encoder_decoder=self.seq2seq)
            (loss / target).backward()
            step_loss += loss.item()
            self.real += batch.n_real
            self.slots += batch.n_slots
            self.micro += 1
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)
        self.seconds += time.perf_counter() - t0
        self.losses.append(step_loss / target)

    def result(self, held) -> dict:
        name = f"flanlab {self.layout}" + (" (per-example attention)" if self.attention == "segments" else "")
        return {"layout": name, "tokens_real": self.real, "tokens_per_s": self.real / self.seconds,
                "tokens_per_s_with_padding": self.slots / self.seconds, "packing_efficiency": self.real / self.slots,
                "micro_batches_per_step": self.micro / len(self.losses),
                "train_loss": sum(self.losses) / len(self.losses), "step_losses": self.losses,
                "heldout_loss": heldout_loss(self.model, held, self.seq2seq), "seconds": self.seconds}


def run_flanlab(name, seq2seq, groups, held, layouts, args) -> list[dict]:
    """Train every layout in lockstep (step i of each layout in turn, in a rotating order), so that
    changes in the machine's load over the run hit every layout alike."""
    runs = [FlanlabRun(name, seq2seq, layout, args) for layout in layouts]
    for i, group in enumerate(groups):
        for j in range(len(runs)):
            runs[(i + j) % len(runs)].step(group)
    return [r.result(held) for r in runs]


def run_trl(name, groups_e, held, args) -> dict:
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    model, tok = load_model(name, seq2seq=False)
    data = Dataset.from_list([{"prompt": e.inputs, "completion": e.targets} for g in groups_e for e in g])
    with tempfile.TemporaryDirectory() as out:
        cfg = SFTConfig(output_dir=out, per_device_train_batch_size=args.batch_size,
                        gradient_accumulation_steps=args.examples_per_step // args.batch_size,
                        max_steps=len(groups_e), learning_rate=args.lr, lr_scheduler_type="constant",
                        warmup_steps=0, weight_decay=0.0, max_grad_norm=1.0, logging_steps=1, save_strategy="no",
                        report_to=[], use_cpu=True, dataloader_num_workers=0, seed=0,
                        max_length=args.max_length, train_sampling_strategy="sequential")
        trainer = SFTTrainer(model=model, args=cfg, train_dataset=data, processing_class=tok)
        counts = {"real": 0, "slots": 0, "micro": 0}
        collator = trainer.data_collator

        def counting(features):
            batch = collator(features)
            mask = batch.get("attention_mask")
            counts["slots"] += batch["input_ids"].numel()
            counts["real"] += int(mask.sum()) if mask is not None else batch["input_ids"].numel()
            counts["micro"] += 1
            return batch

        trainer.data_collator = counting
        metrics = trainer.train().metrics
        losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    seconds = metrics["train_runtime"]
    return {"layout": TRL, "tokens_real": counts["real"], "tokens_per_s": counts["real"] / seconds,
            "tokens_per_s_with_padding": counts["slots"] / seconds,
            "packing_efficiency": counts["real"] / max(counts["slots"], 1),
            "micro_batches_per_step": counts["micro"] / len(groups_e), "train_loss": sum(losses) / len(losses),
            "step_losses": losses, "heldout_loss": heldout_loss(trainer.model, held, False), "seconds": seconds}


def table(rows: list[dict], baseline: str) -> str:
    base = next((r["tokens_per_s"] for r in rows if r["layout"] == baseline), None)
    lines = ["| layout | real tokens | padding | real tok/s | tok/s incl. pad | micro-batches/step | "
             f"train loss | held-out loss after | real tok/s vs {baseline} |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in rows:
        ratio = f"{r['tokens_per_s'] / base:.2f}×" if base else "–"
        lines.append(f"| {r['layout']} | {r['tokens_real']} | {1 - r['packing_efficiency']:.1%} | "
                     f"{r['tokens_per_s']:.0f} | {r['tokens_per_s_with_padding']:.0f} | "
                     f"{r['micro_batches_per_step']:.1f} | {r['train_loss']:.4f} | {r['heldout_loss']:.4f} | {ratio} |")
    return "\n".join(lines)


def section(name: str, seq2seq: bool, examples: list[Example], layouts, args, with_trl: bool) -> list[dict]:
    from flanlab.training.packing import group_by_length

    base, tok = load_model(name, seq2seq)
    kept, toks = select(examples, tok, seq2seq, args)
    k, n = args.examples_per_step, args.steps * args.examples_per_step
    groups = [toks[i:i + k] for i in range(0, n, k)]
    groups_e = [kept[i:i + k] for i in range(0, n, k)]
    held_rows = list(group_by_length(toks[n:], encoder_decoder=seq2seq, max_length=args.max_length,
                                     target_length=args.target_length, batch_size=16, window=len(toks),
                                     rng=random.Random(0)))
    start = getattr(base.config, "decoder_start_token_id", None)
    held = [collate(held_rows[i:i + 16], encoder_decoder=seq2seq, pad_id=tok.pad_token_id, start_id=start)
            for i in range(0, len(held_rows), 16)]
    rows = run_flanlab(name, seq2seq, groups, held, layouts, args)
    if with_trl:
        rows.append(run_trl(name, groups_e, held, args))
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None, help="decoder-only model (default: a tiny random Llama)")
    ap.add_argument("--t5", default=None, help="T5 model (default: a tiny random T5); 'none' skips")
    ap.add_argument("--data-dir", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    ap.add_argument("--mixture", default=None, help="a mixture folder instead of flan_cot")
    ap.add_argument("--steps", type=int, default=30, help="optimizer steps (groups of examples)")
    ap.add_argument("--examples-per-step", type=int, default=32)
    ap.add_argument("--heldout", type=int, default=64, help="examples in the held-out loss set")
    ap.add_argument("--batch-size", type=int, default=8, help="examples per unpacked micro-batch (and TRL's)")
    ap.add_argument("--packed-rows", type=int, default=4, help="rows per packed micro-batch")
    ap.add_argument("--max-length", type=int, default=512)
    ap.add_argument("--target-length", type=int, default=256, help="T5 decoder row length")
    ap.add_argument("--lr", type=float, default=3e-4)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--layouts", default=",".join(DEC_LAYOUTS), help="decoder-only flanlab layouts to run")
    ap.add_argument("--skip-trl", action="store_true")
    ap.add_argument("--json", default=None, help="also write the results here")
    args = ap.parse_args()
    if args.examples_per_step % args.batch_size:
        raise SystemExit("--examples-per-step must be a multiple of --batch-size (TRL accumulates micro-batches)")
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    load = os.getloadavg()[0]
    print(f"torch threads {args.threads}, CPUs {os.cpu_count()}, load average at start {load:.1f}")
    if load > (os.cpu_count() or 1):
        print("warning: the CPU is busy with other work; timings (multi-threaded ones most) are distorted")
    examples = load_examples(args)
    results: dict[str, object] = {"args": vars(args), "load_start": load}
    with tempfile.TemporaryDirectory() as tmp:
        from flanlab.inference.tiny import make_tiny_model

        llama = args.model or str(make_tiny_model("llama", Path(tmp) / "llama", hidden=128, layers=4))
        layouts = [x for x in args.layouts.split(",") if x]
        unknown = set(layouts) - set(DEC_LAYOUTS)
        if unknown:
            raise SystemExit(f"--layouts: unknown {sorted(unknown)}; known: {', '.join(DEC_LAYOUTS)}")
        rows = section(llama, False, examples, layouts, args, with_trl=not args.skip_trl)
        results["decoder"] = rows
        print(f"\n## decoder-only: {args.model or 'tiny random Llama (hidden 128, 4 layers)'}; "
              f"{args.steps} steps × {args.examples_per_step} examples, same examples and order for every layout\n")
        print(table(rows, TRL if not args.skip_trl else "flanlab random"))
        if args.t5 != "none":
            t5 = args.t5 or str(make_tiny_model("t5", Path(tmp) / "t5", hidden=128, layers=4))
            trows = section(t5, True, examples, T5_LAYOUTS, args, with_trl=False)
            results["t5"] = trows
            print(f"\n## encoder-decoder: {args.t5 or 'tiny random T5 (hidden 128, 4 layers)'}; "
                  f"{args.steps} steps × {args.examples_per_step} examples\n")
            print(table(trows, "flanlab random"))
    results["load_end"] = os.getloadavg()[0]
    print(f"\nload average at end {results['load_end']:.1f}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
