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
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from flanlab.core.errors import UserError
from flanlab.core.io import append_jsonl, atomic_write_jsonl, atomic_write_text, read_jsonl
from flanlab.core.log import get_logger, progress
from flanlab.core.runs import RunDir
from flanlab.core.seed import seed_everything
from flanlab.training.checkpoint import (
    latest_checkpoint,
    load_checkpoint,
    load_sharded_checkpoint,
    prune_checkpoints,
    save_checkpoint,
    save_sharded_checkpoint,
)
from flanlab.training.config import TrainConfig
from flanlab.training.loss import target_loss_sum
from flanlab.training.modeling import apply_lora, load_for_training, save_final, set_dropout
from flanlab.training.optim import build_optimizer, lr_at, set_lr
from flanlab.training.segment_attention import use_segment_attention
from flanlab.training.stream import BatchMaker, heldout_examples, micro_batches

__all__ = ["LoopState", "Recipe", "evaluate_loss", "train"]

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
                       cpu=cfg.train.cpu or _several_processes_without_gpu())


def _several_processes_without_gpu() -> bool:
    """Launched as several processes (torchrun, ``accelerate launch --multi_gpu``) on a machine
    without CUDA: accelerate then joins them only when told ``cpu=True`` (gloo); otherwise every
    process would train alone, each thinking it is the whole run."""
    import torch

    world = int(os.environ.get("WORLD_SIZE", "1"))
    return world > 1 and not torch.cuda.is_available()


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
    """Build ``data.mixture`` from ``data.build_config`` through the mixture stage when it is missing."""
    mixture = Path(cfg.data.mixture)
    if (mixture / "manifest.json").is_file() or cfg.data.build_config is None:
        return
    from flanlab.core.config import load_config
    from flanlab.mixture.build import build_mixture
    from flanlab.mixture.config import MixtureConfig

    log.info("building the mixture %s from %s", mixture, cfg.data.build_config)
    config = load_config(cfg.data.build_config, schema=MixtureConfig)
    build_mixture(config, mixture, config_path=cfg.data.build_config, data_dir=cfg.data.data_dir)


@dataclass
class LoopState:
    """What a checkpoint records about the loop (besides weights, optimizer and RNG states)."""

    step: int = 0
    micro_batches: int = 0  # the data position: micro-batches consumed by all processes together
    tokens_real: int = 0
    tokens_slots: int = 0
    tokens_target: int = 0  # tokens that carry loss (all processes): what the report calls target tokens
    best_loss: float | None = None  # lowest held-out loss seen
    best_value: float | None = None  # best value of the metric that picks best/
    best_step: int | None = None
    initial_heldout_loss: float | None = None
    initial_eval_score: float | None = None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LoopState:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        state = cls(**known)
        if "best_value" not in data:  # checkpoints from before keep-best by score
            state.best_value = state.best_loss
        return state


@dataclass
class Window:
    """Sums over the steps since the last ``metrics.jsonl`` row."""

    loss: float = 0.0
    target: int = 0
    real: int = 0
    slots: int = 0
    seconds: float = 0.0


def train(cfg: TrainConfig, run: RunDir, *, resume: bool = True) -> dict[str, Any]:
    """Train as ``cfg`` says, writing checkpoints, logs and the final model into ``run``."""
    recipe = Recipe(cfg, run)
    recipe.setup(resume=resume)
    recipe.train()
    return recipe.save()


class Recipe:
    """One training run, read top to bottom: :meth:`setup` (processes, data, model, optimizer,
    resume), :meth:`train` (the steps, with evaluation, logging and checkpoints), :meth:`save`
    (``final/`` and the results)."""

    def __init__(self, cfg: TrainConfig, run: RunDir) -> None:
        self.cfg = cfg
        self.run = run
        self.best_by = cfg.best_metric()
        self.state = LoopState()
        self.history: list[dict[str, Any]] = []
        self.stopped_early = False
        self.periodic: Any = None
        self.writer: Any = None

    # ------------------------------------------------------------------ setup
    def setup(self, *, resume: bool) -> None:
        """Start the processes, build the mixture if missing, load the model and optimizer, resume
        from the newest checkpoint (when ``resume``) and open the logs."""
        import torch

        cfg, run = self.cfg, self.run
        if cfg.model.backend != "hf":
            raise UserError(f"model.backend: training needs the 'hf' backend, got {cfg.model.backend!r}")
        if cfg.train.threads:
            torch.set_num_threads(cfg.train.threads)
        seed_everything(cfg.train.seed)
        self.accelerator = accelerator = _accelerator(cfg)
        self.main = accelerator.is_main_process
        self.sharded = _sharded(accelerator, cfg)
        self.world, self.rank = accelerator.num_processes, accelerator.process_index
        if cfg.eval is not None:
            _check_eval_placement(accelerator)
            if self.main:
                from flanlab.training.periodic_eval import PeriodicEval

                # Built before the model loads, so a bad benchmark or subtask fails at once.
                self.periodic = PeriodicEval(cfg.eval, run.path / "evals", cfg.prompt_format)
        if self.main:
            _build_mixture(cfg)
        accelerator.wait_for_everyone()

        self.tm = tm = load_for_training(cfg.model, cfg.lora)
        set_dropout(tm.model, cfg.train.dropout)
        if cfg.train.gradient_checkpointing:
            tm.model.gradient_checkpointing_enable()
        model = apply_lora(tm, cfg.lora) if cfg.lora.enabled else tm.model
        model.train()
        self.params = [p for p in model.parameters() if p.requires_grad]
        optimizer = build_optimizer(self.params, cfg.optim)
        self.model, self.optimizer = accelerator.prepare(model, optimizer)
        self.maker = BatchMaker(tm.tokenizer, tm.model.config, tm.encoder_decoder,
                                _attention_layout(tm, cfg.packing.attention), mask_dtype=torch.float32)
        log.info("packed examples kept apart by: %s", self.maker.attention)
        self.heldout = self.maker.eval_batches(heldout_examples(cfg, tm.tokenizer, tm.encoder_decoder),
                                               cfg.train.eval_batch_size, cfg.packing.max_length,
                                               cfg.packing.target_length)

        self.ckpt_root = run.path / "checkpoints"
        found = latest_checkpoint(self.ckpt_root) if resume else None
        if found is not None:
            if self.sharded:
                loaded = load_sharded_checkpoint(found, accelerator=accelerator)
            else:
                loaded = load_checkpoint(found, model=accelerator.unwrap_model(self.model), optimizer=self.optimizer)
            self.state = LoopState.from_json(loaded)
            log.info("resumed from %s (step %d)", found, self.state.step)
        # Data position: skip the micro-batches already trained on (rows only, nothing is collated).
        self.stream = itertools.islice(micro_batches(cfg, tm.tokenizer, tm.encoder_decoder),
                                       self.state.micro_batches, None)

        self.metrics_file = run.path / "metrics.jsonl"
        # A resumed run reports from the rows its earlier part logged as well (the last loss, held-out loss).
        self.history = _forget_metrics_after(self.metrics_file, self.state.step) if self.main else []
        if self.main and cfg.train.tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            # purge_step hides the events of steps that the resumed run trains again.
            step = self.state.step
            self.writer = SummaryWriter(str(run.path / "tensorboard"), purge_step=step + 1 if step else None)

    # ------------------------------------------------------------------ train
    def train(self) -> None:
        """Optimizer steps until ``train.steps`` (or the data runs out), evaluating every
        ``eval_every``, logging every ``log_every`` and saving a checkpoint every ``save_every``."""
        cfg, state = self.cfg, self.state
        evaluates = bool(self.heldout) or self.periodic is not None
        if state.step == 0 and evaluates:
            # The starting point, so every run reports its held-out loss (and score) before and after.
            row = self.evaluate(0)
            state.initial_heldout_loss = row.get("heldout_loss")
            state.initial_eval_score = row.get("eval_score")
        per_step = cfg.train.grad_accum * self.world
        window = Window()
        with progress() as bar:
            task = bar.add_task(f"train {cfg.name}", total=cfg.train.steps, completed=state.step)
            while state.step < cfg.train.steps:
                group = list(itertools.islice(self.stream, per_step))
                if len(group) < per_step:
                    self.stopped_early = True
                    log.info("data exhausted after %d steps (data.epochs=%s)", state.step, cfg.data.epochs)
                    break
                lr, grad_norm = self.step(group, window)
                # The loss shown is the quantity metrics.jsonl and results.json report: the mean per
                # target token since the last logged row; tokens/s counts real (non-padding) tokens.
                bar.update(task, completed=state.step, description=(
                    f"train {cfg.name} step {state.step} loss {window.loss / max(window.target, 1):.3f} "
                    f"{window.real / max(window.seconds, 1e-9):.0f} tok/s"))
                last = state.step == cfg.train.steps
                if state.step % cfg.train.log_every == 0 or last:
                    self.log_window(window, lr, grad_norm)
                    window = Window()
                if evaluates and (state.step % cfg.train.eval_every == 0 or last):
                    self.keep_best(self.evaluate(state.step))
                if state.step % cfg.train.save_every == 0 and not last:
                    self.checkpoint()
        self.accelerator.wait_for_everyone()

    def step(self, group: list[Any], window: Window) -> tuple[float, Any]:
        """One optimizer step over ``group`` (the micro-batches of all processes; this process takes
        every ``world``-th). Each micro-batch's summed target cross-entropy is divided by the
        target-token count of the whole group, so the step minimises the mean over its target
        tokens exactly as one big batch would. Returns the learning rate and gradient norm."""
        import torch

        cfg, accelerator, model, optimizer = self.cfg, self.accelerator, self.model, self.optimizer
        start = time.perf_counter()
        total_target = sum(sum(len(s.target) for s in row.segments) for rows in group for row in rows)
        lr = lr_at(self.state.step, cfg.optim, cfg.train.steps)
        set_lr(optimizer, lr)
        loss_sum = torch.zeros((), dtype=torch.float64)
        grad_norm = None
        real = slots = 0
        for rows in group[self.rank::self.world]:
            batch = self.maker(rows)
            real += batch.n_real
            slots += batch.n_slots
            with accelerator.accumulate(model), accelerator.autocast():
                part = target_loss_sum(model, batch, encoder_decoder=self.tm.encoder_decoder,
                                       device=accelerator.device)
                # accelerate divides by grad_accum and DDP averages over processes: undo both so
                # the gradient is that of (sum over the accumulated batch) / its target tokens.
                accelerator.backward(part * (cfg.train.grad_accum * self.world / max(total_target, 1)))
                loss_sum += part.detach().double().cpu()
                if accelerator.sync_gradients and cfg.optim.clip_grad_norm:
                    grad_norm = accelerator.clip_grad_norm_(self.params, cfg.optim.clip_grad_norm)
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
        if self.world > 1:
            packed = torch.tensor([float(loss_sum), real, slots], device=accelerator.device)
            loss_sum, real, slots = accelerator.reduce(packed, "sum").tolist()
        step_loss = float(loss_sum) / max(total_target, 1)
        if not math.isfinite(step_loss):
            raise UserError(f"loss became {step_loss} at step {self.state.step + 1}; lower optim.lr or use fp32")
        self.state.step += 1
        self.state.micro_batches += len(group)
        self.state.tokens_real += int(real)
        self.state.tokens_slots += int(slots)
        self.state.tokens_target += int(total_target)
        window.loss += float(loss_sum)
        window.target += total_target
        window.real += int(real)
        window.slots += int(slots)
        window.seconds += time.perf_counter() - start
        return lr, grad_norm

    def log_window(self, window: Window, lr: float, grad_norm: Any) -> None:
        """A ``metrics.jsonl`` row (and TensorBoard scalars) for the steps since the last one."""
        row = {
            "step": self.state.step,
            "loss": window.loss / max(window.target, 1),
            "lr": lr,
            "grad_norm": float(grad_norm) if grad_norm is not None else None,
            "tokens_per_s": window.real / window.seconds,
            "tokens_per_s_with_padding": window.slots / window.seconds,
            "packing_efficiency": window.real / max(window.slots, 1),
            "target_tokens": window.target,
            "seconds": window.seconds,
        }
        self.history.append(row)
        if self.main:
            append_jsonl(self.metrics_file, [row])
            if self.writer is not None:
                for key in ("loss", "lr", "tokens_per_s", "tokens_per_s_with_padding", "packing_efficiency"):
                    self.writer.add_scalar(f"train/{key}", row[key], self.state.step)

    def evaluate(self, step: int) -> dict[str, Any]:
        """Held-out loss (every process) and the benchmark score (main process), logged."""
        import torch

        row: dict[str, Any] = {"step": step}
        if self.heldout:
            row["heldout_loss"] = evaluate_loss(self.model, self.heldout, encoder_decoder=self.tm.encoder_decoder,
                                                accelerator=self.accelerator)
        if self.periodic is not None:
            # A forked RNG: sampling strategies then leave the training run's random stream as it was.
            gpus = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
            with torch.random.fork_rng(devices=gpus):
                row.update(self.periodic(self.accelerator.unwrap_model(self.model), self.tm.tokenizer,
                                         encoder_decoder=self.tm.encoder_decoder, device=self.accelerator.device,
                                         step=step, name=self.cfg.name, max_length=self.cfg.model.max_length))
        if self.main:
            append_jsonl(self.metrics_file, [row])
            if self.writer is not None:
                if row.get("heldout_loss") is not None:
                    self.writer.add_scalar("eval/heldout_loss", row["heldout_loss"], step)
                if row.get("eval_score") is not None:
                    self.writer.add_scalar("eval/score", row["eval_score"], step)
                    for key, value in row["eval_scores"].items():
                        self.writer.add_scalar(f"eval/{key}", value, step)
        self.accelerator.wait_for_everyone()
        return row

    def keep_best(self, row: dict[str, Any]) -> None:
        """Record an evaluation and save ``best/`` when it beats every earlier one."""
        state = self.state
        self.history.append(row)
        held = row.get("heldout_loss")
        if held is not None and (state.best_loss is None or held < state.best_loss):
            state.best_loss = held
        value = row.get(self.best_by)
        # Sharded weights are gathered by every process (keep-best then goes by the held-out loss,
        # which every process knows).
        if (self.main or self.sharded) and self.cfg.train.keep_best and value is not None and _better(
                value, state.best_value, self.best_by):
            state.best_value, state.best_step = value, state.step
            _save_model(self.accelerator, self.model, self.tm.tokenizer, self.run.path / "best",
                        merge_lora=self.cfg.lora.merge_on_save, sharded=self.sharded)
            log.info("step %d: %s %.4f (best so far, saved to best/)", state.step, self.best_by, value)

    def checkpoint(self) -> None:
        """Save ``checkpoints/step-N`` (every process writes its shard when sharded) and prune old ones."""
        self.accelerator.wait_for_everyone()
        folder = self.ckpt_root / f"step-{self.state.step:06d}"
        state = asdict(self.state)
        if self.sharded:
            save_sharded_checkpoint(folder, accelerator=self.accelerator, state=state)
        elif self.main:
            save_checkpoint(folder, model=self.accelerator.unwrap_model(self.model), optimizer=self.optimizer,
                            state=state)
        if self.main:
            prune_checkpoints(self.ckpt_root, self.cfg.train.keep_checkpoints)

    # ------------------------------------------------------------------ save
    def save(self) -> dict[str, Any]:
        """Write ``final/`` (loads in plain transformers), ``results.json`` and ``results.md``."""
        state, history = self.state, self.history
        if self.writer is not None:
            self.writer.close()

        def last(key: str) -> Any:
            return next((h[key] for h in reversed(history) if key in h), None)

        results = {
            "name": self.cfg.name,
            "steps": state.step,
            "stopped_early": self.stopped_early,
            "final_loss": last("loss"),
            "heldout_loss": last("heldout_loss"),
            "initial_heldout_loss": state.initial_heldout_loss,
            "best_heldout_loss": state.best_loss,
            "eval_score": last("eval_score"),
            "eval_stats": last("eval_stats"),  # n and 95 % interval of each score in eval_score
            "initial_eval_score": state.initial_eval_score,
            "best_by": self.best_by,
            "best_value": state.best_value,
            "best_step": state.best_step,
            "tokens_real": state.tokens_real,
            "tokens_target": state.tokens_target,
            "packing_efficiency": state.tokens_real / max(state.tokens_slots, 1),
            "attention": self.maker.attention,
            "model": str(self.run.path / "final"),
        }
        if self.main or self.sharded:
            _save_model(self.accelerator, self.model, self.tm.tokenizer, self.run.path / "final",
                        merge_lora=self.cfg.lora.merge_on_save, sharded=self.sharded)
        if self.main:
            self.run.write_results(results)
            atomic_write_text(self.run.path / "results.md", _markdown(results))
        return results


def _sharded(accelerator: Any, cfg: TrainConfig) -> bool:
    """Whether weights or optimizer state are split across processes (FSDP, DeepSpeed): checkpoints
    are then written by every process and final weights gathered through accelerate."""
    kind = str(accelerator.distributed_type).rsplit(".", 1)[-1]
    if os.environ.get("ACCELERATE_USE_FSDP", "false").lower() == "true" and kind != "FSDP":
        import accelerate

        raise UserError(f"FSDP was asked for, but accelerate {accelerate.__version__} runs it only on GPUs "
                        f"(here the processes are {kind}); on a CPU use plain data parallel "
                        "(configs/train/accelerate/cpu2.yaml)")
    sharded = kind in ("FSDP", "DEEPSPEED")
    if sharded and cfg.lora.enabled and cfg.lora.merge_on_save:
        raise UserError("lora.merge_on_save: merging LoRA into sharded weights (FSDP, DeepSpeed) is not supported; "
                        "set lora.merge_on_save=false (final/ then holds the adapter) or use DDP")
    return sharded


def _save_model(accelerator: Any, model: Any, tokenizer: Any, folder: Path, *, merge_lora: bool,
                sharded: bool) -> None:
    """Write ``final/`` or ``best/`` from the main process. Sharded weights are gathered first through
    accelerate's ``get_state_dict`` (one code path for FSDP and DeepSpeed), which every process calls."""
    state_dict = accelerator.get_state_dict(model) if sharded else None
    if accelerator.is_main_process:
        save_final(accelerator.unwrap_model(model), tokenizer, folder, merge_lora=merge_lora, state_dict=state_dict)
    if sharded:
        accelerator.wait_for_everyone()


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


def _better(value: float, best: float | None, best_by: str) -> bool:
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
