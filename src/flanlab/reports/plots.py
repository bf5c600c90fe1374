"""Report plots as PNG bytes (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence

__all__ = ["bar_chart", "curve_chart", "line_chart"]

Errors = Mapping[str, Sequence["tuple[float, float] | None"]]

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
    errors: Errors | None = None,
    chance: Sequence[float | None] | None = None,
) -> bytes:
    """Grouped bars: one group per label in ``groups``, one bar per series (e.g. before / after).

    ``errors``: per series, a ``(low, high)`` interval per group (drawn as error bars); ``chance``:
    per group, the chance level (a dashed line across the group)."""
    plt = _pyplot()
    n_series = max(1, len(series))
    width = 0.8 / n_series
    size = (7.5, max(2.5, 0.32 * len(groups) * max(1, n_series / 2) + 1)) if horizontal else (
        max(5.0, 0.9 * len(groups) * max(1, n_series / 2) + 2), 4.0)
    fig, ax = plt.subplots(figsize=size)
    for i, (name, values) in enumerate(series.items()):
        pos = [g + (i - (n_series - 1) / 2) * width for g in range(len(groups))]
        vals = [float("nan") if v is None else v for v in values]
        err = _yerr(vals, (errors or {}).get(name))
        if horizontal:
            ax.barh(pos, vals, height=width, label=name, xerr=err, capsize=3 if err is not None else 0)
        else:
            ax.bar(pos, vals, width=width, label=name, yerr=err, capsize=3 if err is not None else 0)
    shown = False
    for g, level in enumerate(chance or []):
        if level is None:
            continue
        span = (g - 0.45, g + 0.45)
        style = {"colors": "black", "linestyles": "dashed", "linewidth": 1.2, "label": None if shown else "chance"}
        (ax.vlines(level, *span, **style) if horizontal else ax.hlines(level, *span, **style))
        shown = True
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
    if len(series) > 1 or shown:
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
    errors: Errors | None = None,
    chance: float | None = None,
) -> bytes:
    """One line with markers per series over shared ``x`` positions (the paper's scaling plots);
    ``errors`` as in :func:`bar_chart`, ``chance`` a dashed horizontal line."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.0, 4.0))
    # Distinct markers, dashes and shrinking sizes keep equal lines visible on top of each other.
    styles = [("o", "-"), ("s", "--"), ("^", ":"), ("D", "-.")]
    for i, (name, values) in enumerate(series.items()):
        ivs = list((errors or {}).get(name) or [None] * len(values))
        pts = [(xi, v, iv) for xi, v, iv in zip(x, values, ivs, strict=True) if v is not None]
        marker, dash = styles[i % len(styles)]
        if pts:
            err = _yerr([p[1] for p in pts], [p[2] for p in pts]) if errors else None
            # With error bars, series at the same x are nudged apart so their bars stay readable.
            shift = (i - (len(series) - 1) / 2) * 0.06 if errors else 0.0
            ax.errorbar([p[0] + shift for p in pts], [p[1] for p in pts], yerr=err, capsize=3, marker=marker,
                        linestyle=dash, markersize=max(4, 10 - 2 * i), linewidth=max(1.2, 2.5 - 0.5 * i),
                        label=name)
    if chance is not None:
        ax.axhline(chance, color="black", linestyle="dashed", linewidth=1.2, label="chance")
    ax.set_xticks(list(x), list(xticklabels) if xticklabels is not None else [str(v) for v in x])
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    if series:
        ax.legend(fontsize=8)
    return _png(fig)


def curve_chart(
    series: Mapping[str, tuple[Sequence[float], Sequence[float]]],
    *,
    title: str,
    xlabel: str = "step",
    ylabel: str = "loss",
) -> bytes:
    """Curves with their own x values, e.g. training loss every few steps and held-out loss at
    each evaluation."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.0, 3.6))
    for name, (xs, ys) in series.items():
        if len(xs):
            ax.plot(list(xs), list(ys), marker="o" if len(xs) < 30 else None, markersize=4, label=name)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    if series:
        ax.legend(fontsize=8)
    return _png(fig)


def _yerr(values: Sequence[float], ivs: Sequence[tuple[float, float] | None] | None):
    """``[[below], [above]]`` distances for matplotlib from absolute intervals (0 where unknown)."""
    if not ivs or all(iv is None for iv in ivs):
        return None
    below, above = [], []
    for v, iv in zip(values, ivs, strict=True):
        ok = iv is not None and v == v  # v == v: not NaN
        below.append(max(0.0, v - iv[0]) if ok else 0.0)
        above.append(max(0.0, iv[1] - v) if ok else 0.0)
    return [below, above]
