"""The paper's normalized average, its baselines, and the shipped data files."""

from __future__ import annotations

import json
import re

import pytest

from flanlab.evaluation.normalized import normalize, normalized_average
from flanlab.evaluation.specs import (
    SpecError,
    load_baselines,
    load_benchmark_spec,
    load_filters,
    load_strategies,
    load_table5,
)

COLS = [("mmlu", "direct"), ("mmlu", "cot"), ("bbh", "direct"), ("bbh", "cot"), ("tydiqa", "direct"),
        ("mgsm", "cot")]


def _row(model: str) -> list[float | None]:
    return next(r.scores for r in load_table5().rows if r.model == model)


@pytest.mark.parametrize("model", ["Flan-T5-Large", "Flan-T5-XL", "Flan-T5-XXL"])
def test_reproduces_the_papers_normalized_average(model):
    *scores, paper = _row(model)
    got = normalized_average(dict(zip(COLS, scores, strict=True)))["value"]
    # The six inputs are rounded to 0.1: together they move the average by at most
    # (2*0.05/0.75 + 2*0.05/0.7375 + 0.05 + 0.05) / 6 = 0.062, plus 0.05 for the printed average.
    assert got == pytest.approx(paper, abs=0.112)
    if model == "Flan-T5-XL":
        assert 18.99 <= got <= 19.15  # the paper prints 19.1


def test_partial_average_is_marked():
    got = normalized_average({("mmlu", "direct"): 40.0})
    assert got["value"] is None and got["columns_present"] == 1
    assert got["partial"] == pytest.approx(normalize(40.0, 25.0)) == pytest.approx(20.0)


def test_bbh_random_baseline_matches_the_task_files(shared_data):
    """The documented BBH baseline: uniform guessing over listed options / label values, 0 free-form."""
    total = weighted = 0.0
    for path in sorted((shared_data / "bbh/tasks").glob("*.json")):
        examples = json.loads(path.read_text())["examples"]
        labels = {e["target"] for e in examples}
        for e in examples:
            k = len(re.findall(r"^\([A-R]\)", e["input"], re.M))
            if k:
                weighted += 1 / k
            elif len(labels) <= 3:
                weighted += 1 / len(labels)
            total += 1
    bbh = [c.random for c in load_baselines() if c.benchmark == "bbh"]
    assert bbh == [pytest.approx(100 * weighted / total, abs=0.01)] * 2


def test_shipped_data_files_validate():
    assert set(load_strategies()) >= {"direct", "cot", "zs_cot", "self_consistency"}
    assert load_strategies()["self_consistency"].companion == "cot"
    assert {"answer_is", "last_number"} <= set(load_filters())
    for name in ("mmlu", "bbh", "gsm8k", "mgsm", "tydiqa"):
        assert load_benchmark_spec(name).name == name
    assert len(load_table5().rows) == 11 and "2210.11416" in load_table5().source


def test_bad_strategy_file_names_file_and_key(tmp_path):
    bad = tmp_path / "strategies.yaml"
    bad.write_text("sc:\n  style: cot\n  samples: 4\n", encoding="utf-8")
    with pytest.raises(SpecError, match=r"strategies.yaml: key sc.*temperature"):
        load_strategies(bad)
    bad.write_text("x:\n  style: sideways\n", encoding="utf-8")
    with pytest.raises(SpecError, match=r"strategies.yaml: key x.style"):
        load_strategies(bad)


def test_bad_filter_file_names_file_and_key(tmp_path):
    bad = tmp_path / "filters.yaml"
    bad.write_text("f:\n  steps:\n    - regex: '('\n", encoding="utf-8")
    with pytest.raises(SpecError, match=r"filters.yaml: key f.steps.0.*invalid regex"):
        load_filters(bad)
