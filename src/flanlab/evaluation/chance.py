"""Chance level: the expected score of a uniform random guess, per example and per subtask.

- MMLU: 1 / the number of choices of the question (25 %);
- BBH: 1 / the number of ``(A)``-style options listed in the input; without listed options,
  1 / the number of distinct targets of the subtask when it has at most three (True/False,
  Yes/No, valid/invalid), else 0 (free-form answers: dyck_languages, word_sorting, counting, ...);
  the same rule as the paper's BBH random baseline in ``data/baselines.yaml``;
- generation benchmarks (GSM8K, MGSM, TyDiQA): 0, a guess essentially never matches.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from flanlab.evaluation.benchmarks import Benchmark, Example

__all__ = ["example_chance", "subtask_chance"]

_OPTION = re.compile(r"^\([A-R]\)", re.M)
# A subtask with at most this many distinct targets and no listed options is a label task.
_MAX_LABELS = 3


def example_chance(bench: Benchmark, example: Example) -> float:
    """The chance of a uniform guess being right on ``example`` (a fraction)."""
    family = bench.spec.name
    if family == "mmlu":
        return 1.0 / max(1, len(example.fields.get("choices") or ()) or 4)
    if family == "bbh":
        k = len(_OPTION.findall(str(example.fields.get("input", ""))))
        if k:
            return 1.0 / k
        labels = {e.target.strip() for e in bench.examples(example.subtask)}
        return 1.0 / len(labels) if len(labels) <= _MAX_LABELS else 0.0
    return 0.0


def subtask_chance(bench: Benchmark, subtask: str, indices: Iterable[int]) -> float:
    """Mean chance (a fraction) over the examples ``indices`` of ``subtask`` (the items scored)."""
    by_index = {e.index: e for e in bench.examples(subtask)}
    values = [example_chance(bench, by_index[i]) for i in indices if i in by_index]
    return sum(values) / len(values) if values else 0.0
