"""Turn run folders into a report: summary table and plot, per-benchmark breakdown, paper rows."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from flanlab.core.io import atomic_write_bytes, atomic_write_text
from flanlab.evaluation.stats import PairedDiff
from flanlab.reports.collect import RunSummary, ScoreStats
from flanlab.reports.document import Document, Heading, Image, Table, Text
from flanlab.reports.paper import PaperRow, paper_column
from flanlab.reports.plots import bar_chart
from flanlab.reports.story import (
    examples_section,
    mixture_section,
    paired,
    paired_by_subtask,
    training_section,
)

__all__ = ["INTERVALS", "Column", "build_report", "columns_of", "write_report"]


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


def _normalized(run: RunSummary) -> tuple[float, bool, int] | None:
    """``flanlab eval``'s normalized average (value, complete?, columns present) over the paper's
    six columns; a partial one is only ever labelled, never shown as a figure."""
    norm = run.results.get("normalized_average")
    if not isinstance(norm, dict):
        return None
    present = int(norm.get("columns_present") or 0)
    if isinstance(norm.get("value"), (int, float)):
        return float(norm["value"]), True, present
    if isinstance(norm.get("partial"), (int, float)):
        return float(norm["partial"]), False, present
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


INTERVALS = ("Scores in percent: score [95 % interval] n=items. Intervals: Wilson score interval for right/wrong "
             "scores weighing items alike, else a percentile bootstrap (2,000 resamples within subtasks, seed 0); "
             "before/after differences on the same items: Newcombe's paired interval with the exact McNemar test, "
             "or a paired bootstrap (flanlab.evaluation.stats). A difference whose interval includes 0 is not "
             "evidence of a change. Chance: the expected score of a uniform guess on the same items.")


def _cell(v: float | None, st: ScoreStats | None) -> str:
    """``"45.0 [31.2, 59.6] n=40"`` (what is known of it)."""
    if v is None:
        return "–"
    text = f"{v:.1f}"
    if st is not None and st.ci95 is not None:
        text += f" [{st.ci95[0]:.1f}, {st.ci95[1]:.1f}]"
    if st is not None and st.n is not None:
        text += f" n={st.n}"
    elif st is not None:
        text += " (n unknown, no interval)"
    return text


def _stats(c: Column, key: tuple[str, str], subtask: str = "") -> ScoreStats | None:
    st = c.run.stats(*key, subtask=subtask)
    if st.ci95 is None or c.scale == 1.0 or st.percent:
        return st
    lo, hi = st.ci95  # a run that writes fractions: its interval is in fractions too
    return ScoreStats(st.n, (lo * c.scale, hi * c.scale), st.method, st.chance)


def _chance(cols: Sequence[Column], key: tuple[str, str], subtask: str = "") -> float | None:
    found = [st.chance for c in cols if (st := c.run.stats(*key, subtask=subtask)).chance is not None]
    return found[0] if found else None


def _paired_cell(d: PairedDiff | None) -> str:
    return "– (no per-item records)" if d is None else f"{d.fmt()} ({d.short()})"


def build_report(
    runs: Sequence[RunSummary],
    paper: Sequence[PaperRow] = (),
    *,
    title: str = "flanlab report",
    extra: Sequence[Heading | Text | Table | Image] = (),
) -> Document:
    """A report over ``runs``: headline table (n, 95 % intervals, chance) + bar plot, before/after
    on the same items with paired intervals, a section per benchmark with its subtasks, training
    and held-out loss, mixture composition, held-out prompts before/after, the paper's rows kept
    apart, then ``extra`` blocks (e.g. sweep figures)."""
    doc = Document(title)
    cols = columns_of(runs)
    doc.add(Text("Runs: " + "; ".join(_describe(r) for r in runs) + "."))
    doc.add(Text(INTERVALS))
    headlines = [{k: v * c.scale for k, v in c.run.headline().items()} for c in cols]
    keys = sorted({k for h in headlines for k in h})
    # Two columns of numbers: a pipeline run's before/after, or two eval runs (e.g. a base and a
    # finetuned model evaluated separately); the difference is paired on the items both scored.
    delta = len(cols) == 2 and ((len(runs) == 1 and bool(runs[0].stages)) or not any(r.stages for r in runs))
    pipeline = delta and len(runs) == 1
    diff_label = "after − before" if pipeline else f"{cols[1].label} − {cols[0].label}" if delta else ""
    pairs: dict[tuple[str, str], PairedDiff | None] = {}
    if delta:
        pairs = {k: paired(cols[0].run, cols[1].run, *k) for k in keys
                 if all(h.get(k) is not None for h in headlines)}
    doc.add(Heading("Summary"))
    if not keys:
        doc.add(Text("No scores found in these runs' results.json."))
    else:
        header = ["benchmark", "chance", *[c.label for c in cols]] + ([f"Δ {diff_label} [95 % CI]"] if delta else [])
        rows = []
        for k in keys:
            vals = [h.get(k) for h in headlines]
            row = [_key_label(*k), _fmt(_chance(cols, k)),
                   *[_cell(v, _stats(c, k)) for v, c in zip(vals, cols, strict=True)]]
            if delta:
                d = pairs.get(k)
                row.append("–" if None in vals else _paired_cell(d) if d is not None
                           else f"{vals[1] - vals[0]:+.1f} (no interval: no per-item records)")
            rows.append(row)
        norms = [_normalized(c.run) for c in cols]
        if any(n is not None and n[1] for n in norms):
            row = ["normalized average (the paper's 6 columns)", "–",
                   *["–" if n is None else (f"{n[0]:.1f}" if n[1] else f"– (partial: {n[2]} of 6)") for n in norms]]
            rows.append(row + (["–"] if delta else []))
        doc.add(Table(header, rows, caption="Held-out scores (percent, higher is better)"))
        partial = sorted({n[2] for n in norms if n is not None and not n[1]})
        if partial and not any(n is not None and n[1] for n in norms):
            doc.add(Text(f"No normalized average: it needs all 6 of the paper's columns and these runs have "
                         f"{' or '.join(map(str, partial))} (partial ({partial[0]} of 6) averages are not shown)."))
        doc.add(Image(
            "summary.png",
            bar_chart([_key_label(*k) for k in keys], {c.label: [h.get(k) for k in keys]
                                                        for c, h in zip(cols, headlines, strict=True)},
                      title="Held-out scores (95 % intervals; dashed: chance)", ylabel="score (%)",
                      errors={c.label: [_stats(c, k).ci95 for k in keys] for c in cols},
                      chance=[_chance(cols, k) for k in keys]),
            "Held-out score per benchmark, with 95 % intervals and the chance level",
        ))
    if delta and any(d is not None for d in pairs.values()):
        doc.add(Heading("Before vs after on the same items" if pipeline else f"{diff_label} on the same items"))
        rows = []
        for k, d in pairs.items():
            if d is None:
                rows.append([_key_label(*k), "–", "–", "–", "– (no per-item records)", "–", "–", "–"])
                continue
            moved = "–" if d.improved is None else f"{d.improved} / {d.worsened}"
            p = "–" if d.mcnemar_p is None else f"{d.mcnemar_p:.3g}"
            rows.append([_key_label(*k), str(d.n), f"{d.before:.1f}", f"{d.after:.1f}",
                         f"{d.diff:+.1f} [{d.low:+.1f}, {d.high:+.1f}]", moved, p, f"{d.verdict()}; {d.method}"])
        doc.add(Text("A gain is claimed only when the interval excludes 0 and, for right/wrong items, the exact "
                     "McNemar test on the items that changed agrees (p < 0.05)."))
        first, second = ("before", "after") if pipeline else (cols[0].label, cols[1].label)
        doc.add(Table(["benchmark", "items", first, second, "Δ [95 % CI]", "improved / worsened", "McNemar p",
                       "verdict"], rows, caption=f"{diff_label} on the items both evaluations scored"))
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
        by_sub = paired_by_subtask(cols[0].run, cols[1].run, bench, setting) if delta else {}
        rows = []
        for i, sub in enumerate(subs):
            row = [sub, _fmt(_chance(cols, (bench, setting), sub)),
                   *[_cell(table[c.label][i], _stats(c, (bench, setting), sub)) for c in cols]]
            if delta:
                d, pair = by_sub.get(sub), [table[c.label][i] for c in cols]
                row.append(_paired_cell(d) if d is not None or None in pair
                           else f"{pair[1] - pair[0]:+.1f} (no interval: no per-item records)")
            rows.append(row)
        doc.add(Table(["subtask", "chance", *table] + (["Δ [95 % CI]"] if delta else []), rows))
        doc.add(Image(f"breakdown-{_slug(label)}.png",
                      bar_chart(subs, table, title=f"{label} (95 % intervals; dashed: chance)", ylabel="score (%)",
                                horizontal=True,
                                errors={c.label: [_stats(c, (bench, setting), sub).ci95 for sub in subs]
                                        for c in cols},
                                chance=[_chance(cols, (bench, setting), sub) for sub in subs]),
                      f"{label} per subtask"))
    trained = [(r, r.results["train"]) for r in runs if isinstance(r.results.get("train"), dict)]
    if trained:
        doc.add(Heading("Finetuning"))
        # Target tokens are those that carry loss; tokens_real (all non-pad tokens, inputs too) is not it.
        doc.add(Table(["run", "steps", "final loss", "target tokens", "non-pad tokens", "packing efficiency"], [
            [r.name, str(t.get("steps", "–")), _num(t.get("final_loss"), ".3f"), _num(t.get("tokens_target"), ",.0f"),
             _num(t.get("tokens_real"), ",.0f"), _num(t.get("packing_efficiency"), ".1%")] for r, t in trained]))
    for r in runs:
        for block in [*training_section(r), *mixture_section(r)]:
            doc.add(block)
    if delta:
        names = ("before (base model)", "after (finetuned)") if pipeline else (cols[0].label, cols[1].label)
        for block in examples_section(cols[0].run, cols[1].run, keys, names=names):
            doc.add(block)
    ours = {paper_column(*k): k for k in keys}
    shown = [p for p in paper if any(c in ours for c in p.scores)]
    if shown:
        names = [c for c in dict.fromkeys(c for p in shown for c in p.scores) if c in ours]
        doc.add(Heading("The paper's numbers, for scale (not a like-for-like comparison)"))
        doc.add(Table(["model (parameters)", *names], [[p.model, *[_fmt(p.scores.get(c)) for c in names]] for p in shown],
                      caption=f"{shown[0].source}: models of 80M to 540B parameters, on the full benchmarks"))
        doc.add(Table(["this run", *names],
                      [[f"{c.label}: {_model(c.run)}", *[_cell(h.get(ours[n]), _stats(c, ours[n])) for n in names]]
                       for c, h in zip(cols, headlines, strict=True)]
                      + [["chance (these items)", *[_fmt(_chance(cols, ours[n])) for n in names]]],
                      caption="This run on the same columns: its own model, on the evaluation subset it ran"))
    for block in extra:
        doc.add(block)
    return doc


def _model(run: RunSummary) -> str:
    model = run.config.get("model")
    name = model.get("name") if isinstance(model, dict) else model
    return str(name) if name else "model not recorded"


def write_report(doc: Document, out_dir: str | Path) -> dict[str, Path]:
    """Write ``report.md`` (+ ``plots/*.png``) and a self-contained ``report.html``; returns the paths."""
    out = Path(out_dir)
    for img in doc.images():
        atomic_write_bytes(out / "plots" / img.name, img.png)
    md, page = out / "report.md", out / "report.html"
    atomic_write_text(md, doc.to_markdown("plots"))
    atomic_write_text(page, doc.to_html())
    return {"markdown": md, "html": page, "plots": out / "plots"}
