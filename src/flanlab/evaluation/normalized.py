"""The paper's normalized average: each of six scores normalized against its random baseline
(``100 * (s - r) / (100 - r)``), then macro-averaged (baselines and sources in baselines.yaml)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flanlab.evaluation.specs import load_baselines

__all__ = ["COLUMNS", "normalize", "normalized_average"]


def normalize(score: float, random: float) -> float:
    """``score`` (percent) rescaled so that the random baseline is 0 and a perfect score 100."""
    return 100.0 * (score - random) / (100.0 - random)


def _columns() -> list[tuple[str, str]]:
    return [(c.benchmark, c.strategy) for c in load_baselines()]


COLUMNS = _columns()


def normalized_average(scores: Mapping[tuple[str, str], float | None]) -> dict[str, Any]:
    """The normalized average of ``{(benchmark, strategy): score}`` over the six paper columns.

    ``value`` is None unless all six are present; ``partial`` averages those that are.
    """
    cols, present = [], []
    for c in load_baselines():
        s = scores.get((c.benchmark, c.strategy))
        norm = None if s is None else normalize(s, c.random)
        cols.append({"benchmark": c.benchmark, "strategy": c.strategy, "score": s, "random": c.random,
                     "normalized": norm, "baseline_source": c.source})
        if norm is not None:
            present.append(norm)
    complete = len(present) == len(cols)
    return {
        "value": sum(present) / len(present) if complete else None,
        "partial": sum(present) / len(present) if present else None,
        "columns_present": len(present),
        "columns": cols,
    }
