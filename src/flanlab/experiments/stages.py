"""Stage calls the pipeline makes through the stages' public Python APIs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flanlab.core.runs import RunDir

__all__ = ["run_eval"]


def run_eval(config: dict[str, Any], out: Path, source: Path | None = None) -> dict[str, Any]:
    """Evaluate as an eval config says into ``out`` (results.json, examples.jsonl, results.md), as
    ``flanlab eval --config`` does; per-example records make an interrupted evaluation resume."""
    from flanlab.evaluation.api import evaluate
    from flanlab.evaluation.config import EvalConfig

    return evaluate(EvalConfig.model_validate(config), RunDir.create(str(out)))
