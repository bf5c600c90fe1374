"""The ``eval`` config: which model, benchmarks and strategies (``flanlab eval --config FILE``)."""

from __future__ import annotations

from typing import Literal

from flanlab.core.config import SCHEMAS, Schema
from flanlab.core.paths import DataDir
from flanlab.inference.prompt_format import PromptFormat
from flanlab.inference.spec import ModelSpec

__all__ = ["DEFAULT_BENCHMARKS", "DEFAULT_STRATEGIES", "EvalConfig", "NOT_RESULT_CHANGING"]

DEFAULT_BENCHMARKS = ["mmlu", "bbh", "tydiqa", "mgsm", "gsm8k"]
DEFAULT_STRATEGIES = ["direct", "cot"]
# Settings a run folder may be resumed under with other values: they change how requests are sent
# or where data is read from, never a recorded result. Every other key must equal the recorded one.
NOT_RESULT_CHANGING = ("model.batch_size", "model.cache", "model.max_concurrency", "model.timeout_s",
                       "model.api_key_env", "data_dir", "strict")


class EvalConfig(Schema):
    """An evaluation: the model, benchmarks × strategies, and how much of each to run."""

    kind: Literal["eval"] = "eval"
    model: ModelSpec
    benchmarks: list[str] = DEFAULT_BENCHMARKS
    strategies: list[str] = DEFAULT_STRATEGIES
    subtasks: list[str] = []
    limit: int | None = None
    samples: int | None = None
    max_new_tokens: int | None = None
    # The benchmark data folder (unset: $FLANLAB_DATA_DIR, read when the config is validated; else the hub).
    data_dir: DataDir = None
    seed: int = 0
    # A benchmark whose local data is missing fails the run instead of being skipped with a warning.
    strict: bool = False
    # How prompts end before the answer, as training joined inputs and targets (``flanlab run``
    # sets the run's one value); None: the benchmark's prompts exactly as published.
    prompt_format: PromptFormat | None = None


if "eval" not in SCHEMAS:
    SCHEMAS.register("eval", EvalConfig)
