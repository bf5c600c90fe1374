"""The lazy vLLM backend's missing-install error, and the scoring planner."""

from __future__ import annotations

import importlib.util
import sys

import pytest

from flanlab.core.errors import UserError
from flanlab.inference import ModelSpec, load_lm
from flanlab.inference.planning import group_rows, lcp, plan_rows


@pytest.mark.skipif(importlib.util.find_spec("vllm") is not None, reason="vLLM is installed here")
def test_vllm_backend_says_how_to_install(monkeypatch):
    with pytest.raises(UserError, match=r"pip install 'flanlab\[vllm\]'"):
        load_lm(ModelSpec(name="smollm2-135m", backend="vllm"))
    assert "vllm" not in sys.modules


def test_plan_rows_dedupes_prefix_rows():
    pairs = [((1, 2, 3), (4,)), ((1, 2, 3), (5,)), ((1, 2, 3), (4, 6, 7)), ((9,), (1, 2))]
    plan = plan_rows(pairs)
    # (1,2,3) is a prefix of (1,2,3,4,6): one row serves the three options
    assert plan.rows == [(1, 2, 3, 4, 6), (9, 1)]
    assert [(t.row, t.start, t.tokens) for t in plan.targets] == [
        (0, 2, (4,)), (0, 2, (5,)), (0, 2, (4, 6, 7)), (1, 0, (1, 2))]


def test_group_rows_shares_long_prefixes_only():
    subject_a = [tuple(range(100)) + (1000 + i, 7) for i in range(5)]
    subject_b = [tuple(range(10)) + tuple(range(500, 600)) + (2000 + i,) for i in range(4)]
    loner = [(42, 43)]
    rows = sorted(subject_a + subject_b + loner)
    groups = group_rows(rows, min_prefix=16, group_cost=32)
    by_prefix = {g.prefix_len: sorted(rows[r] for r in g.rows) for g in groups}
    assert sorted(by_prefix) == [0, 100, 110]
    assert by_prefix[100] == sorted(subject_a) and by_prefix[110] == sorted(subject_b)
    assert by_prefix[0] == loner
    assert lcp((1, 2, 3), (1, 2)) == 2
