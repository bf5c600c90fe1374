import random

import pytest

from flanlab.core.errors import UserError
from flanlab.mixture.lengths import LengthStats
from flanlab.mixture.mixture import Mixture, Stream, SubMixture
from flanlab.mixture.rates import canonical_submixture, flan2022, largest_remainder, proportional_weight
from flanlab.mixture.schedule import (
    select_indices,
    select_mask,
    shard_composition,
    shard_sizes,
    shuffle_buffer,
    stream_plan,
)


def st(task, sub, size, fmt="zs_opt", **kw):
    return Stream(task=task, format=fmt, submixture=sub, size=size, **kw)


def shares_by(mixture, key):
    out = {}
    for s, w in mixture.shares():
        out[key(s)] = out.get(key(s), 0.0) + w
    return out


def test_flan2022_constants_from_package_data():
    c = flan2022()
    assert c.rates == {"flan2021": 0.4, "t0": 0.32, "niv2": 0.2, "cot": 0.05, "dialog": 0.03,
                       "cot_ii": 0.015, "dialog_ii": 0.009, "bigbench": 0.2}
    assert c.caps == {"flan2021": 30000, "t0": 20000, "niv2": 5000, "cot": 100000, "dialog": 200000,
                      "cot_ii": 100000, "dialog_ii": 200000, "bigbench": 5000}
    # The inversion submixtures at 0.3 of their parent's rate (flan/v2 mixtures.py); BIG-bench apart.
    assert c.rates["cot_ii"] == pytest.approx(0.3 * c.rates["cot"])
    assert c.source_kinds["bigbench"] == "bigbench" and c.source_kinds["flan_cot_ii"] == "cot_ii"
    assert canonical_submixture("Muffin") == "flan2021" and canonical_submixture("T0-SF") == "t0"


def test_default_rates_renormalized_over_present_submixtures():
    m = Mixture("m", [st("a", "flan2021", 10), st("b", "cot", 10), st("c", "niv2", 10)])
    got = shares_by(m, lambda s: s.submixture)
    assert got == pytest.approx({"flan2021": 0.4 / 0.65, "cot": 0.05 / 0.65, "niv2": 0.2 / 0.65})
    assert sum(w for _, w in m.shares()) == pytest.approx(1.0)


def test_caps_limit_examples_proportional_weights():
    # NIv2's cap is 5,000: a 100k-example task weighs 5,000 against a 1,000-example one.
    m = Mixture("m", [st("big", "niv2", 100_000), st("small", "niv2", 1_000)])
    got = shares_by(m, lambda s: s.task)
    assert got == pytest.approx({"big": 5 / 6, "small": 1 / 6})
    # Overriding the cap in the config changes it.
    m.caps = {"niv2": None}
    assert shares_by(m, lambda s: s.task)["big"] == pytest.approx(100 / 101)


def test_temperature_flattens_weights():
    m = Mixture("m", [st("a", "cot", 400), st("b", "cot", 100)], temperature=2.0)
    assert shares_by(m, lambda s: s.task) == pytest.approx({"a": 2 / 3, "b": 1 / 3})
    assert proportional_weight(400, None, 2.0) == pytest.approx(20.0)


def test_formats_split_a_submixture_evenly():
    # zs_opt has two tasks and fs_opt one: each format still gets half of the submixture.
    m = Mixture("m", [st("a", "cot", 100, "zs_opt"), st("b", "cot", 300, "zs_opt"), st("a", "cot", 100, "fs_opt")])
    got = shares_by(m, lambda s: s.key)
    assert got == pytest.approx({"a/zs_opt": 0.125, "b/zs_opt": 0.375, "a/fs_opt": 0.5})


def test_fixed_weights_and_proportional_group_rates():
    m = Mixture("m", [st("a", "x", 10, weight=3), st("b", "y", 10_000, weight=1)], rule="fixed",
                submixture_rates="proportional")
    assert shares_by(m, lambda s: s.task) == pytest.approx({"a": 0.75, "b": 0.25})


def test_configured_rates_and_unknown_submixture():
    m = Mixture("m", [st("a", "custom", 10), st("b", "cot", 10)], submixture_rates={"custom": 0.15})
    assert shares_by(m, lambda s: s.task) == pytest.approx({"a": 0.75, "b": 0.25})
    with pytest.raises(UserError, match="no rate for submixture 'custom'"):
        Mixture("m", [st("a", "custom", 10)]).shares()


def test_submixture_member_gets_its_rate_and_keeps_inner_shares():
    inner = Mixture("inner", [st("x", "cot", 30), st("y", "cot", 10)])
    m = Mixture("outer", [st("a", "flan2021", 10), SubMixture(inner, rate=0.4)])
    got = shares_by(m, lambda s: s.task)
    assert got == pytest.approx({"a": 0.5, "x": 0.375, "y": 0.125})


def test_largest_remainder_is_exact_and_deterministic():
    shares = [1 / 3, 1 / 3, 1 / 3]
    assert largest_remainder(10, shares) == [4, 3, 3]
    rng = random.Random(0)
    for _ in range(50):
        w = [rng.random() for _ in range(rng.randint(1, 9))]
        n = rng.randint(0, 1000)
        q = largest_remainder(n, w)
        assert sum(q) == n and all(abs(qi - n * wi / sum(w)) < 1 for qi, wi in zip(q, w, strict=True))


def test_schedule_pieces():
    assert shard_sizes(25, 10) == [10, 10, 5]
    comp = shard_composition([12, 8, 5], [10, 10, 5], seed=3)
    assert comp.sum(axis=1).tolist() == [10, 10, 5] and comp.sum(axis=0).tolist() == [12, 8, 5]
    taken = list(select_indices(100, 37, random.Random(1)))
    assert sum(taken) == 37 and len(taken) == 100
    assert stream_plan(10, 25) == [(0, 10), (1, 10), (2, 5)]
    out = list(shuffle_buffer(range(100), 8, random.Random(2)))
    assert sorted(out) == list(range(100)) and out != list(range(100))


@pytest.mark.parametrize(("n", "r"), [(0, 0), (1, 1), (10, 0), (10, 10), (100, 37), (5000, 3), (5000, 4990),
                                      (4096, 1), (4096, 256), (100_000, 10), (70_000, 4000)])
def test_select_mask_draws_as_select_indices(n, r):
    a, b = random.Random(n * 7 + r), random.Random(n * 7 + r)
    assert select_mask(n, r, a) == bytearray(select_indices(n, r, b))
    # Same draws consumed: what the stream draws next (refills) is unchanged.
    assert a.getstate() == b.getstate()


def test_length_stats_merge_exactly():
    a, b = LengthStats(), LengthStats()
    for x in [1, 2, 3]:
        a.add(x)
    for x in [4, 5, 100]:
        b.add(x)
    merged = LengthStats.from_json(a.to_json()).merge(b)
    assert merged.summary() == {"count": 6, "mean": 19.167, "p50": 3, "p90": 100, "p99": 100, "max": 100}


def test_inversion_submixtures_share_their_parent_rate_as_in_flan_v2():
    # flan/v2 run_example.py: cot_submix 0.05 holds CoT (weight 1) and CoT-II (0.3) together.
    m = Mixture("m", [st("a", "flan2021", 10), st("b", "cot", 10), st("c", "cot_ii", 10)])
    got = shares_by(m, lambda s: s.submixture)
    assert got == pytest.approx({"flan2021": 0.4 / 0.45, "cot": 0.05 / 1.3 / 0.45, "cot_ii": 0.015 / 1.3 / 0.45})
    alone = shares_by(Mixture("m", [st("a", "flan2021", 10), st("b", "cot", 10)]), lambda s: s.submixture)
    assert alone == pytest.approx({"flan2021": 0.4 / 0.45, "cot": 0.05 / 0.45})  # a parent alone keeps its rate
