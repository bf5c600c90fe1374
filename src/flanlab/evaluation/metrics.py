"""Metrics: exact match, SQuAD-style F1, numeric comparison, self-consistency voting."""

from __future__ import annotations

import math
import re
import string
from collections import Counter
from collections.abc import Sequence

from flanlab.evaluation.filters import parse_number, unwrap_letter

__all__ = ["exact_match", "majority_vote", "numeric_match", "squad_em", "squad_f1", "squad_normalize"]

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = set(string.punctuation)


def exact_match(answer: str | None, target: str) -> bool:
    """Exact match after stripping and unwrapping option letters ("(A)" == "A")."""
    if answer is None:
        return False
    return unwrap_letter(answer.strip()) == unwrap_letter(target.strip())


def numeric_match(answer: str | None, target: str, tol: float = 1e-6) -> bool:
    """Numeric comparison of the answer with the target number (commas, "$" and units ignored)."""
    if answer is None:
        return False
    a, t = parse_number(answer), parse_number(target)
    if a is None or t is None:
        return False
    return math.isclose(float(a), float(t), rel_tol=0.0, abs_tol=tol)


def squad_normalize(text: str) -> str:
    """SQuAD v1.1 normalization: lowercase, drop punctuation and English articles, squash spaces."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCT)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def _f1(pred: str, gold: str) -> float:
    p, g = squad_normalize(pred).split(), squad_normalize(gold).split()
    if not p or not g:
        return float(p == g)
    common = Counter(p) & Counter(g)
    same = sum(common.values())
    if same == 0:
        return 0.0
    precision, recall = same / len(p), same / len(g)
    return 2 * precision * recall / (precision + recall)


def squad_em(answer: str | None, golds: Sequence[str]) -> float:
    """1.0 if the normalized answer equals any normalized gold answer."""
    if answer is None:
        return 0.0
    return float(any(squad_normalize(answer) == squad_normalize(g) for g in golds))


def squad_f1(answer: str | None, golds: Sequence[str]) -> float:
    """Best token-level F1 against the gold answers."""
    if answer is None:
        return 0.0
    return max((_f1(answer, g) for g in golds), default=0.0)


def majority_vote(answers: Sequence[str | None], *, numeric: bool = False) -> str | None:
    """The most frequent answer; "no answer" (None) never wins.

    Tie rule: among equally frequent answers, the one whose first occurrence comes earliest in
    sample order wins (deterministic, and with one sample it is that sample). With ``numeric``,
    answers that are the same number ("18", "18.0", "$18") are counted together.
    """
    keys: list[str] = []
    counts: Counter[str] = Counter()
    first: dict[str, str] = {}
    for a in answers:
        if a is None:
            continue
        key = (parse_number(a) or a.strip()) if numeric else unwrap_letter(a.strip())
        if key not in counts:
            keys.append(key)
            first[key] = a
        counts[key] += 1
    if not keys:
        return None
    best = max(counts.values())
    winner = next(k for k in keys if counts[k] == best)
    return first[winner]
