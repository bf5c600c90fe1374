"""Read run folders into flat score rows, tolerant of how each stage lays out its ``results.json``.

A run folder holds ``config.yaml`` and ``results.json``; a pipeline run (``flanlab run``) holds
``eval_before/`` and ``eval_after/`` folders that are eval runs themselves. Evaluation may nest
its numbers as ``{"benchmarks": {"bbh": {"subtasks": {...}, "accuracy": ...}}}`` or as a list of
``{"benchmark", "subtask", "metric", "value"}`` records; both (and mixes) read into :class:`Score`
rows. Counts, timings and settings (``n``, ``seconds``, ``seed``, ...) are not scores.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from flanlab.core.errors import UserError

__all__ = ["RunSummary", "Score", "ScoreStats", "flatten_scores", "load_run", "load_runs"]

# Keys that only group things: they never name a benchmark, subtask or metric.
_CONTAINERS = {
    "results", "benchmarks", "scores", "metrics", "subtasks", "tasks", "per_task", "per_subtask",
    "breakdown", "summary", "aggregate", "by_task", "by_subtask", "evals", "evaluations",
}
# Mappings whose keys name subtasks and whose values are bare scores.
_NAMED = {"subtasks", "per_task", "per_subtask", "by_task", "by_subtask"}
# Sections that are not this run's scores: settings, timings, the paper's reference rows, and
# derived figures the report computes or shows on its own.
_SKIP = {"config", "model", "meta", "metadata", "settings", "args", "timing", "seconds", "notes",
         "paper_table5", "paper", "normalized_average", "categories",
         # uncertainty and chance levels that `flanlab eval` writes beside each score (read by stats())
         "subtask_stats", "category_stats"}
# Numeric leaves that are not scores.
_NOT_SCORES = {
    "n", "num", "count", "num_examples", "n_examples", "examples", "total", "seconds", "elapsed",
    "elapsed_s", "time", "time_s", "wall_s", "seed", "steps", "step", "shots", "num_fewshot", "k",
    "max_new_tokens", "batch_size", "tokens", "num_tokens", "samples", "stderr", "std", "version",
    "temperature", "top_p", "limit", "epoch", "lr", "loss_count", "n_correct", "correct", "chance",
}
# Benchmark-level names evaluation uses for its headline number.
_HEADLINE = ("score", "accuracy", "acc", "exact_match", "em", "f1", "mean", "average", "macro_avg")
# Eval sub-folders of a pipeline run, in display order.
EVAL_STAGES = ("eval_before", "eval_after")


@dataclass(frozen=True)
class Score:
    """One number: ``benchmark`` (e.g. ``bbh``), ``subtask`` ('' for the benchmark's aggregate),
    ``metric`` (e.g. ``accuracy``), ``value`` (as written; fractions stay fractions)."""

    benchmark: str
    subtask: str
    metric: str
    value: float
    setting: str = ""  # e.g. "direct" / "cot" when evaluation reports strategies separately


@dataclass(frozen=True)
class ScoreStats:
    """What goes with a score (percent): items, 95 % interval and how it was made, chance level."""

    n: int | None
    ci95: tuple[float, float] | None
    method: str = ""
    chance: float | None = None
    percent: bool = False  # computed here from per-item records: percent whatever the run's own unit


@dataclass
class RunSummary:
    """A run folder read for reporting."""

    path: Path
    name: str
    config: dict[str, Any]
    results: dict[str, Any]
    scores: list[Score]
    stages: dict[str, RunSummary] = field(default_factory=dict)  # eval_before / eval_after
    _records: list[dict[str, Any]] | None = field(default=None, repr=False)

    def headline(self) -> dict[tuple[str, str], float]:
        """``(benchmark, setting) -> value``: the aggregate under the most headline-like metric, or
        the mean over subtasks when evaluation wrote no aggregate."""
        best: dict[tuple[str, str], tuple[int, float]] = {}
        for s in self.scores:
            if not s.subtask:
                key, rank = (s.benchmark, s.setting), _rank(s.metric)
                if key not in best or rank < best[key][0]:
                    best[key] = (rank, s.value)
        subs: dict[tuple[str, str], dict[str, list[float]]] = {}
        for s in self.scores:
            if s.subtask and (s.benchmark, s.setting) not in best:
                subs.setdefault((s.benchmark, s.setting), {}).setdefault(s.metric, []).append(s.value)
        out = {key: value for key, (_, value) in best.items()}
        for key, by_metric in subs.items():
            metric = min(by_metric, key=_rank)
            out[key] = sum(by_metric[metric]) / len(by_metric[metric])
        return dict(sorted(out.items()))

    def records(self, benchmark: str, setting: str) -> list[dict[str, Any]]:
        """Per-item records (``examples.jsonl`` of a `flanlab eval` run) of one benchmark/strategy."""
        if self._records is None:
            path = self.path / "examples.jsonl"
            self._records = []
            if path.is_file():
                from flanlab.core.io import read_jsonl

                # Later lines replace earlier ones with the same key, as evaluation resumes them.
                keyed = {(r.get("benchmark"), r.get("subtask"), r.get("index"), r.get("strategy")): r
                         for r in read_jsonl(path) if isinstance(r, dict)}
                self._records = list(keyed.values())
        strategy = setting or "direct"
        return [r for r in self._records if r.get("benchmark") == benchmark and r.get("strategy") == strategy]

    def _aggregate(self, benchmark: str, setting: str) -> dict[str, Any]:
        scores = self.results.get("scores")
        agg = scores.get(benchmark, {}).get(setting or "direct") if isinstance(scores, dict) else None
        return agg if isinstance(agg, dict) else {}

    def stats(self, benchmark: str, setting: str, subtask: str = "") -> ScoreStats:
        """n, 95 % interval and chance of a headline (or, with ``subtask``, a subtask) score: as
        `flanlab eval` wrote them, else computed from ``examples.jsonl``, else only n if known."""
        agg = self._aggregate(benchmark, setting)
        if subtask:
            agg = agg.get("subtask_stats", {}).get(subtask, {}) if agg else {}
        if agg.get("ci95"):
            lo, hi = agg["ci95"]
            return ScoreStats(agg.get("n"), (float(lo), float(hi)), str(agg.get("ci_method", "")), agg.get("chance"))
        rows = self.records(benchmark, setting)
        if subtask:
            rows = [r for r in rows if r.get("subtask") == subtask]
        if rows:
            from flanlab.evaluation.results import is_macro, values_by_subtask
            from flanlab.evaluation.stats import score_interval

            by = values_by_subtask(rows)
            score = self._aggregate(benchmark, setting).get("score") if not subtask else None
            iv = score_interval(by, macro=is_macro(score, by)).scaled(100.0)
            return ScoreStats(iv.n, (iv.low, iv.high), iv.method, None, percent=True)
        n = agg.get("n") if isinstance(agg.get("n"), int) else None
        return ScoreStats(n, None)

    def subtask_scores(self) -> list[Score]:
        """Per-subtask rows under each benchmark's most headline-like metric."""
        metrics: dict[tuple[str, str], str] = {}
        for s in self.scores:
            if s.subtask:
                key = (s.benchmark, s.setting)
                if key not in metrics or _rank(s.metric) < _rank(metrics[key]):
                    metrics[key] = s.metric
        return [s for s in self.scores if s.subtask and metrics.get((s.benchmark, s.setting)) == s.metric]


def _rank(metric: str) -> int:
    m = metric.lower()
    return _HEADLINE.index(m) if m in _HEADLINE else len(_HEADLINE)


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(float(x))


def _record(item: dict[str, Any]) -> list[Score]:
    """A ``{"benchmark", "subtask"/"task", "metric", "value"}`` record (lm-eval-like lists)."""
    bench = item.get("benchmark") or item.get("dataset")
    value = item.get("value", item.get("score"))
    if not isinstance(bench, str) or not _is_number(value):
        return []
    sub = item.get("subtask") or item.get("task") or ""
    metric = item.get("metric") or "score"
    setting = item.get("strategy") or item.get("setting") or ""
    return [Score(bench, str(sub) if sub != bench else "", str(metric), float(value), str(setting))]


def flatten_scores(results: Any) -> list[Score]:
    """Every score in an evaluation ``results.json``, as flat rows (see the module docstring)."""
    out: list[Score] = []

    def walk(node: Any, path: tuple[str, ...]) -> None:
        if isinstance(node, dict):
            rec = _record(node)
            if rec:
                out.extend(rec)
                return
            for key, value in node.items():
                if str(key).lower() in _SKIP:
                    continue
                walk(value, (*path, str(key)))
        elif isinstance(node, list):
            for item in node:
                if isinstance(item, dict):
                    walk(item, path)
        elif _is_number(node) and path:
            metric = path[-1]
            if len(path) >= 2 and path[-2].lower() in _NAMED:
                # {"subtasks": {"navigate": 40.0}}: the key names a subtask, the value is its score.
                path, metric = path[:-2] + (path[-1],), "score"
            elif metric.lower() in _NOT_SCORES or metric.lower().startswith(("num_", "n_")):
                return
            else:
                path = path[:-1]
            names = [p for p in path if p.lower() not in _CONTAINERS]
            if not names:
                return
            out.append(Score(names[0], "/".join(names[1:]), metric, float(node)))

    walk(results, ())
    return _split_settings(out)


def _split_settings(scores: list[Score]) -> list[Score]:
    """``bbh/cot`` style paths: a known strategy name in the subtask becomes the setting."""
    from flanlab.evaluation.specs import load_strategies

    # Every strategy flanlab evaluates with (direct_gen too), plus names other tools use.
    strategies = {"direct", "cot", "zero_shot_cot", "zs_cot", "self_consistency", "sc"} | set(load_strategies())
    fixed = []
    for s in scores:
        if s.setting:
            fixed.append(s)
            continue
        parts = s.subtask.split("/") if s.subtask else []
        found = [p for p in parts if p.lower() in strategies]
        if found:
            parts = [p for p in parts if p.lower() not in strategies]
            fixed.append(Score(s.benchmark, "/".join(parts), s.metric, s.value, found[0]))
        elif "__" in s.benchmark and s.benchmark.split("__")[1].lower() in strategies:
            bench, setting = s.benchmark.split("__", 1)
            fixed.append(Score(bench, s.subtask, s.metric, s.value, setting))
        else:
            fixed.append(s)
    return fixed


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise UserError(f"{path}:{e.lineno}: invalid JSON ({e.msg})") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a JSON object at the top level, got {type(data).__name__}")
    return data


def _read_config(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise UserError(f"{path}: invalid YAML: {e}") from None
    return data if isinstance(data, dict) else {}


def load_run(path: str | Path) -> RunSummary:
    """Read one run folder: its config, results and (for pipeline runs) its eval stages."""
    path = Path(path)
    if not path.is_dir():
        raise UserError(f"{path}: run folder not found")
    config = _read_config(path / "config.yaml")
    results = _read_json(path / "results.json") if (path / "results.json").is_file() else {}
    stages = {s: load_run(path / s) for s in EVAL_STAGES if (path / s / "results.json").is_file()}
    # A pipeline run's own results.json repeats its stages' numbers; score only eval runs.
    scores = [] if stages else flatten_scores(results)
    if not results and not stages:
        raise UserError(
            f"{path}: no results.json here nor in {'/'.join(EVAL_STAGES)}/ (is this a run folder, and did it finish?)"
        )
    name = str(config.get("name") or path.name) if config.get("kind") == "run" else path.name
    return RunSummary(path=path, name=name, config=config, results=results, scores=scores, stages=stages)


def load_runs(paths: list[str | Path]) -> list[RunSummary]:
    """Read several run folders; names are made unique so tables can tell them apart."""
    runs = [load_run(p) for p in paths]
    seen: dict[str, int] = {}
    for run in runs:
        if run.name in seen:
            seen[run.name] += 1
            run.name = f"{run.name} ({seen[run.name]})"
        else:
            seen[run.name] = 1
    return runs
