"""A small benchmark evaluation of the model being trained, through flanlab.evaluation.

The requests (benchmarks × strategies × the first ``limit`` examples of each subtask) are built
once, when training starts, so a bad benchmark or subtask name fails before any step runs. Each
evaluation wraps the live model (no copy, no reload) in the inference stage's HF backend, runs the
requests with the evaluation stage's runner and scorer, and writes the per-example records to
``evals/step-NNNNNN.jsonl`` in the run folder.
"""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

from flanlab.core.errors import UserError
from flanlab.inference.prompt_format import PromptFormat
from flanlab.training.config import EvalSection

__all__ = ["PeriodicEval"]


class PeriodicEval:
    """Scores the current model on ``section``'s benchmarks; ``score`` is the mean over every
    (benchmark, strategy) headline score, in percent."""

    def __init__(self, section: EvalSection, out_dir: Path, prompt_format: PromptFormat | None = None) -> None:
        from flanlab.evaluation.plan import build_requests, resolve_strategies

        self.section = section
        # Prompts end as training joined inputs and targets (applied with the live tokenizer).
        self.prompt_format = prompt_format
        self.out_dir = out_dir
        strategies = resolve_strategies(section.strategies)
        self.requests, self.benches, self.notes = build_requests(
            section.benchmarks, strategies, section.data_dir, limit=section.limit, subtasks=section.subtasks,
            seed=section.seed, max_new_tokens=section.max_new_tokens, subtasks_field="eval.subtasks")
        if section.subtasks:
            known = {s for b in self.benches.values() for s in b.subtasks()}
            unknown = [s for s in section.subtasks if s not in known]
            if unknown:
                raise UserError(f"eval.subtasks: {unknown} are not subtasks of {section.benchmarks}")
        if not self.requests:
            raise UserError(f"eval: no requests for benchmarks {section.benchmarks} × strategies "
                            f"{section.strategies} ({'; '.join(self.notes) or 'no examples'})")

    def __call__(self, model: Any, tokenizer: Any, *, encoder_decoder: bool, device: Any, step: int,
                 name: str, max_length: int | None = None) -> dict[str, Any]:
        """Evaluate ``model`` (put in eval mode for the evaluation, then restored) at ``step``."""
        from flanlab.evaluation.plan import apply_prompt_format
        from flanlab.evaluation.results import Results
        from flanlab.evaluation.runner import run_requests
        from flanlab.inference.hf import HFLM
        from flanlab.inference.loading import as_loaded

        # peft's wrapper forwards to the base model, whose layers carry the active adapters.
        base = model.get_base_model() if hasattr(model, "get_base_model") else model
        kind = "seq2seq" if encoder_decoder else "causal"
        # The context length `flanlab eval` would use for this model (inference's own rule).
        loaded = as_loaded(base, tokenizer, kind, f"{name}@step{step}", str(device), max_length=max_length)
        lm = HFLM(loaded, show_progress=False)
        path = self.out_dir / f"step-{step:06d}.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.unlink(missing_ok=True)  # a step evaluated again after a resume starts afresh
        results = Results(lm.name, self.benches)
        was_training = base.training
        base.eval()
        try:
            requests = apply_prompt_format(self.requests, self.prompt_format, tokenizer)
            run_requests(lm, requests, self.benches, results, path)
        finally:
            base.train(was_training)
        summary = results.summary()
        scores = {f"{b}/{s}": agg["score"] for b, by in summary.items() for s, agg in by.items()
                  if agg["score"] is not None}
        # n, 95 % interval and chance of each score, as `flanlab eval` writes them.
        stats = {f"{b}/{s}": {"n": agg.get("n"), "ci95": agg.get("ci95"), "ci_method": agg.get("ci_method"),
                              "chance": agg.get("chance")}
                 for b, by in summary.items() for s, agg in by.items() if agg["score"] is not None}
        return {"eval_score": statistics.fmean(scores.values()) if scores else None, "eval_scores": scores,
                "eval_stats": stats, "eval_examples": len(self.requests)}

