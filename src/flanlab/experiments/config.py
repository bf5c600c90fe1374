"""The ``kind: run`` and ``kind: sweep`` configs.

A run config names one model and, per stage, a stage config file (``config:``, relative to the
run config) and/or values merged over it (``set:``). The run fills in what the stages share —
the model, the mixture folder, the finetuned checkpoint, the seed — and validates each resolved
stage config against that stage's own schema before anything runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from flanlab.core.config import SCHEMAS, Schema
from flanlab.core.paths import DataDir
from flanlab.inference.prompt_format import PromptFormat
from flanlab.inference.spec import ModelSpec

__all__ = ["EvalSection", "ReportSection", "RunConfig", "StageSection", "SweepAxes", "SweepConfig"]


class StageSection(Schema):
    """A stage: its config file (optional) and values merged over it (nested mappings merge)."""

    enabled: bool = True
    config: str | None = None
    set: dict[str, Any] = Field(default_factory=dict)


class EvalSection(StageSection):
    """Evaluation of the base model (``before``) and of the finetuned one (``after``)."""

    before: bool = True
    after: bool = True


class ReportSection(Schema):
    enabled: bool = True
    title: str | None = None


class RunConfig(Schema):
    """``flanlab run CONFIG``: mixture → finetune → evaluate (before / after) → report, in one folder."""

    kind: Literal["run"] = "run"
    name: str = Field("run", min_length=1)
    # Every stage's seed (mixture sampling, training data order and init, evaluation sampling).
    seed: int = 0
    # Local task and benchmark data for every stage (unset: $FLANLAB_DATA_DIR, read when the config
    # is validated; else the hub).
    data_dir: DataDir = None
    model: ModelSpec
    # Finetune on the first N mixture members only (the sweep's "number of tasks"); 0 skips
    # finetuning, so only the base model is evaluated. None keeps every member.
    tasks: int | None = Field(None, ge=0)
    # Members appended to the mixture (e.g. the CoT data); the sweep toggles them.
    extra_members: list[dict[str, Any]] = Field(default_factory=list)
    # A google-research/FLAN checkout: the mixture renders the Flan 2022 collection with flan/v2's
    # templates and assembly (the mixture stage's own flan_repo wins; default $FLANLAB_FLAN_REPO).
    flan_repo: str | None = None
    # One convention for decoder-only prompts: training joins inputs and targets with it, and the
    # before/after evaluations prompt with it (default: inputs, a newline, then the answer).
    prompt_format: PromptFormat = PromptFormat()
    mixture: StageSection = StageSection()
    train: StageSection = StageSection()
    eval: EvalSection = EvalSection()
    report: ReportSection = ReportSection()

    @model_validator(mode="after")
    def _check(self) -> RunConfig:
        if self.train.enabled and not self.mixture.enabled and "data" not in self.train.set and not self.train.config:
            raise ValueError("train: with the mixture stage disabled, train.config or train.set.data must say "
                             "which mixture folder to train on")
        return self

    @property
    def finetunes(self) -> bool:
        """Whether this run trains at all (``tasks: 0`` means the base model only)."""
        return self.train.enabled and self.tasks != 0


class SweepAxes(Schema):
    """The grid: every combination of these values is one cell (one ``flanlab run``)."""

    tasks: list[int | None] = Field(default_factory=lambda: [None], min_length=1)
    models: dict[str, ModelSpec] = Field(min_length=1, description="label (e.g. '135M') -> model")
    cot: list[bool] = Field(default_factory=lambda: [False], min_length=1)


class SweepConfig(Schema):
    """``flanlab sweep CONFIG``: a grid of runs over tasks × model × CoT, then the paper's figures."""

    kind: Literal["sweep"] = "sweep"
    name: str = Field("sweep", min_length=1)
    run: str = Field(description="the base run config (a path, relative to the sweep config)")
    seed: int | None = Field(None, description="every cell's seed (None: the base run config's)")
    data_dir: Path | None = Field(None, description="every cell's data folder (None: the base run config's)")
    set: dict[str, Any] = Field(default_factory=dict, description="values merged over the base run config")
    axes: SweepAxes
    # The CoT members appended in cells with cot: true (mixture member mappings).
    cot_members: list[dict[str, Any]] = Field(default_factory=list)

    @model_validator(mode="after")
    def _check(self) -> SweepConfig:
        if True in self.axes.cot and not self.cot_members:
            raise ValueError("axes.cot includes true but cot_members is empty: list the CoT mixture members")
        return self


SCHEMAS.register("run", RunConfig)
SCHEMAS.register("sweep", SweepConfig)
