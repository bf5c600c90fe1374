"""The training loop: one code path for a single process and for ``accelerate launch`` (DDP, FSDP,
DeepSpeed).

Per optimizer step it takes ``grad_accum`` micro-batches per process, divides each micro-batch's
summed target cross-entropy by the target-token count of the *whole* accumulated batch (all
micro-batches of all processes), so the step minimises the mean over target tokens exactly as one
big batch would.
"""

from __future__ import annotations

import itertools
import math
import os
import time
from pathlib import Path
from typing import Any

from flanlab.core.errors import UserError
from flanlab.core.io import append_jsonl, atomic_write_jsonl, atomic_write_text, read_jsonl
from flanlab.core.log import get_logger, progress
from flanlab.core.runs import RunDir
from flanlab.core.seed import seed_everything
from flanlab.training.checkpoint import latest_checkpoint, load_checkpoint, prune_checkpoints, save_checkpoint
from flanlab.training.config import TrainConfig
from flanlab.training.loss import target_loss_sum
from flanlab.training.modeling import apply_lora, load_for_training, save_final, set_dropout
from flanlab.training.optim import build_optimizer, lr_at, set_lr
from flanlab.training.segment_attention import use_segment_attention
from flanlab.training.stream import BatchMaker, heldout_examples, micro_batches

__all__ = ["evaluate_loss", "train"]

log = get_logger(__name__)


def _accelerator(cfg: TrainConfig) -> Any:
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState, GradientState

    if "LOCAL_RANK" not in os.environ and "ACCELERATE_USE_DEEPSPEED" not in os.environ:
        # One process: start from a clean accelerate state so runs in the same process (tests,
        # sweeps) may differ in precision or accumulation.
        AcceleratorState._reset_state(reset_partial_state=True)
        GradientState._reset_state()
    return Accelerator(mixed_precision="bf16" if cfg.train.precision == "bf16" else "no",
                       gradient_accumulation_steps=cfg.train.grad_accum,
                       cpu=os.environ.get("FLANLAB_FORCE_CPU") == "1")


def evaluate_loss(model: Any, batches: list[Any], *, encoder_decoder: bool, accelerator: Any) -> float | None:
    """Mean target-token cross-entropy over held-out ``batches`` (None when there are none)."""
    import torch

    if not batches:
        return None
    was_training = model.training
    model.eval()
    total = torch.zeros((), dtype=torch.float64)
    count = 0
    with torch.no_grad(), accelerator.autocast():
        for batch in batches:
            total += target_loss_sum(model, batch, encoder_decoder=encoder_decoder,
                                     device=accelerator.device).double().cpu()
            count += batch.n_target
    model.train(was_training)
    return float(total / max(count, 1))


def _build_mixture(cfg: TrainConfig) -> None:
    mixture = Path(cfg.data.mixture)
    if (mixture / "manifest.json").is_file() or cfg.data.build_config is None:
        return
    import subprocess
    import sys

    log.info("building the mixture %s from %s", mixture, cfg.data.build_config)
    cmd = [sys.executable, "-m", "flanlab", "mix", cfg.data.build_config, "--out", str(mixture)]
    if subprocess.run(cmd, check=False).returncode != 0:
        raise UserError(f"data.build_config: `{' '.join(cmd)}` failed; see its message above")


def train(cfg: TrainConfig, run: RunDir, *, resume: bool = True) -> dict[str, Any]:
    """Train as ``cfg`` says, writing checkpoints, logs and the final model into ``run``."""
    import torch

    if cfg.model.backend != "hf":
        raise UserError(f"model.backend: training needs the 'hf' backend, got {cfg.model.backend!r}")
    if cfg.train.threads:
        torch.set_num_threads(cfg.train.threads)
    best_by = cfg.best_metric()
    seed_everything(cfg.train.seed)
    accelerator = _accelerator(cfg)
    main = accelerator.is_main_process
    periodic = None
    if cfg.eval is not None:
        _check_eval_placement(accelerator)
        if main:
            from flanlab.training.periodic_eval import PeriodicEval

            # Built before the model loads, so a bad benchmark or subtask fails at once.
            periodic = PeriodicEval(cfg.eval, run.path / "evals", cfg.prompt_format)
    if main:
        _build_mixture(cfg)
    accelerator.wait_for_everyone()

    tm = load_for_training(cfg.model, cfg.lora)
    set_dropout(tm.model, cfg.train.dropout)
    if cfg.train.gradient_checkpointing:
        tm.model.gradient_checkpointing_enable()
    model = apply_lora(tm, cfg.lora) if cfg.lora.enabled else tm.model
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = build_optimizer(params, cfg.optim)
    model, optimizer = accelerator.prepare(model, optimizer)
    maker = BatchMaker(tm.tokenizer, tm.model.config, tm.encoder_decoder,
                       _attention_layout(tm, cfg.packing.attention), mask_dtype=torch.float32)
    log.info("packed examples kept apart by: %s", maker.attention)
    heldout = maker.eval_batches(heldout_examples(cfg, tm.tokenizer, tm.encoder_decoder), cfg.train.eval_batch_size,
                                 cfg.packing.max_length, cfg.packing.target_length)

    ckpt_root = run.path / "checkpoints"
    state: dict[str, Any] = {"step": 0, "micro_batches": 0, "best_loss": None, "best_step": None,
                             "best_value": None, "tokens_real": 0, "tokens_slots": 0}
    found = latest_checkpoint(ckpt_root) if resume else None
    if found is not None:
        state = load_checkpoint(found, model=accelerator.unwrap_model(model), optimizer=optimizer)
        state.setdefault("best_value", state.get("best_loss"))  # checkpoints from before keep-best by score
        log.info("resumed from %s (step %d)", found, state["step"])

    world, rank = accelerator.num_processes, accelerator.process_index
    per_step = cfg.train.grad_accum * world
    stream = micro_batches(cfg, tm.tokenizer, tm.encoder_decoder)
    # Data position: skip the micro-batches already trained on (rows only, nothing is collated).
    stream = itertools.islice(stream, state["micro_batches"], None)
    metrics_file = run.path / "metrics.jsonl"
    # A resumed run reports from the rows its earlier part logged as well (the last loss, held-out loss).
    earlier = _forget_metrics_after(metrics_file, state["step"]) if main else []
    writer = None
    if main and cfg.train.tensorboard:
        from torch.utils.tensorboard import SummaryWriter

        # purge_step hides the events of steps that the resumed run trains again.
        writer = SummaryWriter(str(run.path / "tensorboard"), purge_step=state["step"] + 1 if state["step"] else None)

    def evaluate_now(step: int) -> dict[str, Any]:
        """Held-out loss (every process) and the benchmark score (main process), logged."""
        row: dict[str, Any] = {"step": step}
        if heldout:
            row["heldout_loss"] = evaluate_loss(model, heldout, encoder_decoder=tm.encoder_decoder,
                                                accelerator=accelerator)
        if periodic is not None:
            # A forked RNG: sampling strategies then leave the training run's random stream as it was.
            gpus = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
            with torch.random.fork_rng(devices=gpus):
                row.update(periodic(accelerator.unwrap_model(model), tm.tokenizer,
                                    encoder_decoder=tm.encoder_decoder, device=accelerator.device, step=step,
                                    name=cfg.name, max_length=cfg.model.max_length))
        if main:
            append_jsonl(metrics_file, [row])
            if writer is not None:
                if row.get("heldout_loss") is not None:
                    writer.add_scalar("eval/heldout_loss", row["heldout_loss"], step)
                if row.get("eval_score") is not None:
                    writer.add_scalar("eval/score", row["eval_score"], step)
                    for key, value in row["eval_scores"].items():
                        writer.add_scalar(f"eval/{key}", value, step)
        accelerator.wait_for_everyone()
        return row

    if state["step"] == 0 and (heldout or periodic is not None):
        # The starting point, so every run reports its held-out loss (and score) before and after.
        row = evaluate_now(0)
        state["initial_heldout_loss"] = row.get("heldout_loss")
        state["initial_eval_score"] = row.get("eval_score")
    window = {"loss": 0.0, "target": 0, "real": 0, "slots": 0, "seconds": 0.0, "steps": 0}
    history: list[dict[str, Any]] = list(earlier)
    stopped_early = False
    with progress() as bar:
        task = bar.add_task(f"train {cfg.name}", total=cfg.train.steps, completed=state["step"])
        while state["step"] < cfg.train.steps:
            step = state["step"]
            group = list(itertools.islice(stream, per_step))
            if len(group) < per_step:
                stopped_early = True
                log.info("data exhausted after %d steps (data.epochs=%s)", step, cfg.data.epochs)
                break
            start = time.perf_counter()
            total_target = sum(sum(len(s.target) for s in row.segments) for rows in group for row in rows)
            lr = lr_at(step, cfg.optim, cfg.train.steps)
            set_lr(optimizer, lr)
            mine = group[rank::world]
            loss_sum = torch.zeros((), dtype=torch.float64)
            grad_norm = None
            real = slots = 0
            for rows in mine:
                batch = maker(rows)
                real += batch.n_real
                slots += batch.n_slots
                with accelerator.accumulate(model), accelerator.autocast():
                    part = target_loss_sum(model, batch, encoder_decoder=tm.encoder_decoder,
                                           device=accelerator.device)
                    # accelerate divides by grad_accum and DDP averages over processes: undo both so
                    # the gradient is that of (sum over the accumulated batch) / its target tokens.
                    accelerator.backward(part * (cfg.train.grad_accum * world / max(total_target, 1)))
                    loss_sum += part.detach().double().cpu()
                    if accelerator.sync_gradients and cfg.optim.clip_grad_norm:
                        grad_norm = accelerator.clip_grad_norm_(params, cfg.optim.clip_grad_norm)
                    optimizer.step()
                    optimizer.zero_grad(set_to_none=True)
            if world > 1:
                packed = torch.tensor([float(loss_sum), real, slots], device=accelerator.device)
                loss_sum, real, slots = accelerator.reduce(packed, "sum").tolist()
            step_loss = float(loss_sum) / max(total_target, 1)
            if not math.isfinite(step_loss):
                raise UserError(f"loss became {step_loss} at step {step + 1}; lower optim.lr or use fp32")
            seconds = time.perf_counter() - start
            state["step"] = step + 1
            state["micro_batches"] += per_step
            state["tokens_real"] += int(real)
            state["tokens_slots"] += int(slots)
            for k, v in (("loss", float(loss_sum)), ("target", total_target), ("real", real), ("slots", slots),
                         ("seconds", seconds), ("steps", 1)):
                window[k] += v
            # The loss shown is the same quantity metrics.jsonl and results.json report: the mean per
            # target token since the last logged row (once, it was the last step's alone, so the bar
            # and the report disagreed); tokens/s counts real (non-padding) tokens.
            bar.update(task, completed=state["step"], description=(
                f"train {cfg.name} step {state['step']} loss {window['loss'] / max(window['target'], 1):.3f} "
                f"(mean of {window['steps']} steps) {window['real'] / max(window['seconds'], 1e-9):.0f} tok/s"))

            if state["step"] % cfg.train.log_every == 0 or state["step"] == cfg.train.steps:
                row = {
                    "step": state["step"],
                    "loss": window["loss"] / max(window["target"], 1),
                    "lr": lr,
                    "grad_norm": float(grad_norm) if grad_norm is not None else None,
                    "tokens_per_s": window["real"] / window["seconds"],
                    "tokens_per_s_with_padding": window["slots"] / window["seconds"],
                    "packing_efficiency": window["real"] / max(window["slots"], 1),
                    "target_tokens": window["target"],
                    "seconds": window["seconds"],
                }
                history.append(row)
                if main:
                    append_jsonl(metrics_file, [row])
                    if writer is not None:
                        for key in ("loss", "lr", "tokens_per_s", "tokens_per_s_with_padding", "packing_efficiency"):
                            writer.add_scalar(f"train/{key}", row[key], state["step"])
                window = dict.fromkeys(window, 0)

            if (heldout or periodic is not None) and (state["step"] % cfg.train.eval_every == 0
                                                      or state["step"] == cfg.train.steps):
                row = evaluate_now(state["step"])
                history.append(row)
                held = row.get("heldout_loss")
                if held is not None and (state["best_loss"] is None or held < state["best_loss"]):
                    state["best_loss"] = held
                value = row.get(best_by)
                if main and cfg.train.keep_best and value is not None and _better(value, state, best_by):
                    state["best_value"], state["best_step"] = value, state["step"]
                    save_final(accelerator.unwrap_model(model), tm.tokenizer, run.path / "best",
                               merge_lora=cfg.lora.merge_on_save)
                    log.info("step %d: %s %.4f (best so far, saved to best/)", state["step"], best_by, value)

            if state["step"] % cfg.train.save_every == 0 and state["step"] < cfg.train.steps:
                accelerator.wait_for_everyone()
                if main:
                    save_checkpoint(ckpt_root / f"step-{state['step']:06d}", model=accelerator.unwrap_model(model),
                                    optimizer=optimizer, state=state)
                    prune_checkpoints(ckpt_root, cfg.train.keep_checkpoints)

    accelerator.wait_for_everyone()
    if writer is not None:
        writer.close()
    results = {
        "name": cfg.name,
        "steps": state["step"],
        "stopped_early": stopped_early,
        "final_loss": next((h["loss"] for h in reversed(history) if "loss" in h), None),
        "heldout_loss": next((h["heldout_loss"] for h in reversed(history) if "heldout_loss" in h), None),
        "initial_heldout_loss": state.get("initial_heldout_loss"),
        "best_heldout_loss": state["best_loss"],
        "eval_score": next((h["eval_score"] for h in reversed(history) if "eval_score" in h), None),
        "initial_eval_score": state.get("initial_eval_score"),
        "best_by": best_by,
        "best_value": state["best_value"],
        "best_step": state["best_step"],
        "tokens_real": state["tokens_real"],
        "packing_efficiency": state["tokens_real"] / max(state["tokens_slots"], 1),
        "attention": maker.attention,
        "model": str(run.path / "final"),
    }
    if main:
        save_final(accelerator.unwrap_model(model), tm.tokenizer, run.path / "final",
                   merge_lora=cfg.lora.merge_on_save)
        run.write_results(results)
        atomic_write_text(run.path / "results.md", _markdown(results))
    return results


def _attention_layout(tm: Any, attention: str) -> str:
    """The packed-row layout to collate for: "auto" becomes per-example attention where the model
    family allows it (switching the model to it), else block masks."""
    if tm.encoder_decoder or attention not in ("auto", "segments"):
        return attention
    if use_segment_attention(tm.model):
        return "segments"
    if attention == "segments":
        raise UserError(f"packing.attention=segments: model type '{tm.model.config.model_type}' is not one whose "
                        "attention is plain scaled dot-product over full rows; use 'mask' or 'auto'")
    return "mask"


def _forget_metrics_after(path: Path, step: int) -> list[dict[str, Any]]:
    """Drop the metrics rows an interrupted run wrote after its last checkpoint (``step``), so the
    resumed run's rows for those steps are not duplicates, and return the rows kept. Rows of
    ``step`` itself stay: its evaluation ran before the checkpoint was saved. A fresh start (step 0)
    keeps nothing."""
    if not path.exists():
        return []
    rows = read_jsonl(path)
    keep = [r for r in rows if step and r.get("step", 0) <= step]
    if len(keep) != len(rows):
        atomic_write_jsonl(path, keep)
    return keep


def _better(value: float, state: dict[str, Any], best_by: str) -> bool:
    best = state.get("best_value")
    if best is None:
        return True
    # Loss: lower is better. Score: higher; a tie keeps the earlier checkpoint.
    return value < best if best_by == "heldout_loss" else value > best


def _check_eval_placement(accelerator: Any) -> None:
    """The benchmark evaluation runs the unwrapped model on the main process only, which needs the
    whole model there: refuse sharded parameters (FSDP, DeepSpeed ZeRO-3)."""
    kind = str(accelerator.distributed_type).rsplit(".", 1)[-1]
    plugin = getattr(accelerator.state, "deepspeed_plugin", None)
    if kind == "FSDP" or (kind == "DEEPSPEED" and plugin is not None and plugin.zero_stage == 3):
        raise UserError("eval: the periodic benchmark evaluation needs unsharded weights; drop the `eval:` "
                        "section (keep-best then uses the held-out loss) or use DDP / ZeRO-2")


def _markdown(results: dict[str, Any]) -> str:
    lines = ["| metric | value |", "| --- | --- |"]
    for key, value in results.items():
        shown = f"{value:.4f}" if isinstance(value, float) else str(value)
        lines.append(f"| {key} | {shown} |")
    return "\n".join(lines) + "\n"
