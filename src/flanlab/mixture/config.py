"""The ``kind: mixture`` config: members (tasks, pre-rendered files or sub-mixtures) and rate rules."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from flanlab.core.config import SCHEMAS, Schema

__all__ = ["MemberConfig", "MixtureConfig", "OUTPUT_FORMATS"]

OUTPUT_FORMATS = ("jsonl", "jsonl.zst", "parquet")


class MemberConfig(Schema):
    """One member: exactly one of ``task`` (a catalog name or glob), ``file`` (pre-rendered JSONL with
    ``inputs`` and ``targets``) or ``mixture`` (another mixture config, used as a sub-mixture)."""

    task: str | None = None
    file: str | None = None
    mixture: str | None = None
    exclude: list[str] = Field(default_factory=list, description="glob patterns removed from a task glob")
    name: str | None = Field(default=None, description="task name of a file member (default: file stem)")
    submixture: str | None = Field(default=None, description="group name; default: the task's own")
    category: str | None = None
    formats: list[str] | None = Field(default=None, description="default: the mixture's, else the task's")
    weight: float = Field(default=1.0, gt=0)
    rate: float | None = Field(default=None, gt=0, description="this group's rate, overriding defaults")
    cap: int | None = Field(default=None, gt=0, description="per-task cap, overriding the submixture's")
    tags: list[str] = Field(default_factory=list, description="tags of a file member, e.g. heldout")

    @model_validator(mode="after")
    def _one_source(self) -> MemberConfig:
        given = [k for k in ("task", "file", "mixture") if getattr(self, k)]
        if len(given) != 1:
            raise ValueError(f"a member needs exactly one of task, file, mixture (got {given or 'none'})")
        if self.exclude and not self.task:
            raise ValueError("exclude only applies to task members")
        return self


class MixtureConfig(Schema):
    """A mixture: what goes in, at what rates, and how it is written out."""

    kind: Literal["mixture"] = "mixture"
    name: str = Field(min_length=1)
    seed: int = 0
    examples: int | None = Field(default=None, gt=0, description="total examples; default: one capped pass")
    rule: Literal["examples_proportional", "fixed"] = "examples_proportional"
    temperature: float = Field(default=1.0, gt=0)
    submixture_rates: Literal["flan2022", "proportional"] | dict[str, float] = "flan2022"
    caps: dict[str, int | None] = Field(default_factory=dict, description="per-submixture cap overrides")
    default_cap: int | None = Field(default=None, gt=0, description="cap of submixtures with none known")
    formats: list[str] | None = None
    split: str = "train"
    shard_size: int = Field(default=10000, gt=0)
    output_format: Literal["jsonl", "jsonl.zst", "parquet"] = "jsonl"
    tokenizer: str | None = Field(
        default=None, description="tokenizer that counts the flan/v2 token budgets and length statistics: a folder, "
                                  "a model cached by `flanlab models` (smollm2-135m) or a hub id; none: no budgets")
    token_stats_every: int = Field(
        default=16, gt=0, description="token-length statistics from every N-th example of each stream "
                                      "(1: all; budgets always apply to every example)")
    allow_heldout: list[str] = Field(default_factory=list, description="held-out tasks allowed, by name")
    flan_repo: str | None = Field(
        default=None, description="google-research/FLAN checkout: the Flan 2022 collection renders with flan/v2's "
                                  "templates and assembly (default: $FLANLAB_FLAN_REPO; none: flanlab's own)")
    members: list[MemberConfig] = Field(min_length=1)

    @field_validator("submixture_rates")
    @classmethod
    def _positive_rates(cls, value):
        if isinstance(value, dict):
            bad = {k: v for k, v in value.items() if not v > 0}
            if bad:
                raise ValueError(f"submixture rates must be > 0, got {bad}")
        return value


SCHEMAS.register("mixture", MixtureConfig, replace=True)
