"""The parts of a pipeline run's report that tell what happened: before/after on the same items
(paired intervals), the training and held-out loss curves, the mixture's composition, and a few
held-out prompts with the base and finetuned outputs side by side."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from flanlab.evaluation.stats import PairedDiff, paired_difference
from flanlab.reports.collect import RunSummary
from flanlab.reports.document import Heading, Image, Pre, Table, Text
from flanlab.reports.plots import curve_chart

__all__ = ["examples_section", "mixture_section", "paired", "paired_by_subtask", "training_section"]

Block = Heading | Text | Table | Image | Pre


def _pairs(before: RunSummary, after: RunSummary, bench: str, setting: str,
           subtask: str | None = None) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """``{subtask: values}`` of the items both evaluations scored, in the same order."""
    b = {(r["subtask"], r["index"]): float(r.get("correct", 0.0)) for r in before.records(bench, setting)}
    a = {(r["subtask"], r["index"]): float(r.get("correct", 0.0)) for r in after.records(bench, setting)}
    keys = sorted(k for k in set(b) & set(a) if subtask is None or k[0] == subtask)
    bb: dict[str, list[float]] = {}
    aa: dict[str, list[float]] = {}
    for k in keys:
        bb.setdefault(k[0], []).append(b[k])
        aa.setdefault(k[0], []).append(a[k])
    return bb, aa


def paired(before: RunSummary, after: RunSummary, bench: str, setting: str) -> PairedDiff | None:
    """after − before (percent) on the items both evaluations of ``bench``/``setting`` scored, or
    None without per-item records. Averaged over subtasks like the score, unless the score is the
    mean over items (MMLU)."""
    from flanlab.evaluation.results import is_macro

    bb, aa = _pairs(before, after, bench, setting)
    if not bb:
        return None
    score = before._aggregate(bench, setting).get("score")
    n_all = len(before.records(bench, setting))
    # The item-weighted (MMLU) score is recognised on the before run's own records.
    macro = True if score is None else is_macro(score, _values(before.records(bench, setting)))
    d = paired_difference(bb, aa, macro=macro).scaled(100.0)
    if d.n < n_all:
        return PairedDiff(d.before, d.after, d.diff, d.low, d.high, d.n, d.method + f" ({d.n} of {n_all} items paired)",
                          d.improved, d.worsened, d.mcnemar_p)
    return d


def paired_by_subtask(before: RunSummary, after: RunSummary, bench: str, setting: str) -> dict[str, PairedDiff]:
    """:func:`paired` per subtask."""
    bb, aa = _pairs(before, after, bench, setting)
    return {s: paired_difference(bb[s], aa[s]).scaled(100.0) for s in bb}


def _values(records: list[dict[str, Any]]) -> dict[str, list[float]]:
    from flanlab.evaluation.results import values_by_subtask

    return values_by_subtask(records)


# ---------------------------------------------------------------------------------------------
# training


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    from flanlab.core.io import read_jsonl

    return [r for r in read_jsonl(path) if isinstance(r, dict)] if path.is_file() else []


def training_section(run: RunSummary) -> list[Block]:
    """Training and held-out loss curves from ``train/metrics.jsonl`` of a pipeline run, or the
    ``metrics.jsonl`` of a `flanlab train` run (empty without either)."""
    path = run.path / "train" / "metrics.jsonl"
    path = path if path.is_file() else run.path / "metrics.jsonl"
    rows = _read_jsonl(path)
    # A resumed run may log a step twice: the last line of a step wins.
    train = {r["step"]: r["loss"] for r in rows if isinstance(r.get("loss"), (int, float)) and "step" in r}
    held = {r["step"]: r["heldout_loss"] for r in rows
            if isinstance(r.get("heldout_loss"), (int, float)) and "step" in r}
    if not train and not held:
        return []
    series = {}
    if train:
        series["training loss (mean over the steps since the last point)"] = (sorted(train),
                                                                               [train[k] for k in sorted(train)])
    if held:
        series["held-out loss (mixture examples not trained on)"] = (sorted(held), [held[k] for k in sorted(held)])
    out: list[Block] = [Heading("Training and held-out loss")]
    facts = []
    if train:
        steps = sorted(train)
        facts.append(f"training loss {train[steps[0]]:.3f} at step {steps[0]} → {train[steps[-1]]:.3f} at step {steps[-1]}")
    if held:
        steps = sorted(held)
        change = held[steps[-1]] - held[steps[0]]
        facts.append(f"held-out loss {held[steps[0]]:.3f} at step {steps[0]} → {held[steps[-1]]:.3f} at step "
                     f"{steps[-1]} ({'fell' if change < 0 else 'did not fall'}: {change:+.3f})")
    else:
        facts.append("no held-out loss was logged (train.data.heldout_fraction is 0)")
    out.append(Text(f"From {path.relative_to(run.path)}: " + "; ".join(facts) + ". Losses are mean cross-entropy per target "
                    "token; the training loss is averaged over the steps since the previous point."))
    out.append(Image("loss.png", curve_chart(series, title="Training and held-out loss"), "Loss per step"))
    return out


# ---------------------------------------------------------------------------------------------
# mixture


def mixture_section(run: RunSummary, top: int = 10) -> list[Block]:
    """The mixture's composition by submixture and its largest tasks (``mixture/manifest.json``)."""
    path = run.path / "mixture" / "manifest.json"
    if not path.is_file():
        return []
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError:
        return [Heading("Mixture"), Text(f"{path}: not valid JSON, composition not shown.")]
    subs = manifest.get("submixtures") or {}
    tasks = manifest.get("tasks") or {}
    total = manifest.get("examples")
    out: list[Block] = [Heading("Mixture composition"),
                        Text(f"{total} training examples from {len(tasks)} tasks in {len(subs)} submixtures "
                             "(mixture/manifest.json).")]
    out.append(Table(["submixture", "tasks", "examples", "share"], [
        [name, str(s.get("tasks", "–")), str(s.get("examples", "–")), _pct(s.get("share"))]
        for name, s in subs.items()], caption="By submixture"))
    ranked = sorted(tasks.items(), key=lambda kv: (-kv[1].get("examples", 0), kv[0]))[:top]
    out.append(Table(["task", "submixture", "examples", "share", "epochs"], [
        [name, str(t.get("submixture", "–")), str(t.get("examples", "–")), _pct(t.get("share")),
         _num(t.get("epochs"), ".3g")] for name, t in ranked],
        caption=f"The {len(ranked)} largest of {len(tasks)} tasks"))
    return out


def _pct(v: Any) -> str:
    return f"{100 * v:.1f}%" if isinstance(v, (int, float)) else "–"


def _num(v: Any, spec: str) -> str:
    return format(v, spec) if isinstance(v, (int, float)) and not isinstance(v, bool) else "–"


# ---------------------------------------------------------------------------------------------
# examples


def _query(prompt: str, limit: int = 700) -> str:
    """The held-out question of a few-shot prompt: after the last blank line that starts a question
    block, else the prompt's tail."""
    for sep in ("\n\nQ: ", "\n\nQuestion: ", "\n\n"):
        if sep in prompt:
            tail = prompt[prompt.rindex(sep) + 2:]
            if tail.strip():
                return tail if len(tail) <= limit else "…" + tail[-limit:]
    return prompt if len(prompt) <= limit else "…" + prompt[-limit:]


def _show(text: Any, limit: int = 200) -> str:
    s = str(text) if text is not None else "(none)"
    s = s.replace("\n", "⏎")
    return s if len(s) <= limit else s[:limit] + "…"


def examples_section(before: RunSummary, after: RunSummary, keys: list[tuple[str, str]], per: int = 4,
                     names: tuple[str, str] = ("before (base model)", "after (finetuned)")) -> list[Block]:
    """A few held-out prompts with the two models' outputs side by side (``names``: their column titles).

    Chosen by a fixed rule, not by outcome alone: for each subtask in order, its first item (lowest
    index) whose answer changed between the two models, else its first item; at most ``per`` per
    benchmark/strategy."""
    out: list[Block] = []
    for bench, setting in keys:
        b = {(r["subtask"], r["index"]): r for r in before.records(bench, setting)}
        a = {(r["subtask"], r["index"]): r for r in after.records(bench, setting)}
        common = sorted(set(b) & set(a))
        if not common:
            continue
        chosen = []
        for sub in dict.fromkeys(k[0] for k in common):
            items = [k for k in common if k[0] == sub]
            changed = [k for k in items if b[k].get("answer") != a[k].get("answer")]
            chosen.append((changed or items)[0])
            if len(chosen) == per:
                break
        if not out:
            pair = names == ("before (base model)", "after (finetuned)")
            out += [Heading("Held-out prompts, before and after" if pair else "Held-out prompts, side by side"),
                    Text("Rule: for each subtask, the first item (lowest index) whose answer changed between the "
                         "two models, else its first item. Outputs are cut at the stop "
                         "sequences; ⏎ marks a line break.")]
        for k in chosen:
            rb, ra = b[k], a[k]
            label = f"{bench} ({setting or 'direct'}) / {k[0]} #{k[1]}"
            out.append(Heading(label, level=3))
            prompt = rb.get("prompt") or rb.get("context") or ""
            out.append(Pre(_query(str(prompt))))

            def cells(r: dict[str, Any]) -> list[str]:
                outs = r.get("outputs") or []
                return [_show(outs[0] if outs else None), _show(r.get("answer")),
                        "right" if r.get("correct") else "wrong"]

            cb, ca = cells(rb), cells(ra)
            target = rb.get("target")
            out.append(Table(["", *names], [
                ["output", cb[0], ca[0]], ["answer", cb[1], ca[1]],
                ["scored", cb[2], ca[2]], ["target", _show(target), _show(target)]]))
    return out


# ---------------------------------------------------------------------------------------------
# a pipeline run's own results.json / results.md


def before_after(run_dir: str | Path) -> dict[str, Any]:
    """A pipeline run's headline numbers as its ``results.json`` keeps them: ``stages`` ({stage:
    {key: score}}, as before), ``stats`` ({stage: {key: {n, ci95, ci_method, chance}}}) and
    ``paired`` ({key: after − before on the same items, with its 95 % interval, McNemar p,
    ``excludes_zero`` and ``significant``}); keys are ``bench`` or ``bench/strategy``."""
    from flanlab.reports.collect import EVAL_STAGES, load_run

    run_dir = Path(run_dir)
    out: dict[str, Any] = {"stages": {}, "stats": {}}
    loaded = {}
    for stage in EVAL_STAGES:
        if (run_dir / stage / "results.json").is_file():
            sub = loaded[stage] = load_run(run_dir / stage)
            heads = sub.headline()
            out["stages"][stage] = {_key(*k): v for k, v in heads.items()}
            out["stats"][stage] = {}
            for k in heads:
                st = sub.stats(*k)
                out["stats"][stage][_key(*k)] = {"n": st.n, "ci95": None if st.ci95 is None else
                                                 [round(st.ci95[0], 2), round(st.ci95[1], 2)],
                                                 "ci_method": st.method, "chance": st.chance}
    if len(loaded) == 2:
        b, a = loaded["eval_before"], loaded["eval_after"]
        out["paired"] = {}
        for k in sorted(set(b.headline()) & set(a.headline())):
            d = paired(b, a, *k)
            if d is not None:
                out["paired"][_key(*k)] = d.to_dict()
    return out


def _key(bench: str, setting: str) -> str:
    return f"{bench}/{setting}" if setting else bench


def before_after_markdown(summary: dict[str, Any]) -> str:
    """The table a pipeline run prints: each score with [95 % interval] and n, the chance level, and
    after − before on the same items with its interval and verdict."""
    stages = summary["stages"]
    stats = summary.get("stats", {})
    paired_rows = summary.get("paired") or {}
    keys = sorted({k for v in stages.values() for k in v})
    cols = list(stages)
    head = ["benchmark", "chance", *[c.removeprefix("eval_") for c in cols]] + (["after − before"] if paired_rows else [])
    lines = ["| " + " | ".join(head) + " |", "| --- |" + " ---: |" * (len(head) - 1)]
    for k in keys:
        chance = next((stats[c][k]["chance"] for c in cols if stats.get(c, {}).get(k, {}).get("chance") is not None),
                      None)
        cells = []
        for c in cols:
            if k not in stages[c]:
                cells.append("–")
                continue
            st = stats.get(c, {}).get(k, {})
            ci = st.get("ci95")
            cells.append(f"{stages[c][k]:.1f}" + (f" [{ci[0]:.1f}, {ci[1]:.1f}]" if ci else "")
                         + (f" n={st['n']}" if st.get("n") is not None else " (n unknown)"))
        row = [k, "–" if chance is None else f"{chance:.1f}", *cells]
        if paired_rows:
            d = paired_rows.get(k)
            row.append("–" if d is None else _paired_text(d))
        lines.append("| " + " | ".join(row) + " |")
    lines += ["", "Percent; [95 % interval] (Wilson, or bootstrap for non-binary scores); after − before on the same "
              "items: Newcombe's paired interval with the exact McNemar test (or a paired bootstrap). A change is "
              "claimed only when the interval excludes 0 and McNemar agrees (p < 0.05)."]
    return "\n".join(lines) + "\n"


def _paired_text(d: dict[str, Any]) -> str:
    lo, hi = d["ci95"]
    text = f"{d['diff']:+.1f} [{lo:+.1f}, {hi:+.1f}]"
    if d.get("mcnemar_p") is not None:
        text += f", McNemar p={d['mcnemar_p']:.3g}"
    if d["significant"]:
        verdict = "gain" if d["diff"] > 0 else "loss"
    elif d["excludes_zero"]:
        verdict = "borderline, not claimed"
    else:
        verdict = "no clear change"
    return f"{text}: {verdict}"
