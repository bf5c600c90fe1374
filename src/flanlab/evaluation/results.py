"""Results: per-example JSONL, ``results.json`` and a markdown table (with the paper's rows)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from flanlab.core.io import atomic_write_text, read_jsonl
from flanlab.core.runs import RunDir
from flanlab.evaluation.benchmarks import Benchmark, Example
from flanlab.evaluation.chance import subtask_chance
from flanlab.evaluation.filters import cut_at_stop
from flanlab.evaluation.metrics import majority_vote
from flanlab.evaluation.normalized import normalized_average
from flanlab.evaluation.plan import EvalRequest
from flanlab.evaluation.specs import load_strategies, load_table5
from flanlab.evaluation.stats import Interval, bootstrap_interval, score_interval

__all__ = ["EXAMPLES_FILE", "Results", "is_macro", "score_example", "uncertainty", "values_by_subtask"]

EXAMPLES_FILE = "examples.jsonl"


def score_example(
    bench: Benchmark,
    example: Example,
    req: EvalRequest,
    outputs: Sequence[str] | None = None,
    logprobs: Sequence[float] | None = None,
) -> dict[str, Any]:
    """One per-example record: outputs cut at the stop sequences, answers extracted, scored.

    Log-likelihood requests pick the best-scoring continuation (ties: the first). Several outputs
    are reduced by majority vote (self-consistency); one output is its own answer.
    """
    record: dict[str, Any] = {
        "benchmark": req.benchmark, "subtask": req.subtask, "index": req.index, "strategy": req.strategy,
    }
    if req.kind == "loglikelihood":
        assert logprobs is not None
        best = max(range(len(logprobs)), key=lambda i: (logprobs[i], -i))
        answer = req.continuations[best].strip()
        record.update(context=req.prompt, continuations=list(req.continuations), logprobs=list(logprobs),
                      outputs=[req.continuations[best]], answers=[answer])
    else:
        assert outputs is not None
        cut = [cut_at_stop(o, req.stop) for o in outputs]
        answers = [bench.extract(o, req.style) for o in cut]
        vote = load_strategies().get(req.strategy)
        if vote is not None and vote.vote == "majority":
            answer = majority_vote(answers, numeric=bench.spec.metric == "numeric")
        else:
            answer = answers[0] if answers else None
        record.update(prompt=req.prompt, stop=list(req.stop), outputs=cut, answers=answers)
    record["answer"] = answer
    record["target"] = list(example.golds) if example.golds else example.target
    record.update(bench.score(answer, example))
    return record


class Results:
    """The records of one evaluation and their summaries."""

    def __init__(self, model: str, benchmarks: dict[str, Benchmark]) -> None:
        self.model = model
        self.benchmarks = benchmarks
        self.records: dict[str, dict[str, Any]] = {}

    def add(self, records: Iterable[dict[str, Any]]) -> None:
        for r in records:
            self.records[f"{r['benchmark']}/{r['subtask']}/{r['index']}/{r['strategy']}"] = r

    @classmethod
    def resume(cls, model: str, benchmarks: dict[str, Benchmark], path: Path) -> Results:
        """Results holding the records already in ``path`` (a torn last line is ignored)."""
        res = cls(model, benchmarks)
        if path.exists():
            res.add(read_jsonl(path))
        return res

    def summary(self) -> dict[str, dict[str, Any]]:
        """``{benchmark: {strategy: aggregate}}`` in percent."""
        groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for r in self.records.values():
            groups.setdefault((r["benchmark"], r["strategy"]), []).append(r)
        out: dict[str, dict[str, Any]] = {}
        for (b, s), rows in sorted(groups.items()):
            bench = self.benchmarks[b]
            agg = bench.aggregate(sorted(rows, key=lambda r: (r["subtask"], r["index"])))
            spec = load_strategies().get(s)
            if spec is not None and spec.vote == "majority":
                agg["samples"] = max(len(r.get("outputs", [])) for r in rows)  # reported as maj@k
            agg.update(uncertainty(bench, rows, agg))
            out.setdefault(b, {})[s] = agg
        return out

    def to_json(self, extra: dict[str, Any] | None = None) -> dict[str, Any]:
        summary = self.summary()
        scores = {(b, s): agg["score"] for b, by in summary.items() for s, agg in by.items()}
        table = load_table5()
        return {
            "model": self.model,
            "scores": summary,
            "normalized_average": normalized_average(scores),
            "paper_table5": {"source": table.source, "columns": table.columns,
                             "rows": [r.model_dump() for r in table.rows]},
            **(extra or {}),
        }

    def markdown(self, data: dict[str, Any] | None = None) -> str:
        """The results as markdown: scores with n, 95 % interval and chance level, this run on the
        paper's columns, the paper's own rows (kept apart: other scales, full benchmarks), subtasks."""
        data = data or self.to_json()
        lines = [f"# Evaluation of `{self.model}`", "", INTERVALS_NOTE, "",
                 "| benchmark | strategy | score | 95 % CI | n | chance | notes |",
                 "| --- | --- | ---: | ---: | ---: | ---: | --- |"]
        for b, by in data["scores"].items():
            for s, agg in by.items():
                notes = [f"maj@{agg['samples']}"] if "samples" in agg else []
                if "f1" in agg:
                    notes.append(f"F1 {agg['f1']:.1f} {_ci(agg.get('f1_ci95'))}")
                if "subject_average" in agg:
                    notes.append(f"subject-averaged {agg['subject_average']:.1f} {_ci(agg.get('subject_average_ci95'))}")
                    cats = agg.get("category_stats", {})
                    notes += [f"{c} {v:.1f} {_ci(cats.get(c, {}).get('ci95'))} n={cats.get(c, {}).get('n', '?')}"
                              for c, v in agg.get("categories", {}).items()]
                if agg.get("ci_method"):
                    notes.append(agg["ci_method"])
                lines.append(f"| {b} | {s} | {_fmt(agg['score'])} | {_ci(agg.get('ci95'))} | {agg['n']} | "
                             f"{_fmt(agg.get('chance'))} | {'; '.join(notes)} |")
        norm = data["normalized_average"]
        table = data["paper_table5"]
        head = ["MMLU direct", "MMLU CoT", "BBH direct", "BBH CoT", "TyDiQA", "MGSM CoT"]
        lines += ["", "## This run on the paper's columns", "",
                  f"`{self.model}`, on the items above (score [95 % CI] n); blank: not evaluated.", "",
                  "| model | " + " | ".join(head) + " |", "| --- |" + " ---: |" * len(head)]
        cells = []
        for c in norm["columns"]:
            agg = data["scores"].get(c["benchmark"], {}).get(c["strategy"])
            cells.append("" if agg is None else f"{_fmt(agg['score'])} {_ci(agg.get('ci95'))} n={agg['n']}")
        lines.append(f"| {self.model} | " + " | ".join(cells) + " |")
        if norm["value"] is not None:
            lines += ["", f"Normalized average (the paper's six columns, each against its random baseline): "
                      f"{norm['value']:.1f}."]
        else:
            # A partial average is not shown at all: over other columns and items it means something else.
            lines += ["", f"No normalized average: it needs all 6 of the paper's columns, this run has "
                      f"{norm['columns_present']} (partial ({norm['columns_present']} of 6))."]
        lines += ["", "## The paper's rows (for scale, not a like-for-like comparison)", "",
                  f"Source: {table['source']}. Models of 80M to 540B parameters, on the full benchmarks; "
                  "this run's numbers are above.", "",
                  "| model | params | " + " | ".join([*head, "norm. avg"]) + " |",
                  "| --- | --- |" + " ---: |" * (len(head) + 1)]
        for row in table["rows"]:
            lines.append(f"| {row['model']} | {row['params']} | " + " | ".join(_fmt(v) for v in row["scores"]) + " |")
        lines += ["", "## Per subtask", ""]
        for b, by in data["scores"].items():
            for s, agg in by.items():
                subs = agg.get("subtasks", {})
                stats = agg.get("subtask_stats", {})
                if len(subs) > 1:
                    cells = ", ".join(f"{k} {v:.1f} {_ci(stats.get(k, {}).get('ci95'))} n={stats.get(k, {}).get('n', '?')}"
                                      f" (chance {_fmt(stats.get(k, {}).get('chance'))})" for k, v in subs.items())
                    lines.append(f"- **{b} / {s}**: {cells}")
        return "\n".join(lines) + "\n"

    def write(self, run: RunDir, extra: dict[str, Any] | None = None) -> dict[str, Any]:
        """Write ``results.json`` and ``results.md`` (atomically); returns the JSON."""
        data = self.to_json(extra)
        run.write_results(data)
        atomic_write_text(run.file("results.md"), self.markdown(data))
        return data


def _fmt(v: float | None) -> str:
    return "" if v is None else f"{v:.1f}"


def _ci(ci: Sequence[float] | None) -> str:
    return "" if not ci else f"[{ci[0]:.1f}, {ci[1]:.1f}]"


INTERVALS_NOTE = (
    "Scores in percent. 95 % CI: Wilson score interval for right/wrong scores that weigh every item "
    "alike; otherwise (F1, means over subtasks of unequal size) a percentile bootstrap of 2,000 "
    "resamples within subtasks, seed 0 (`flanlab.evaluation.stats`). Chance: the expected score of a "
    "uniform guess on the same items (`flanlab.evaluation.chance`).")


def values_by_subtask(records: Iterable[dict[str, Any]], key: str = "correct") -> dict[str, list[float]]:
    """``{subtask: [per-item value]}`` in item (index) order: the input of the stats functions."""
    out: dict[str, list[tuple[int, float]]] = {}
    for r in records:
        out.setdefault(r["subtask"], []).append((r["index"], float(r.get(key, 0.0))))
    return {s: [v for _, v in sorted(rows)] for s, rows in sorted(out.items())}


def is_macro(score: float | None, by_subtask: dict[str, list[float]]) -> bool:
    """Whether ``score`` (percent) is the mean of subtask means rather than the mean over items:
    read off the reported score itself, so the interval is always of the number shown."""
    flat = [v for vs in by_subtask.values() for v in vs]
    if score is None or not flat:
        return True
    return not math.isclose(score, 100.0 * sum(flat) / len(flat), rel_tol=0.0, abs_tol=1e-6)


def _iv(iv: Interval) -> dict[str, Any]:
    return iv.scaled(100.0).to_dict()


def uncertainty(bench: Benchmark, records: Sequence[dict[str, Any]], agg: dict[str, Any]) -> dict[str, Any]:
    """The fields added to a benchmark/strategy aggregate: ``ci95`` and ``ci_method`` of the
    headline score, ``chance`` (percent), ``subtask_stats`` ({subtask: n, ci95, chance}) and, where
    the aggregate has them, ``f1_ci95``, ``subject_average_ci95`` and ``category_stats``."""
    by = values_by_subtask(records)
    macro = is_macro(agg.get("score"), by)
    head = _iv(score_interval(by, macro=macro))
    chances = {s: subtask_chance(bench, s, [r["index"] for r in records if r["subtask"] == s]) for s in by}
    if macro:
        chance = sum(chances.values()) / len(chances) if chances else 0.0
    else:
        chance = sum(chances[s] * len(v) for s, v in by.items()) / max(1, sum(len(v) for v in by.values()))
    subs = {s: {**_iv(score_interval(v)), "chance": round(100.0 * chances[s], 2)} for s, v in by.items()}
    out: dict[str, Any] = {"ci95": head["ci95"], "ci_method": head["ci_method"], "chance": round(100.0 * chance, 2),
                           "subtask_stats": subs}
    if "f1" in agg:
        f1 = values_by_subtask(records, "f1")
        out["f1_ci95"] = _iv(bootstrap_interval(f1, macro=True))["ci95"]
        for s, v in f1.items():
            subs[s]["f1_ci95"] = _iv(bootstrap_interval(v))["ci95"]
    if "subject_average" in agg:
        out["subject_average_ci95"] = _iv(score_interval(by, macro=True))["ci95"]
    if "categories" in agg:
        names = getattr(bench, "categories", {})
        cats: dict[str, list[float]] = {}
        for r in records:
            cats.setdefault(names.get(r["subtask"], "other"), []).append(float(r["correct"]))
        out["category_stats"] = {c: _iv(score_interval(v)) for c, v in sorted(cats.items())}
    return out
