"""Intervals of flanlab.evaluation.stats on cases with known answers."""

from __future__ import annotations

import math

import pytest

from flanlab.evaluation.stats import (
    bootstrap_interval,
    mcnemar_exact,
    newcombe_paired,
    paired_bootstrap,
    paired_difference,
    score_interval,
    wilson_interval,
)


@pytest.mark.parametrize(("k", "low", "high"), [
    # Hand-computed: centre (k + z²/2) / (n + z²), half-width z·sqrt(k(n-k)/n + z²/4) / (n + z²), z = 1.96.
    (0, 0.0, 0.08762),      # 0/40: [0, 2z²/2 / (40 + z²)] = [0, 3.8415 / 43.8415]
    (20, 0.35200, 0.64800),  # 20/40: 0.5 ± 1.96·sqrt(10 + 0.96)/43.8415
    (40, 0.91238, 1.0),     # 40/40: mirror of 0/40
])
def test_wilson_known_cases(k, low, high):
    iv = wilson_interval(k, 40)
    assert (iv.estimate, iv.n, iv.method) == (k / 40, 40, "wilson")
    assert iv.low == pytest.approx(low, abs=1e-5) and iv.high == pytest.approx(high, abs=1e-5)
    assert iv.fmt(100) == f"{100 * k / 40:.1f} [{100 * low:.1f}, {100 * high:.1f}] n=40"


@pytest.mark.parametrize(("k", "n"), [(0, 40), (20, 40), (40, 40), (7, 19), (1, 3)])
def test_wilson_agrees_with_scipy(k, n):
    scipy_stats = pytest.importorskip("scipy.stats")
    ref = scipy_stats.binomtest(k, n).proportion_ci(0.95, method="wilson")
    iv = wilson_interval(k, n)
    assert iv.low == pytest.approx(ref.low, abs=1e-9) and iv.high == pytest.approx(ref.high, abs=1e-9)


def test_wilson_empty_and_bad_input():
    assert wilson_interval(0, 0).n == 0 and math.isnan(wilson_interval(0, 0).estimate)
    with pytest.raises(ValueError):
        wilson_interval(5, 4)


@pytest.mark.parametrize(("improved", "worsened", "p"), [
    (0, 0, 1.0), (3, 3, 1.0),
    (15, 3, 2 * sum(math.comb(18, i) for i in range(4)) / 2 ** 18),  # 0.00754
    (6, 0, 2 / 2 ** 6),  # all six discordant pairs one way: 0.03125
])
def test_mcnemar_exact_known(improved, worsened, p):
    assert mcnemar_exact(improved, worsened) == pytest.approx(p)
    assert mcnemar_exact(worsened, improved) == pytest.approx(p)


def test_mcnemar_agrees_with_scipy_binomtest():
    scipy_stats = pytest.importorskip("scipy.stats")
    for b, c in [(15, 3), (2, 9), (10, 10), (1, 0)]:
        assert mcnemar_exact(b, c) == pytest.approx(scipy_stats.binomtest(b, b + c, 0.5).pvalue)


def test_newcombe_paired_hand_computed():
    # n = 20: 5 right both times, 8 improved, 2 worsened, 5 wrong both times. AD - BC = 25 - 16 = 9
    # lies in [0, n/2], so Newcombe's corrected phi is 0 and the interval is square-and-add:
    # after 13/20 = 0.65, Wilson [0.43286, 0.81880]; before 7/20 = 0.35, Wilson [0.18120, 0.56714].
    # low  = 0.3 - sqrt((0.65 - 0.43286)² + (0.56714 - 0.35)²) = 0.3 - 0.30709 = -0.00709
    # high = 0.3 + sqrt((0.81880 - 0.65)² + (0.35 - 0.18120)²) = 0.3 + 0.23872 =  0.53872
    d = newcombe_paired(5, 8, 2, 5)
    assert (d.before, d.after, d.diff, d.n) == (0.35, 0.65, pytest.approx(0.3), 20)
    assert d.low == pytest.approx(-0.00709, abs=1e-4) and d.high == pytest.approx(0.53872, abs=1e-4)
    assert not d.excludes_zero and "no clear change" in d.verdict()
    assert d.mcnemar_p == pytest.approx(mcnemar_exact(8, 2)) == pytest.approx(0.109375)


def test_paired_difference_excludes_zero_and_never_calls_noise_a_gain():
    # 40 items: 15 wrong before and right after, 3 the reverse, 10 right both, 12 wrong both.
    before = [0] * 15 + [1] * 3 + [1] * 10 + [0] * 12
    after = [1] * 15 + [0] * 3 + [1] * 10 + [0] * 12
    d = paired_difference(before, after)
    assert d.method == "newcombe" and (d.improved, d.worsened) == (15, 3)
    assert d.diff == pytest.approx(0.3) and 0.05 < d.low < 0.3 < d.high < 0.5
    assert d.excludes_zero and d.verdict().startswith("gain") and d.mcnemar_p < 0.01
    # The bootstrap of the same pairs agrees on the side of zero.
    boot = paired_bootstrap(before, after)
    assert boot.low > 0 and boot.diff == pytest.approx(0.3)
    # No change at all: the interval straddles 0.
    same = paired_difference(before, before)
    assert same.diff == 0 and same.low < 0 < same.high and not same.excludes_zero
    # A swap of as many right answers as wrong ones is no change either.
    swapped = paired_difference([1] * 5 + [0] * 5, [0] * 5 + [1] * 5)
    assert swapped.diff == 0 and not swapped.excludes_zero and swapped.mcnemar_p == 1.0


def test_bootstrap_is_seeded_and_stratified():
    values = {"a": [1, 0, 1, 1, 0, 1], "b": [0, 0, 1]}
    one, two = bootstrap_interval(values), bootstrap_interval(values)
    assert one == two  # fixed seed: the same interval every time
    assert one.method == "stratified bootstrap" and one.n == 9
    assert one.estimate == pytest.approx((4 / 6 + 1 / 3) / 2)  # the mean of subtask means
    assert one.low < one.estimate < one.high
    pooled = bootstrap_interval(values, macro=False)
    assert pooled.estimate == pytest.approx(5 / 9)
    # F1-like values: continuous, so the bootstrap; a constant list has a zero-width interval.
    f1 = score_interval([0.5, 0.5, 0.5])
    assert f1.method == "bootstrap" and f1.low == f1.high == 0.5


def test_score_interval_picks_the_method_of_the_number_shown():
    equal = {"a": [1, 0, 1, 0], "b": [1, 1, 1, 0]}
    assert score_interval(equal).method == "wilson"  # equal sizes: mean of means == mean of items
    unequal = {"a": [1, 0], "b": [1, 1, 1, 0]}
    assert score_interval(unequal).method == "stratified bootstrap"
    assert score_interval(unequal, macro=False).method == "wilson"


def test_paired_bootstrap_on_unequal_subtasks():
    before = {"a": [0, 0, 1], "b": [0, 1, 0, 0, 1, 0]}
    after = {"a": [1, 1, 1], "b": [1, 1, 0, 1, 1, 0]}
    d = paired_difference(before, after)
    assert d.method == "stratified paired bootstrap"
    assert d.diff == pytest.approx((2 / 3 + 2 / 6) / 2)
    assert d.low <= d.diff <= d.high and (d.improved, d.worsened) == (4, 0)
    with pytest.raises(ValueError):
        paired_difference({"a": [1, 0]}, {"a": [1]})


def test_chance_levels_on_the_real_task_files(shared_data):
    from flanlab.evaluation.benchmarks import get_benchmark
    from flanlab.evaluation.chance import example_chance, subtask_chance

    bbh = get_benchmark("bbh", shared_data)

    def chance(sub: str) -> float:
        return subtask_chance(bbh, sub, [e.index for e in bbh.examples(sub)])

    assert chance("web_of_lies") == 0.5 and chance("sports_understanding") == 0.5  # Yes/No, yes/no
    assert chance("formal_fallacies") == 0.5  # valid/invalid
    assert chance("logical_deduction_five_objects") == pytest.approx(0.2)  # five listed options
    assert chance("word_sorting") == 0.0 and chance("object_counting") == 0.0  # free-form answers
    mmlu = get_benchmark("mmlu", shared_data)
    first = mmlu.examples(mmlu.subtasks()[0])[0]
    assert example_chance(mmlu, first) == 0.25
    gsm = get_benchmark("gsm8k", shared_data)
    assert example_chance(gsm, gsm.examples("main")[0]) == 0.0
    with pytest.raises(ValueError):
        paired_difference({"a": [1, 0]}, {"b": [1, 0]})
    with pytest.raises(ValueError):
        paired_bootstrap({"a": [1, 0.5]}, {"a": [1]})
