"""Report plots as PNG bytes (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence

__all__ = ["bar_chart", "line_chart"]

# Sizes chosen so a report page shows a plot without scrolling; 110 dpi keeps PNGs small.
_DPI = 110


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=_DPI, bbox_inches="tight")
    _pyplot().close(fig)
    return buf.getvalue()


def bar_chart(
    groups: Sequence[str],
    series: Mapping[str, Sequence[float | None]],
    *,
    title: str,
    ylabel: str = "score",
    horizontal: bool = False,
) -> bytes:
    """Grouped bars: one group per label in ``groups``, one bar per series (e.g. before / after)."""
    plt = _pyplot()
    n_series = max(1, len(series))
    width = 0.8 / n_series
    size = (7.5, max(2.5, 0.32 * len(groups) * max(1, n_series / 2) + 1)) if horizontal else (
        max(5.0, 0.9 * len(groups) * max(1, n_series / 2) + 2), 4.0)
    fig, ax = plt.subplots(figsize=size)
    for i, (name, values) in enumerate(series.items()):
        pos = [g + (i - (n_series - 1) / 2) * width for g in range(len(groups))]
        vals = [float("nan") if v is None else v for v in values]
        if horizontal:
            ax.barh(pos, vals, height=width, label=name)
        else:
            ax.bar(pos, vals, width=width, label=name)
    if horizontal:
        ax.set_yticks(range(len(groups)), groups, fontsize=8)
        ax.invert_yaxis()
        ax.set_xlabel(ylabel)
        ax.grid(axis="x", alpha=0.3)
    else:
        ax.set_xticks(range(len(groups)), groups, rotation=20 if len(groups) > 4 else 0, ha="right"
                      if len(groups) > 4 else "center")
        ax.set_ylabel(ylabel)
        ax.grid(axis="y", alpha=0.3)
    ax.set_title(title)
    if len(series) > 1:
        # Outside the axes: inside, the legend hides the tallest bars.
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    if len(groups) == 1 and not horizontal:
        ax.set_xlim(-1, 1)  # one group: keep its bars from filling the whole figure
    return _png(fig)


def line_chart(
    x: Sequence[float],
    series: Mapping[str, Sequence[float | None]],
    *,
    title: str,
    xlabel: str,
    ylabel: str = "held-out score",
    xticklabels: Sequence[str] | None = None,
) -> bytes:
    """One line with markers per series over shared ``x`` positions (the paper's scaling plots)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.0, 4.0))
    # Distinct markers, dashes and shrinking sizes keep equal lines visible on top of each other.
    styles = [("o", "-"), ("s", "--"), ("^", ":"), ("D", "-.")]
    for i, (name, values) in enumerate(series.items()):
        pts = [(xi, v) for xi, v in zip(x, values, strict=True) if v is not None]
        marker, dash = styles[i % len(styles)]
        if pts:
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker=marker, linestyle=dash,
                    markersize=max(4, 10 - 2 * i), linewidth=max(1.2, 2.5 - 0.5 * i), label=name)
    ax.set_xticks(list(x), list(xticklabels) if xticklabels is not None else [str(v) for v in x])
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    if series:
        ax.legend(fontsize=8)
    return _png(fig)
