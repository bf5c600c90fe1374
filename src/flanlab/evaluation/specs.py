"""The evaluation stage's data files (strategies, answer filters, benchmark formats, baselines,
the paper's comparison rows), loaded from ``evaluation/data/`` and validated."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from flanlab.core.errors import UserError

__all__ = [
    "DATA",
    "BenchmarkSpec",
    "FilterSpec",
    "SpecError",
    "StrategySpec",
    "StyleSpec",
    "load_baselines",
    "load_benchmark_spec",
    "load_filters",
    "load_strategies",
    "load_table5",
    "read_data_yaml",
]

DATA = Path(__file__).parent / "data"


class SpecError(UserError, ValueError):
    """A malformed evaluation data file; the message names the file and the key."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StrategySpec(_Model):
    """How examples become requests: which prompt style, exemplars or not, and the decoding."""

    name: str
    description: str = ""
    style: str = Field(min_length=1, description="a prompt style of the benchmark files (direct, cot, ...)")
    exemplars: bool = True
    mode: Literal["auto", "loglikelihood", "generate"] = "auto"
    samples: int = Field(1, ge=1)
    temperature: float = Field(0.0, ge=0.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    vote: Literal["none", "majority"] = "none"
    companion: str | None = None

    @model_validator(mode="after")
    def _check(self) -> StrategySpec:
        if self.samples > 1 and self.temperature == 0.0:
            raise ValueError("samples > 1 needs temperature > 0 (greedy samples would all be equal)")
        if self.vote == "majority" and self.samples < 2:
            raise ValueError("vote: majority needs samples >= 2")
        return self


class FilterStep(_Model):
    """One step of an answer filter (exactly one action key is set)."""

    regex: str | None = None
    group: int | None = None
    select: Literal["first", "last"] = "first"
    on_miss: Literal["drop", "keep"] = "drop"
    first_line: bool = False
    strip: bool = False
    lower: bool = False
    letter: bool = False
    number: bool = False
    remove: list[str] = []

    @model_validator(mode="after")
    def _one_action(self) -> FilterStep:
        actions = [self.regex is not None, self.first_line, self.strip, self.lower, self.letter,
                   self.number, bool(self.remove)]
        if sum(actions) != 1:
            raise ValueError("each filter step needs exactly one of: regex, first_line, strip, lower, "
                             "letter, number, remove")
        if self.regex is not None:
            import re

            try:
                re.compile(self.regex)
            except re.error as e:
                raise ValueError(f"invalid regex {self.regex!r}: {e}") from None
        return self


class FilterSpec(_Model):
    """An answer filter: a list of steps, or alternatives tried in order (``first_of``)."""

    name: str = ""
    steps: list[FilterStep] = []
    first_of: list[FilterSpec] = []

    @model_validator(mode="after")
    def _one_form(self) -> FilterSpec:
        if bool(self.steps) == bool(self.first_of):
            raise ValueError("a filter has either steps or first_of (not both, not neither)")
        return self


class StyleSpec(_Model):
    """A prompt style of a benchmark: the prompt is the ``head`` template, the ``exemplar`` template
    rendered for each exemplar of source ``exemplars`` (when the strategy uses exemplars), then the
    ``query`` template, joined by ``joiner``. ``zero_shot_head`` replaces ``head`` when the strategy
    uses no exemplars; ``continuations`` (a template rendered for each of the benchmark's
    ``letters``) makes the style scorable by log-likelihood. Then the answer filter, stop sequences
    and generation budget."""

    query: str
    head: str | None = None
    zero_shot_head: str | None = None
    exemplars: str | None = None
    exemplar: str | None = None
    joiner: str = "\n\n"
    continuations: str | None = None
    filter: str
    stop: list[str] = []
    max_new_tokens: int = Field(256, ge=1)

    @model_validator(mode="after")
    def _pairs(self) -> StyleSpec:
        if (self.exemplars is None) != (self.exemplar is None):
            raise ValueError("exemplars (the source) and exemplar (its template) go together")
        return self

    def template_keys(self) -> dict[str, str]:
        """Each field that names a template, with the template key it names."""
        keys = {"query": self.query, "head": self.head, "zero_shot_head": self.zero_shot_head,
                "exemplar": self.exemplar, "continuations": self.continuations}
        return {k: v for k, v in keys.items() if v is not None}


class LanguageSpec(_Model):
    question: str
    answer: str


class BenchmarkSpec(_Model):
    """A benchmark's prompt format and scoring, as written in ``data/benchmarks/NAME.yaml``."""

    name: str
    description: str = ""
    # The data owner in flanlab.tasks.benchmark_data (default: name); it reads the files or the hub.
    data: str | None = None
    metric: Literal["accuracy", "exact_match", "numeric", "squad"]
    templates: dict[str, str]
    styles: dict[str, StyleSpec]
    letters: list[str] = []
    languages: dict[str, LanguageSpec] = {}


def _where(err: dict[str, Any]) -> str:
    return ".".join(str(p) for p in err["loc"]) or "<root>"


def read_data_yaml(path: Path) -> Any:
    """Parse a YAML data file; syntax errors name the file and line."""
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SpecError(f"{path}: file not found") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        raise SpecError(f"{path}{line}: invalid YAML: {getattr(e, 'problem', e)}") from None


def _validate(model: type[BaseModel], data: Any, path: Path, key: str = "") -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as e:
        first = e.errors()[0]
        prefix = f"{key}." if key else ""
        raise SpecError(f"{path}: key {prefix}{_where(first)}: {first['msg']}") from None


@lru_cache(maxsize=8)
def load_strategies(path: Path = DATA / "strategies.yaml",
                    benchmarks: Path = DATA / "benchmarks") -> dict[str, StrategySpec]:
    """All strategies, by name; each one's style must be defined by a benchmark file of ``benchmarks``."""
    raw = read_data_yaml(path)
    if not isinstance(raw, dict):
        raise SpecError(f"{path}: expected a mapping of strategy name -> settings")
    out = {name: _validate(StrategySpec, {"name": name, **(body or {})}, path, name) for name, body in raw.items()}
    styles = sorted({style for f in benchmarks.glob("*.yaml")
                     for style in load_benchmark_spec(f.stem, benchmarks).styles})
    for name, s in out.items():
        if s.companion is not None and s.companion not in out:
            raise SpecError(f"{path}: key {name}.companion: unknown strategy {s.companion!r}")
        if s.style not in styles:
            raise SpecError(f"{path}: key {name}.style: no benchmark file in {benchmarks} defines style "
                            f"{s.style!r}; styles: {', '.join(styles)}")
    return out


@lru_cache(maxsize=8)
def load_filters(path: Path = DATA / "filters.yaml") -> dict[str, FilterSpec]:
    """All answer filters, by name."""
    raw = read_data_yaml(path)
    if not isinstance(raw, dict):
        raise SpecError(f"{path}: expected a mapping of filter name -> steps")
    return {name: _validate(FilterSpec, {"name": name, **(body or {})}, path, name) for name, body in raw.items()}


@lru_cache(maxsize=16)
def load_benchmark_spec(name: str, folder: Path = DATA / "benchmarks") -> BenchmarkSpec:
    """The format file of benchmark ``name`` (``folder/NAME.yaml``); its filters and the templates
    its styles name must exist."""
    path = folder / f"{name}.yaml"
    spec = _validate(BenchmarkSpec, read_data_yaml(path), path)
    filters = load_filters()
    for style, body in spec.styles.items():
        if body.filter not in filters:
            raise SpecError(f"{path}: key styles.{style}.filter: unknown filter {body.filter!r}; "
                            f"known: {', '.join(sorted(filters))}")
        for key, template in body.template_keys().items():
            if template not in spec.templates:
                raise SpecError(f"{path}: key styles.{style}.{key}: no template {template!r}; "
                                f"templates: {', '.join(spec.templates)}")
    return spec


class _Baseline(_Model):
    benchmark: str
    strategy: str
    random: float = Field(ge=0.0, lt=100.0)
    source: str


class _Baselines(_Model):
    columns: list[_Baseline]


@lru_cache(maxsize=2)
def load_baselines(path: Path = DATA / "baselines.yaml") -> list[_Baseline]:
    """The six columns of the normalized average with their random baselines and sources."""
    return _validate(_Baselines, read_data_yaml(path), path).columns


class _Row(_Model):
    model: str
    params: str
    scores: list[float | None]


class _Table(_Model):
    source: str
    columns: list[str]
    rows: list[_Row]

    @model_validator(mode="after")
    def _widths(self) -> _Table:
        for i, row in enumerate(self.rows):
            if len(row.scores) != len(self.columns):
                raise ValueError(f"rows.{i} ({row.model}): {len(row.scores)} scores for "
                                 f"{len(self.columns)} columns")
        return self


@lru_cache(maxsize=2)
def load_table5(path: Path = DATA / "table5.yaml") -> _Table:
    """The paper's comparison rows (Table 5) with their source."""
    return _validate(_Table, read_data_yaml(path), path)
