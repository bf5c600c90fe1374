"""Plan log-likelihood scoring as few, short forward passes (pure Python, no torch).

Each request becomes a *row*: the tokens the model reads (context + continuation minus its last
token) and the positions whose next-token distribution scores the continuation. Rows that are a
token-prefix of another row are served by that row (all options of a question with one-token
answers read the same row). Rows are then grouped so that a group's members share a long token
prefix, which is run once and whose KV cache every member reuses.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

__all__ = ["Group", "Plan", "Target", "lcp", "plan_rows", "group_rows"]

Tokens = tuple[int, ...]
# Nested shared prefixes deeper than this are scored as one group (keeps recursion bounded).
_MAX_DEPTH = 64


@dataclass(frozen=True)
class Target:
    """Where request ``index`` is scored: ``row``'s positions ``start .. start+len(tokens)-1``
    predict ``tokens``."""

    index: int
    row: int
    start: int
    tokens: Tokens


@dataclass
class Plan:
    rows: list[Tokens]
    targets: list[Target]


@dataclass
class Group:
    """Rows sharing their first ``prefix_len`` tokens (0: no shared prefix, plain batching)."""

    prefix_len: int
    rows: list[int] = field(default_factory=list)


def lcp(a: Sequence[int], b: Sequence[int]) -> int:
    """Length of the longest common prefix of two token sequences."""
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


def plan_rows(pairs: Sequence[tuple[Sequence[int], Sequence[int]]]) -> Plan:
    """Turn (context ids, continuation ids) pairs into deduplicated rows and per-request targets.

    Every context must be non-empty and every continuation non-empty (callers handle the rest).
    Rows come out sorted lexicographically, which :func:`group_rows` relies on.
    """
    raw: list[Tokens] = []
    for ctx, cont in pairs:
        raw.append(tuple(ctx) + tuple(cont[:-1]))
    unique = sorted(set(raw))
    # A row that is a prefix of another is a prefix of the very next one in sorted order, so one
    # backward pass maps every row to the longest row that contains it.
    canonical = list(range(len(unique)))
    for i in range(len(unique) - 2, -1, -1):
        a, b = unique[i], unique[i + 1]
        if len(a) <= len(b) and b[: len(a)] == a:
            canonical[i] = canonical[i + 1]
    kept = sorted(set(canonical))
    renumber = {old: new for new, old in enumerate(kept)}
    index_of = {row: renumber[canonical[i]] for i, row in enumerate(unique)}
    targets = [
        Target(i, index_of[raw[i]], len(ctx) - 1, tuple(cont)) for i, (ctx, cont) in enumerate(pairs)
    ]
    return Plan([unique[k] for k in kept], targets)


def group_rows(rows: Sequence[Tokens], *, min_prefix: int = 16, group_cost: int = 32) -> list[Group]:
    """Split lexicographically sorted ``rows`` into groups that each reuse one shared prefix.

    Cost model (tokens computed): a group costs its prefix once plus every member's suffix, plus
    ``group_cost`` for the extra pass; a range of rows is split at its shortest shared prefix when
    that is cheaper. Rows left without a worthwhile prefix land in one group with ``prefix_len=0``.
    """
    n = len(rows)
    if n == 0:
        return []
    adj = [0] + [lcp(rows[i - 1], rows[i]) for i in range(1, n)]  # adj[i] = lcp(rows[i-1], rows[i])
    groups: list[Group] = []
    loose: list[int] = []

    def solve(lo: int, hi: int, depth: int = 0) -> tuple[int, list[Group], list[int]]:
        """Best plan for rows[lo:hi] (hi exclusive): (cost, groups, rows left without a prefix)."""
        total = sum(len(rows[i]) for i in range(lo, hi))
        if hi - lo == 1:
            return total, [], [lo]
        shared = min(adj[lo + 1 : hi])
        # Each member needs at least one token after the prefix (its scored position's input).
        shared = min(shared, min(len(rows[i]) for i in range(lo, hi)) - 1)
        as_group = total - (hi - lo - 1) * shared + group_cost if shared >= min_prefix else total
        # Split where the shared prefix is shortest; the parts share more.
        cuts = [i for i in range(lo + 1, hi) if adj[i] <= shared]
        best = (as_group, [Group(shared, list(range(lo, hi)))] if shared >= min_prefix else [],
                [] if shared >= min_prefix else list(range(lo, hi)))
        if cuts and depth < _MAX_DEPTH:
            bounds = [lo, *cuts, hi]
            cost, gs, ls = 0, [], []
            for a, b in zip(bounds, bounds[1:], strict=False):
                c, g, lo_rows = solve(a, b, depth + 1)
                cost, gs, ls = cost + c, gs + g, ls + lo_rows
            if cost < best[0]:
                best = (cost, gs, ls)
        return best

    # Iterate over top-level segments (split at lcp < min_prefix) to keep recursion shallow.
    start = 0
    for i in range(1, n + 1):
        if i == n or adj[i] < min_prefix:
            _, gs, ls = solve(start, i)
            groups.extend(gs)
            loose.extend(ls)
            start = i
    if loose:
        groups.append(Group(0, loose))
    return groups
