"""Composition of a finished mixture: a table per task and a bar chart of shares."""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["composition_rows", "markdown_table", "plot_shares"]


def composition_rows(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per task, largest share first: task, submixture, category, examples, share and mean
    input/target length (tokens when the manifest has token statistics, else words)."""
    rows = []
    unit = "tokens" if manifest.get("tokenizer") else "words"
    for name, t in manifest["tasks"].items():
        lengths = t.get("lengths", {})
        rows.append({
            "task": name, "submixture": t["submixture"], "category": t.get("category") or "-",
            "examples": t["examples"], "share": t["share"], "target_share": t.get("target_share", 0.0),
            f"mean_input_{unit}": lengths.get(f"input_{unit}", {}).get("mean", 0.0),
            f"mean_target_{unit}": lengths.get(f"target_{unit}", {}).get("mean", 0.0),
        })
    rows.sort(key=lambda r: (-r["examples"], r["task"]))
    return rows


def markdown_table(rows: list[dict[str, Any]], limit: int | None = None) -> str:
    """The rows as a markdown table (shares in percent)."""
    if not rows:
        return "(empty)\n"
    cols = list(rows[0])
    lines = ["| " + " | ".join(cols) + " |", "| " + " | ".join("---" for _ in cols) + " |"]
    for r in rows[:limit]:
        cells = []
        for c in cols:
            v = r[c]
            cells.append(f"{100 * v:.2f}%" if "share" in c else f"{v:.1f}" if isinstance(v, float) else str(v))
        lines.append("| " + " | ".join(cells) + " |")
    if limit is not None and len(rows) > limit:
        lines.append(f"| … {len(rows) - limit} more | " + " | ".join("" for _ in cols[1:]) + " |")
    return "\n".join(lines) + "\n"


def plot_shares(manifest: dict[str, Any], path: str | Path, top_categories: int = 12) -> Path:
    """A PNG with two bar charts: share by submixture, and share by category (top ones)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    subs = {name: s["share"] for name, s in manifest["submixtures"].items()}
    cats: dict[str, float] = {}
    for t in manifest["tasks"].values():
        # BIG-bench categories list several keywords; the first one groups tasks best.
        key = (t.get("category") or "(none)").split(",")[0].strip()
        cats[key] = cats.get(key, 0.0) + t["share"]
    cat_items = sorted(cats.items(), key=lambda kv: -kv[1])
    if len(cat_items) > top_categories:
        rest = sum(v for _, v in cat_items[top_categories:])
        cat_items = [*cat_items[:top_categories], (f"other ({len(cats) - top_categories})", rest)]

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5), gridspec_kw={"width_ratios": [1, 2]})
    for ax, items, title in ((axes[0], list(subs.items()), "share by submixture"),
                             (axes[1], cat_items, "share by category")):
        labels = [k for k, _ in items]
        values = [100 * v for _, v in items]
        bars = ax.barh(labels[::-1], values[::-1], color="#4C72B0")
        ax.bar_label(bars, labels=[f"{v:.1f}%" for v in values[::-1]], padding=2, fontsize=8)
        ax.set_xlabel("% of examples")
        ax.set_title(title)
        ax.set_xlim(0, max(values + [1]) * 1.2)
    fig.suptitle(f"{manifest['name']}: {manifest['examples']:,} examples, {len(manifest['tasks'])} tasks")
    fig.tight_layout()
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(path)  # atomic: a reader never sees half a PNG
    return path
