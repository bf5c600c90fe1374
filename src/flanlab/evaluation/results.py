"""Results: per-example JSONL, ``results.json`` and a markdown table (with the paper's rows)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from flanlab.core.io import atomic_write_text, read_jsonl
from flanlab.core.runs import RunDir
from flanlab.evaluation.benchmarks import Benchmark, Example
from flanlab.evaluation.filters import cut_at_stop
from flanlab.evaluation.metrics import majority_vote
from flanlab.evaluation.normalized import normalized_average
from flanlab.evaluation.plan import EvalRequest
from flanlab.evaluation.specs import load_strategies, load_table5

__all__ = ["EXAMPLES_FILE", "Results", "score_example"]

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
        """The results as markdown: headline scores, the paper comparison, per-subtask scores."""
        data = data or self.to_json()
        lines = [f"# Evaluation of `{self.model}`", "", "| benchmark | strategy | score | n | notes |",
                 "| --- | --- | ---: | ---: | --- |"]
        for b, by in data["scores"].items():
            for s, agg in by.items():
                notes = [f"maj@{agg['samples']}"] if "samples" in agg else []
                if "f1" in agg:
                    notes.append(f"F1 {agg['f1']:.1f}")
                if "subject_average" in agg:
                    notes.append(f"subject-averaged {agg['subject_average']:.1f}")
                    notes += [f"{c} {v:.1f}" for c, v in agg.get("categories", {}).items()]
                lines.append(f"| {b} | {s} | {_fmt(agg['score'])} | {agg['n']} | {'; '.join(notes)} |")
        norm = data["normalized_average"]
        table = data["paper_table5"]
        lines += ["", "## Compared with the paper", "", f"Source: {table['source']}. Our normalized average "
                  f"uses {norm['columns_present']} of 6 columns"
                  + ("." if norm["value"] is not None else " (partial: missing columns are blank)."), ""]
        head = ["model", "MMLU direct", "MMLU CoT", "BBH direct", "BBH CoT", "TyDiQA", "MGSM CoT", "norm. avg"]
        lines += ["| " + " | ".join(head) + " |", "|" + " --- |" + " ---: |" * (len(head) - 1)]
        for row in table["rows"]:
            lines.append(f"| {row['model']} | " + " | ".join(_fmt(v) for v in row["scores"]) + " |")
        ours = [c["score"] for c in norm["columns"]]
        avg = norm["value"] if norm["value"] is not None else norm["partial"]
        star = "" if norm["value"] is not None else "*"
        lines.append(f"| **{self.model}** (this run) | " + " | ".join(_fmt(v) for v in ours)
                     + f" | {_fmt(avg)}{star} |")
        lines += ["", "## Per subtask", ""]
        for b, by in data["scores"].items():
            for s, agg in by.items():
                subs = agg.get("subtasks", {})
                if len(subs) > 1:
                    cells = ", ".join(f"{k} {v:.1f}" for k, v in subs.items())
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
