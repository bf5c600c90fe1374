"""Turn run folders into a report: summary table and plot, per-benchmark breakdown, paper rows."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from flanlab.core.io import atomic_write_bytes, atomic_write_text
from flanlab.reports.collect import RunSummary
from flanlab.reports.document import Document, Heading, Image, Table, Text
from flanlab.reports.paper import PaperRow, paper_column
from flanlab.reports.plots import bar_chart

__all__ = ["Column", "build_report", "columns_of", "write_report"]


@dataclass(frozen=True)
class Column:
    """One column of numbers: an eval run (or one eval stage of a pipeline run)."""

    label: str
    run: RunSummary
    scale: float  # 100 when the run writes fractions, so every column reads in percent


def _scale(run: RunSummary) -> float:
    if "normalized_average" in run.results or "paper_table5" in run.results:
        return 1.0  # `flanlab eval` writes percent
    values = [s.value for s in run.scores]
    return 100.0 if values and all(0.0 <= v <= 1.0 for v in values) else 1.0


def columns_of(runs: Sequence[RunSummary]) -> list[Column]:
    """Pipeline runs give a column per eval stage (``before`` / ``after``); eval runs give one."""
    cols = []
    for run in runs:
        if run.stages:
            for stage, sub in run.stages.items():
                short = stage.removeprefix("eval_")
                cols.append(Column(short if len(runs) == 1 else f"{run.name}: {short}", sub, _scale(sub)))
        else:
            cols.append(Column(run.name, run, _scale(run)))
    return cols


def _fmt(v: float | None) -> str:
    return "–" if v is None else f"{v:.1f}"


def _normalized(run: RunSummary) -> tuple[float, bool] | None:
    """``flanlab eval``'s normalized average (value, complete?) over the paper's six columns, or the
    partial one over the columns this run has."""
    norm = run.results.get("normalized_average")
    if not isinstance(norm, dict):
        return None
    if isinstance(norm.get("value"), (int, float)):
        return float(norm["value"]), True
    if isinstance(norm.get("partial"), (int, float)):
        return float(norm["partial"]), False
    return None


def _num(v: object, spec: str) -> str:
    return format(v, spec) if isinstance(v, (int, float)) and not isinstance(v, bool) else "–"


def _key_label(bench: str, setting: str) -> str:
    return f"{bench} ({setting})" if setting else bench


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower() or "plot"


def _describe(run: RunSummary) -> str:
    cfg = run.config
    model = cfg.get("model", {}).get("name") if isinstance(cfg.get("model"), dict) else None
    parts = [f"{run.name}: {run.path}"]
    if model:
        parts.append(f"model {model}")
    if cfg.get("kind"):
        parts.append(f"kind {cfg['kind']}")
    return ", ".join(parts)


def build_report(
    runs: Sequence[RunSummary],
    paper: Sequence[PaperRow] = (),
    *,
    title: str = "flanlab report",
    extra: Sequence[Heading | Text | Table | Image] = (),
) -> Document:
    """A report over ``runs``: headline table + bar plot, a section per benchmark with its subtasks,
    the paper's rows for the benchmarks present, then ``extra`` blocks (e.g. sweep figures)."""
    doc = Document(title)
    cols = columns_of(runs)
    doc.add(Text("Runs: " + "; ".join(_describe(r) for r in runs) + "."))
    headlines = [{k: v * c.scale for k, v in c.run.headline().items()} for c in cols]
    keys = sorted({k for h in headlines for k in h})
    doc.add(Heading("Summary"))
    if not keys:
        doc.add(Text("No scores found in these runs' results.json."))
    else:
        delta = len(cols) == 2 and all(r.stages for r in runs) and len(runs) == 1
        header = ["benchmark", *[c.label for c in cols]] + (["Δ"] if delta else [])
        rows = []
        for k in keys:
            vals = [h.get(k) for h in headlines]
            row = [_key_label(*k), *[_fmt(v) for v in vals]]
            if delta:
                row.append("–" if None in vals else f"{vals[1] - vals[0]:+.1f}")
            rows.append(row)
        norms = [_normalized(c.run) for c in cols]
        if any(n is not None for n in norms):
            row = ["normalized average (paper's 6 columns; * partial)",
                   *["–" if n is None else f"{n[0]:.1f}" + ("" if n[1] else "*") for n in norms]]
            rows.append(row + (["–"] if delta else []))
        doc.add(Table(header, rows, caption="Held-out scores (percent, higher is better)"))
        doc.add(Image(
            "summary.png",
            bar_chart([_key_label(*k) for k in keys], {c.label: [h.get(k) for k in keys]
                                                        for c, h in zip(cols, headlines, strict=True)},
                      title="Held-out scores", ylabel="score (%)"),
            "Held-out score per benchmark",
        ))
    for bench, setting in keys:
        subs = sorted({s.subtask for c in cols for s in c.run.subtask_scores()
                       if (s.benchmark, s.setting) == (bench, setting)})
        if not subs:
            continue
        label = _key_label(bench, setting)
        doc.add(Heading(f"Per-benchmark breakdown: {label}"))
        table: dict[str, list[float | None]] = {c.label: [] for c in cols}
        for c in cols:
            found = {s.subtask: s.value * c.scale for s in c.run.subtask_scores()
                     if (s.benchmark, s.setting) == (bench, setting)}
            table[c.label] = [found.get(sub) for sub in subs]
        doc.add(Table(["subtask", *table], [[sub, *[_fmt(table[c][i]) for c in table]]
                                            for i, sub in enumerate(subs)]))
        doc.add(Image(f"breakdown-{_slug(label)}.png",
                      bar_chart(subs, table, title=label, ylabel="score (%)", horizontal=True),
                      f"{label} per subtask"))
    ours = {paper_column(*k): k for k in keys}
    shown = [p for p in paper if any(c in ours for c in p.scores)]
    if shown:
        names = [c for c in dict.fromkeys(c for p in shown for c in p.scores) if c in ours]
        doc.add(Heading("Comparison with the paper"))
        rows = [[p.model, *[_fmt(p.scores.get(c)) for c in names]] for p in shown]
        rows += [[f"this run: {c.label}", *[_fmt(h.get(ours[n])) for n in names]]
                 for c, h in zip(cols, headlines, strict=True)]
        doc.add(Table(["model", *names], rows, caption=f"{shown[0].source}, beside this run (percent); "
                                                      "ours are far smaller models on evaluation subsets"))
    trained = [(r, r.results["train"]) for r in runs if isinstance(r.results.get("train"), dict)]
    if trained:
        doc.add(Heading("Finetuning"))
        # Target tokens are those that carry loss; tokens_real (all non-pad tokens, inputs too) is not it.
        doc.add(Table(["run", "steps", "final loss", "target tokens", "non-pad tokens", "packing efficiency"], [
            [r.name, str(t.get("steps", "–")), _num(t.get("final_loss"), ".3f"), _num(t.get("tokens_target"), ",.0f"),
             _num(t.get("tokens_real"), ",.0f"), _num(t.get("packing_efficiency"), ".1%")] for r, t in trained]))
    for block in extra:
        doc.add(block)
    return doc


def write_report(doc: Document, out_dir: str | Path) -> dict[str, Path]:
    """Write ``report.md`` (+ ``plots/*.png``) and a self-contained ``report.html``; returns the paths."""
    out = Path(out_dir)
    for img in doc.images():
        atomic_write_bytes(out / "plots" / img.name, img.png)
    md, page = out / "report.md", out / "report.html"
    atomic_write_text(md, doc.to_markdown("plots"))
    atomic_write_text(page, doc.to_html())
    return {"markdown": md, "html": page, "plots": out / "plots"}
