"""``flanlab sweep``: a grid of ``flanlab run`` cells (number of tasks × model × CoT) and the paper's
figures drawn from them.

Cells run one after another in ``<sweep>/cells/<cell>/``, or ``--emit-jobs DIR`` writes one
resolved run config and one job script per cell for a scheduler; rerunning the sweep afterwards
finds every cell complete (each stage is skipped) and only collects and plots.
"""

from __future__ import annotations

import itertools
import os
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flanlab.core.config import load_yaml, validate
from flanlab.core.io import atomic_write_text
from flanlab.core.log import get_logger
from flanlab.core.runs import RunDir
from flanlab.experiments.config import RunConfig, SweepConfig
from flanlab.experiments.pipeline import deep_merge

__all__ = ["Cell", "collect", "emit_jobs", "plan_cells", "run_sweep", "sweep_figures"]

log = get_logger(__name__)


@dataclass(frozen=True)
class Cell:
    """One grid point and its run config."""

    name: str
    model: str  # the axis label, e.g. "135M"
    tasks: int | None
    cot: bool
    config: RunConfig
    config_path: Path  # the base run config: relative paths resolve against its folder


def _tasks_label(tasks: int | None) -> str:
    return "all" if tasks is None else str(tasks)


def plan_cells(sweep: SweepConfig, sweep_path: Path) -> list[Cell]:
    """Every cell of the grid, its run config resolved and validated (nothing runs)."""
    base_path = (sweep_path.parent / sweep.run).resolve()
    base = deep_merge(load_yaml(base_path), sweep.set)
    cells = []
    for (label, spec), tasks, cot in itertools.product(sweep.axes.models.items(), sweep.axes.tasks, sweep.axes.cot):
        if tasks == 0 and cot != sweep.axes.cot[0]:
            continue  # no finetuning: the CoT data makes no difference, one base-model cell serves both
        name = f"{label}-t0" if tasks == 0 else f"{label}-t{_tasks_label(tasks)}-{'cot' if cot else 'nocot'}"
        data = deep_merge(base, {
            "kind": "run",
            "name": f"{sweep.name}-{name}",
            "model": spec.model_dump(mode="json", exclude_defaults=True),
            "tasks": tasks,
            "extra_members": list(base.get("extra_members") or []) + (sweep.cot_members if cot else []),
            # The sweep's seed and data folder, when it names them, are every cell's.
            **({"seed": sweep.seed} if sweep.seed is not None else {}),
            **({"data_dir": sweep.data_dir} if sweep.data_dir is not None else {}),
        })
        cfg = validate(RunConfig, data, source=f"{sweep_path}: cell {name}")
        cells.append(Cell(name, label, tasks, cot, cfg, base_path))
    return cells


def _absolute(cfg: RunConfig, config_dir: Path) -> dict[str, Any]:
    """The run config with relative paths (stage configs, mixture file members) made absolute, so a
    job config written elsewhere means the same."""
    data = cfg.model_dump(mode="json")
    for stage in ("mixture", "train", "eval"):
        if data[stage].get("config"):
            data[stage]["config"] = str((config_dir / data[stage]["config"]).resolve())
    for member in [*(data["mixture"]["set"].get("members") or []), *data["extra_members"]]:
        if isinstance(member, dict) and isinstance(member.get("file"), str):
            member["file"] = str((config_dir / member["file"]).resolve())
    return data


def emit_jobs(cells: list[Cell], sweep_dir: Path, jobs_dir: Path, data_dir: Path | None = None) -> list[Path]:
    """Write ``<jobs_dir>/<cell>.yaml`` and an executable ``<jobs_dir>/<cell>.sh`` per cell (passing
    ``data_dir`` on as ``--data-dir``)."""
    import yaml

    scripts = []
    flanlab = shlex.quote(sys.executable) + " -m flanlab"
    for cell in cells:
        cfg_path = jobs_dir / f"{cell.name}.yaml"
        text = yaml.safe_dump(_absolute(cell.config, cell.config_path.parent), sort_keys=False)
        atomic_write_text(cfg_path, f"# flanlab run {cfg_path}\n{text}")
        run_dir = (sweep_dir / "cells" / cell.name).resolve()
        script = jobs_dir / f"{cell.name}.sh"
        atomic_write_text(script, "\n".join([
            "#!/usr/bin/env bash",
            f"# sweep cell {cell.name}: model {cell.model}, tasks {_tasks_label(cell.tasks)}, cot {cell.cot}",
            "set -euo pipefail",
            f"cd {shlex.quote(str(Path.cwd()))}",
            f"{flanlab} run {shlex.quote(str(cfg_path.resolve()))} --run-name {shlex.quote(str(run_dir))}"
            + (f" --data-dir {shlex.quote(str(Path(data_dir).resolve()))}" if data_dir else ""),
            "",
        ]))
        os.chmod(script, 0o755)
        scripts.append(script)
    return scripts


def collect(cells: list[Cell], sweep_dir: Path) -> list[dict[str, Any]]:
    """One row per finished cell: its axes and held-out scores (percent) by setting.

    A cell's score is its finetuned (``eval_after``) evaluation, or the base model's when the cell
    does not finetune (``tasks: 0``)."""
    from flanlab.reports.build import columns_of
    from flanlab.reports.collect import load_run

    rows = []
    for cell in cells:
        folder = sweep_dir / "cells" / cell.name
        if not (folder / "results.json").is_file():
            continue
        run = load_run(folder)
        stage = "eval_after" if "eval_after" in run.stages else "eval_before"
        if stage not in run.stages:
            continue
        col = next(c for c in columns_of([run]) if c.run is run.stages[stage])
        by_setting: dict[str, list[tuple[float, Any]]] = {}
        scores, intervals, ns = {}, {}, {}
        for (bench, setting), value in col.run.headline().items():
            st = col.run.stats(bench, setting)
            ci = None if st.ci95 is None else [st.ci95[0] * col.scale, st.ci95[1] * col.scale]
            key = f"{bench}/{setting}" if setting else bench
            scores[key], intervals[key], ns[key] = value * col.scale, ci, st.n
            by_setting.setdefault(setting or "direct", []).append((value * col.scale, st))
        rows.append({"cell": cell.name, "model": cell.model, "tasks": cell.tasks, "cot": cell.cot,
                     "stage": stage, "scores": scores, "ci95": intervals, "n": ns,
                     "mean": {s: sum(v for v, _ in vs) / len(vs) for s, vs in sorted(by_setting.items())},
                     "mean_ci95": {s: _mean_interval(vs, col.scale) for s, vs in sorted(by_setting.items())},
                     "chance": {s: _mean_chance(vs) for s, vs in sorted(by_setting.items())}})
    return rows


def _mean_interval(values: list[tuple[float, Any]], scale: float) -> list[float] | None:
    """95 % interval of a mean of k benchmark scores: their half-widths combined as independent
    normal errors, sqrt(sum h_i²) / k, around the mean (one benchmark: its own interval)."""
    if any(st.ci95 is None for _, st in values):
        return None
    if len(values) == 1:
        lo, hi = values[0][1].ci95
        return [round(lo * scale, 2), round(hi * scale, 2)]
    mean = sum(v for v, _ in values) / len(values)
    half = (sum(((st.ci95[1] - st.ci95[0]) * scale / 2) ** 2 for _, st in values)) ** 0.5 / len(values)
    return [round(mean - half, 2), round(mean + half, 2)]


def _mean_chance(values: list[tuple[float, Any]]) -> float | None:
    chances = [st.chance for _, st in values]
    return None if any(c is None for c in chances) else sum(chances) / len(chances)


def _mean_all(row: dict[str, Any]) -> float:
    values = list(row["mean"].values())
    return sum(values) / len(values)


def _mean_all_ci(row: dict[str, Any]) -> tuple[float, float] | None:
    """The interval of :func:`_mean_all`, combined as in :func:`_mean_interval`."""
    cis = [(row.get("mean_ci95") or {}).get(s) for s in row["mean"]]
    if not cis or any(c is None for c in cis):
        return None
    if len(cis) == 1:
        return cis[0][0], cis[0][1]
    mean = _mean_all(row)
    half = sum(((hi - lo) / 2) ** 2 for lo, hi in cis) ** 0.5 / len(cis)
    return mean - half, mean + half


def _chance_all(rows: list[dict[str, Any]], settings: list[str] | None = None) -> float | None:
    """The chance level shared by the cells (None when unknown or when cells differ)."""
    found = set()
    for r in rows:
        ch = r.get("chance") or {}
        keys = settings if settings is not None else list(r["mean"])
        vals = [ch.get(s) for s in keys if s in r["mean"]]
        if not vals or any(v is None for v in vals):
            return None
        found.add(round(sum(vals) / len(vals), 2))
    return found.pop() if len(found) == 1 else None


def sweep_figures(rows: list[dict[str, Any]], sweep: SweepConfig) -> dict[str, bytes]:
    """The paper's figures: held-out score vs number of tasks (one line per model), and CoT vs
    non-CoT finetuning on held-out direct and CoT evaluations (one panel group per model)."""
    from flanlab.reports.plots import bar_chart, line_chart

    figures: dict[str, bytes] = {}
    tasks = list(dict.fromkeys(sweep.axes.tasks))
    # The scaling plot uses non-CoT cells when the grid has both (the CoT effect has its own plot).
    use_cot = False if False in sweep.axes.cot else sweep.axes.cot[0]
    series, errors = {}, {}
    for model in sweep.axes.models:
        picked = {r["tasks"]: r for r in rows if r["model"] == model and (r["cot"] == use_cot or r["tasks"] == 0)}
        series[model] = [_mean_all(picked[t]) if t in picked else None for t in tasks]
        errors[model] = [_mean_all_ci(picked[t]) if t in picked else None for t in tasks]
    if any(v is not None for vals in series.values() for v in vals):
        x = list(range(len(tasks)))
        figures["scaling_tasks.png"] = line_chart(
            x, series, title="Held-out score vs number of finetuning tasks (95 % intervals)",
            xlabel="finetuning tasks", ylabel="held-out score (%)", xticklabels=[_tasks_label(t) for t in tasks],
            errors=errors, chance=_chance_all(rows))
    if {True, False} <= set(sweep.axes.cot):
        most = tasks[-1]
        settings = sorted({s for r in rows for s in r["mean"]}, key=lambda s: (s != "direct", s))
        groups, by_cot, cis = [], {False: [], True: []}, {False: [], True: []}
        chance: list[float | None] = []
        for model in sweep.axes.models:
            for setting in settings:
                groups.append(f"{model}\n{setting} eval")
                chance.append(_chance_all([r for r in rows if r["model"] == model and r["tasks"] == most
                                           and setting in r["mean"]], [setting]))
                for cot in (False, True):
                    row = next((r for r in rows if (r["model"], r["tasks"], r["cot"]) == (model, most, cot)), None)
                    by_cot[cot].append(None if row is None else row["mean"].get(setting))
                    ci = None if row is None else (row.get("mean_ci95") or {}).get(setting)
                    cis[cot].append(None if ci is None else (ci[0], ci[1]))
        if any(v is not None for vals in by_cot.values() for v in vals):
            labels = {False: "finetuned without CoT", True: "finetuned with CoT"}
            figures["cot_vs_direct.png"] = bar_chart(
                groups, {labels[c]: by_cot[c] for c in (False, True)},
                title=f"CoT vs non-CoT finetuning ({_tasks_label(most)} tasks; 95 % intervals)",
                ylabel="held-out score (%)", errors={labels[c]: cis[c] for c in (False, True)}, chance=chance)
    return figures


def _fmt(v: float | None) -> str:
    return "–" if v is None else f"{v:.1f}"


def _fmt_ci(row: dict[str, Any], setting: str) -> str:
    """``"45.0 [31.2, 59.6]"``: a cell's mean score of one setting with its interval."""
    value = row["mean"].get(setting)
    ci = (row.get("mean_ci95") or {}).get(setting)
    return _fmt(value) + ("" if value is None or ci is None else f" [{ci[0]:.1f}, {ci[1]:.1f}]")


def _items(row: dict[str, Any]) -> str:
    ns = [n for n in (row.get("n") or {}).values() if n is not None]
    return str(sum(ns)) if ns and len(ns) == len(row.get("n") or {}) else "?"


def run_sweep(sweep: SweepConfig, sweep_path: Path, run: RunDir, *, jobs_dir: Path | None = None) -> dict[str, Any]:
    """Run every cell (skipping finished stages), or only write job scripts; then collect and plot."""
    from flanlab.core.io import atomic_write_bytes
    from flanlab.experiments.pipeline import run_pipeline
    from flanlab.reports.build import write_report
    from flanlab.reports.document import Document, Heading, Image, Table, Text

    cells = plan_cells(sweep, sweep_path)
    run.write_config(sweep)
    if jobs_dir is not None:
        scripts = emit_jobs(cells, run.path, jobs_dir, sweep.data_dir)
        log.info("wrote %d job scripts into %s; run them, then rerun this sweep to collect and plot",
                 len(scripts), jobs_dir)
        return {"jobs": [str(s) for s in scripts]}
    for i, cell in enumerate(cells, 1):
        log.info("sweep cell %d/%d: %s", i, len(cells), cell.name)
        run_pipeline(cell.config, RunDir.create(str(run.path / "cells" / cell.name)), cell.config_path)
    rows = collect(cells, run.path)
    figures = sweep_figures(rows, sweep)
    for name, png in figures.items():
        atomic_write_bytes(run.path / "plots" / name, png)
    results = {"name": sweep.name, "cells": rows, "figures": sorted(figures)}
    run.write_results(results)
    settings = sorted({s for r in rows for s in r["mean"]})
    doc = Document(f"flanlab sweep: {sweep.name}")
    doc.add(Text(f"{len(rows)} of {len(cells)} cells finished: models {', '.join(sweep.axes.models)}; "
                 f"tasks {', '.join(_tasks_label(t) for t in sweep.axes.tasks)}; CoT {sweep.axes.cot}."))
    doc.add(Heading("Cells"))
    doc.add(Text("Held-out score per cell: the mean over the benchmarks of each setting, in percent, with its "
                 "95 % interval (one benchmark: its Wilson or bootstrap interval; several: their half-widths "
                 "combined as independent errors); items: the evaluated items of the cell."))
    doc.add(Table(["cell", "model", "tasks", "CoT data", "items", *[f"{s} (mean % [95 % CI])" for s in settings]],
                  [[r["cell"], r["model"], _tasks_label(r["tasks"]), "yes" if r["cot"] else "no", _items(r),
                    *[_fmt_ci(r, s) for s in settings]] for r in rows]))
    captions = {"scaling_tasks.png": "Held-out score vs number of finetuning tasks, one line per model",
                "cot_vs_direct.png": "CoT vs non-CoT finetuning on held-out direct and CoT evaluations"}
    for name, png in figures.items():
        doc.add(Heading(captions[name]))
        doc.add(Image(name, png, captions[name]))
    write_report(doc, run.path)
    lines = ["Mean held-out score per setting in percent [95 % interval]; items: evaluated items.", "",
             "| cell | items | " + " | ".join(settings) + " |", "| --- | ---: |" + " --- |" * len(settings)]
    lines += [f"| {r['cell']} | {_items(r)} | " + " | ".join(_fmt_ci(r, s) for s in settings) + " |" for r in rows]
    atomic_write_text(run.path / "results.md", "\n".join(lines) + "\n")
    return results
