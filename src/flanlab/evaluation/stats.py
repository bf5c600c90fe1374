"""Uncertainty of scores: 95 % intervals for one score and for a before/after difference.

Methods (numpy only, deterministic):

- a share of correct items (accuracy, exact match) whose headline weighs every item alike:
  the **Wilson score interval** (Wilson 1927), exact to state and good at 0/n and n/n;
- any other score (token F1, a mean over subtasks of unequal size): a **percentile bootstrap**,
  resampling items within each subtask (stratum) so the statistic is the one reported, with a
  fixed seed and :data:`N_BOOT` resamples;
- the difference after − before on the same items: for right/wrong items weighed alike,
  **Newcombe's paired interval** (Newcombe 1998, "method 10": Wilson intervals of both shares
  combined with the phi correlation of the pairs) and the **exact McNemar test** (two-sided
  binomial test on the discordant pairs); otherwise a **paired percentile bootstrap** that
  resamples items (the same items for both) within each subtask.

A difference "excludes zero" only when its whole interval lies on one side of zero; anything else
is no evidence of a change (:attr:`PairedDiff.excludes_zero`). A change is claimed
(:attr:`PairedDiff.significant`) only when, in addition, the exact McNemar test agrees for
right/wrong items (the two can disagree at the margin: the exact test is the more conservative).

Typical use::

    from flanlab.evaluation.stats import score_interval, paired_difference
    iv = score_interval({"navigate": [1, 0, 1], "snarks": [0, 1]})          # fractions
    iv.fmt(100)                                                              # '50.0 [...] n=5'
    d = paired_difference({"navigate": [0, 0, 1]}, {"navigate": [1, 1, 1]})
    d.excludes_zero, d.significant, d.low, d.high, d.mcnemar_p, d.verdict()
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np

__all__ = [
    "LEVEL", "N_BOOT", "SEED", "Interval", "PairedDiff", "bootstrap_interval", "is_binary", "mcnemar_exact",
    "newcombe_paired", "paired_bootstrap", "paired_difference", "score_interval", "wilson_interval",
]

LEVEL = 0.95
# Two-sided 95 % normal quantile, written out so the module needs no scipy.
Z95 = 1.959963984540054
N_BOOT = 2000
SEED = 0


@dataclass(frozen=True)
class Interval:
    """A score and its interval, in the unit of the values (fractions unless scaled)."""

    estimate: float
    low: float
    high: float
    n: int
    method: str  # "wilson", "bootstrap", "stratified bootstrap", "none" (n = 0)

    def scaled(self, factor: float) -> Interval:
        """The same interval with every number multiplied by ``factor`` (e.g. 100 for percent)."""
        return Interval(self.estimate * factor, self.low * factor, self.high * factor, self.n, self.method)

    def to_dict(self, digits: int = 2) -> dict[str, object]:
        return {"ci95": [round(self.low, digits), round(self.high, digits)], "n": self.n,
                "ci_method": self.method}

    def fmt(self, factor: float = 1.0, digits: int = 1) -> str:
        """``"55.0 [39.8, 69.3] n=40"``."""
        s = self.scaled(factor)
        return f"{s.estimate:.{digits}f} [{s.low:.{digits}f}, {s.high:.{digits}f}] n={s.n}"


@dataclass(frozen=True)
class PairedDiff:
    """after − before on the same items, with its 95 % interval."""

    before: float
    after: float
    diff: float
    low: float
    high: float
    n: int
    method: str  # "newcombe" or "paired bootstrap" / "stratified paired bootstrap"
    improved: int | None = None  # right/wrong items only: wrong before, right after
    worsened: int | None = None  # right before, wrong after
    mcnemar_p: float | None = None  # exact McNemar test on (improved, worsened)

    @property
    def excludes_zero(self) -> bool:
        """Whether the whole interval lies on one side of zero."""
        return self.low > 0 or self.high < 0

    @property
    def significant(self) -> bool:
        """A change worth claiming: the interval excludes zero and, for right/wrong items, the exact
        McNemar test agrees (p < 0.05). The two can disagree at the margin (the exact test is the
        more conservative); then nothing is claimed."""
        return self.excludes_zero and (self.mcnemar_p is None or self.mcnemar_p < 1 - LEVEL)

    def scaled(self, factor: float) -> PairedDiff:
        return PairedDiff(self.before * factor, self.after * factor, self.diff * factor, self.low * factor,
                          self.high * factor, self.n, self.method, self.improved, self.worsened, self.mcnemar_p)

    def verdict(self) -> str:
        """A short phrase: which way the score moved, if the evidence says so at all."""
        if not self.excludes_zero:
            return "no clear change (interval includes 0)"
        if not self.significant:
            return f"borderline (interval excludes 0, exact McNemar p = {self.mcnemar_p:.3g}): not claimed"
        if self.low > 0:
            return "gain (interval excludes 0)" + ("" if self.mcnemar_p is None else ", McNemar p < 0.05")
        return "loss (interval excludes 0)" + ("" if self.mcnemar_p is None else ", McNemar p < 0.05")

    def short(self) -> str:
        """One word for tables: gain, loss, borderline or no clear change."""
        if not self.excludes_zero:
            return "no clear change"
        if not self.significant:
            return "borderline"
        return "gain" if self.low > 0 else "loss"

    def to_dict(self, digits: int = 2) -> dict[str, object]:
        out = {k: (round(v, digits) if isinstance(v, float) and k != "mcnemar_p" else v)
               for k, v in asdict(self).items()}
        out["ci95"] = [out.pop("low"), out.pop("high")]
        out["excludes_zero"] = self.excludes_zero
        out["significant"] = self.significant
        return out

    def fmt(self, factor: float = 1.0, digits: int = 1) -> str:
        """``"+12.5 [+2.1, +22.0] n=40"``."""
        s = self.scaled(factor)
        return f"{s.diff:+.{digits}f} [{s.low:+.{digits}f}, {s.high:+.{digits}f}] n={s.n}"


# ---------------------------------------------------------------------------------------------
# one score


def wilson_interval(successes: int, n: int, z: float = Z95) -> Interval:
    """Wilson score interval of ``successes`` / ``n`` (fractions); n = 0 gives the whole range."""
    if n <= 0:
        return Interval(float("nan"), 0.0, 1.0, 0, "none")
    if not 0 <= successes <= n:
        raise ValueError(f"wilson_interval: successes must be in [0, {n}], got {successes}")
    p = successes / n
    z2 = z * z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    # Clamp float noise: at 0/n the lower end is exactly 0, at n/n the upper exactly 1.
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == n else min(1.0, centre + half)
    return Interval(p, low, high, n, "wilson")


def is_binary(values: Sequence[float]) -> bool:
    """Whether every value is 0 or 1 (a right/wrong score)."""
    return all(v in (0, 1) for v in values)


def _groups(values: Mapping[str, Sequence[float]] | Sequence[float]) -> list[np.ndarray]:
    if isinstance(values, Mapping):
        return [np.asarray(v, dtype=float) for _, v in sorted(values.items()) if len(v)]
    return [np.asarray(values, dtype=float)] if len(values) else []


def _resampled_means(rng: np.random.Generator, groups: list[np.ndarray], n_boot: int) -> np.ndarray:
    """``(n_boot, len(groups))`` means of each group resampled with replacement."""
    out = np.empty((n_boot, len(groups)))
    for j, g in enumerate(groups):
        idx = rng.integers(0, len(g), size=(n_boot, len(g)))
        out[:, j] = g[idx].mean(axis=1)
    return out


def bootstrap_interval(
    values: Mapping[str, Sequence[float]] | Sequence[float],
    *,
    macro: bool = True,
    n_boot: int = N_BOOT,
    seed: int = SEED,
) -> Interval:
    """Percentile bootstrap interval of a mean.

    ``values`` is one list, or ``{subtask: values}``; items are resampled within each subtask.
    With ``macro`` the statistic is the mean of the subtask means (how BBH, TyDiQA and MGSM
    average), else the mean over all items.
    """
    groups = _groups(values)
    n = sum(len(g) for g in groups)
    if not n:
        return Interval(float("nan"), float("nan"), float("nan"), 0, "none")
    rng = np.random.default_rng(seed)
    means = _resampled_means(rng, groups, n_boot)
    sizes = np.array([len(g) for g in groups], dtype=float)
    if macro:
        estimate = float(np.mean([g.mean() for g in groups]))
        stats = means.mean(axis=1)
    else:
        estimate = float(np.concatenate(groups).mean())
        stats = means @ sizes / n
    low, high = np.quantile(stats, [(1 - LEVEL) / 2, (1 + LEVEL) / 2])
    method = "stratified bootstrap" if len(groups) > 1 else "bootstrap"
    return Interval(estimate, float(low), float(high), n, method)


def _pooled_is_macro(groups: list[np.ndarray]) -> bool:
    return len({len(g) for g in groups}) <= 1


def score_interval(
    values: Mapping[str, Sequence[float]] | Sequence[float],
    *,
    macro: bool = True,
    n_boot: int = N_BOOT,
    seed: int = SEED,
) -> Interval:
    """The 95 % interval of a score from its per-item values (fractions; ``{subtask: values}``
    or one list). Right/wrong items whose score weighs every item alike (one subtask, subtasks of
    equal size, or ``macro=False``) get the Wilson interval; anything else the percentile bootstrap."""
    groups = _groups(values)
    flat = np.concatenate(groups) if groups else np.array([])
    if is_binary(flat.tolist()) and (not macro or _pooled_is_macro(groups)):
        return wilson_interval(int(flat.sum()), len(flat))
    return bootstrap_interval(values, macro=macro, n_boot=n_boot, seed=seed)


# ---------------------------------------------------------------------------------------------
# before / after on the same items


def mcnemar_exact(improved: int, worsened: int) -> float:
    """Two-sided exact McNemar p-value: the discordant pairs under a fair coin (p = 1 with none)."""
    m = improved + worsened
    if m == 0:
        return 1.0
    k = min(improved, worsened)
    tail = sum(math.comb(m, i) for i in range(k + 1)) / 2.0 ** m
    return min(1.0, 2.0 * tail)


def newcombe_paired(both: int, improved: int, worsened: int, neither: int, z: float = Z95) -> PairedDiff:
    """Newcombe's (1998, method 10) interval for after − before on paired right/wrong items.

    ``both``: right before and after; ``improved``: wrong before, right after; ``worsened``: right
    before, wrong after; ``neither``: wrong both times.
    """
    n = both + improved + worsened + neither
    if n == 0:
        return PairedDiff(float("nan"), float("nan"), float("nan"), float("nan"), float("nan"), 0, "none")
    after_k, before_k = both + improved, both + worsened
    p1, p2 = after_k / n, before_k / n
    w1, w2 = wilson_interval(after_k, n, z), wilson_interval(before_k, n, z)
    # Phi correlation of the pairs, with Newcombe's correction towards 0 for positive association.
    denom = (both + improved) * (worsened + neither) * (both + worsened) * (improved + neither)
    phi = 0.0
    if denom > 0:
        cross = both * neither - improved * worsened
        if cross > n / 2:
            phi = (cross - n / 2) / math.sqrt(denom)
        elif cross < 0:
            phi = cross / math.sqrt(denom)
    d = p1 - p2
    delta = math.sqrt(max(0.0, (p1 - w1.low) ** 2 - 2 * phi * (p1 - w1.low) * (w2.high - p2) + (w2.high - p2) ** 2))
    eps = math.sqrt(max(0.0, (w1.high - p1) ** 2 - 2 * phi * (w1.high - p1) * (p2 - w2.low) + (p2 - w2.low) ** 2))
    return PairedDiff(p2, p1, d, max(-1.0, d - delta), min(1.0, d + eps), n, "newcombe", improved, worsened,
                      mcnemar_exact(improved, worsened))


def _check_same_items(before: Mapping[str, Sequence[float]] | Sequence[float],
                      after: Mapping[str, Sequence[float]] | Sequence[float]) -> None:
    def shape(v: Mapping[str, Sequence[float]] | Sequence[float]) -> list[tuple[str, int]]:
        if isinstance(v, Mapping):
            return sorted((k, len(x)) for k, x in v.items() if len(x))
        return [("", len(v))] if len(v) else []

    if shape(before) != shape(after):
        raise ValueError("before and after must hold the same items: the same subtasks with as many values each")


def paired_bootstrap(
    before: Mapping[str, Sequence[float]] | Sequence[float],
    after: Mapping[str, Sequence[float]] | Sequence[float],
    *,
    macro: bool = True,
    n_boot: int = N_BOOT,
    seed: int = SEED,
) -> PairedDiff:
    """Paired percentile bootstrap of mean(after) − mean(before): the same resampled items for
    both, within each subtask; ``macro`` as in :func:`bootstrap_interval`."""
    _check_same_items(before, after)
    b_groups, a_groups = _groups(before), _groups(after)
    n = sum(len(g) for g in b_groups)
    if not n:
        return PairedDiff(float("nan"), float("nan"), float("nan"), float("nan"), float("nan"), 0, "none")
    diffs = [a - b for a, b in zip(a_groups, b_groups, strict=True)]

    def stat(gs: list[np.ndarray]) -> float:
        return float(np.mean([g.mean() for g in gs])) if macro else float(np.concatenate(gs).mean())

    rng = np.random.default_rng(seed)
    means = _resampled_means(rng, diffs, n_boot)
    sizes = np.array([len(g) for g in diffs], dtype=float)
    boots = means.mean(axis=1) if macro else means @ sizes / n
    low, high = np.quantile(boots, [(1 - LEVEL) / 2, (1 + LEVEL) / 2])
    method = "stratified paired bootstrap" if len(diffs) > 1 else "paired bootstrap"
    flat_b, flat_a = np.concatenate(b_groups), np.concatenate(a_groups)
    improved = worsened = p = None
    if is_binary(flat_b.tolist()) and is_binary(flat_a.tolist()):
        improved = int(((flat_b == 0) & (flat_a == 1)).sum())
        worsened = int(((flat_b == 1) & (flat_a == 0)).sum())
        p = mcnemar_exact(improved, worsened)
    return PairedDiff(stat(b_groups), stat(a_groups), stat(diffs), float(low), float(high), n, method,
                      improved, worsened, p)


def paired_difference(
    before: Mapping[str, Sequence[float]] | Sequence[float],
    after: Mapping[str, Sequence[float]] | Sequence[float],
    *,
    macro: bool = True,
    n_boot: int = N_BOOT,
    seed: int = SEED,
) -> PairedDiff:
    """after − before on the same items (``{subtask: values}`` in the same item order, or two
    lists): Newcombe's interval and the exact McNemar test for right/wrong items weighed alike,
    else the paired bootstrap (see the module docstring)."""
    _check_same_items(before, after)
    b_groups, a_groups = _groups(before), _groups(after)
    flat_b = np.concatenate(b_groups) if b_groups else np.array([])
    flat_a = np.concatenate(a_groups) if a_groups else np.array([])
    if is_binary(flat_b.tolist()) and is_binary(flat_a.tolist()) and (not macro or _pooled_is_macro(b_groups)):
        both = int(((flat_b == 1) & (flat_a == 1)).sum())
        improved = int(((flat_b == 0) & (flat_a == 1)).sum())
        worsened = int(((flat_b == 1) & (flat_a == 0)).sum())
        return newcombe_paired(both, improved, worsened, len(flat_b) - both - improved - worsened)
    return paired_bootstrap(before, after, macro=macro, n_boot=n_boot, seed=seed)
