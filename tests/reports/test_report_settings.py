"""Report rows are labelled with every evaluation strategy, ``direct_gen`` included."""

from __future__ import annotations

from flanlab.reports.collect import flatten_scores


def test_direct_gen_is_a_setting_not_a_subtask():
    results = {"model": "m", "scores": {"mmlu": {
        "direct": {"score": 30.0, "n": 4, "subtasks": {"astronomy": 30.0}},
        "direct_gen": {"score": 20.0, "n": 4, "subtasks": {"astronomy": 20.0}}}}}
    rows = {(s.benchmark, s.subtask, s.setting, s.value) for s in flatten_scores(results) if s.metric == "score"}
    assert ("mmlu", "", "direct_gen", 20.0) in rows and ("mmlu", "astronomy", "direct_gen", 20.0) in rows
    assert ("mmlu", "", "direct", 30.0) in rows
    assert not any("direct_gen" in sub for _, sub, _, _ in rows)
