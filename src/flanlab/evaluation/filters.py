"""Answer filters: raw model output → the answer compared with the target (specs in filters.yaml)."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

from flanlab.evaluation.specs import FilterSpec, FilterStep, load_filters

__all__ = ["apply_filter", "cut_at_stop", "parse_number", "unwrap_letter"]

_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?")
_LETTER = re.compile(r"^\(([A-Za-z])\)$")


def cut_at_stop(text: str, stop: Sequence[str]) -> str:
    """``text`` up to the earliest occurrence of any stop sequence (backends already do this;
    outputs scored from elsewhere may not have been cut)."""
    cut = len(text)
    for s in stop:
        if s:
            i = text.find(s)
            if i != -1:
                cut = min(cut, i)
    return text[:cut]


def parse_number(text: str) -> str | None:
    """The last number in ``text`` as a canonical string ("1,234.50" → "1234.5", "$18" → "18")."""
    found = _NUMBER.findall(text)
    if not found:
        return None
    raw = found[-1].replace(",", "")
    try:
        value = float(raw)
    except ValueError:
        return None
    if not math.isfinite(value):  # a run of hundreds of digits is no answer (and int(inf) raises)
        return None
    if value == int(value):
        return str(int(value))
    return repr(value)


def unwrap_letter(text: str) -> str:
    """"(A)" → "A"; anything else unchanged (so "(A)" and "A" compare equal)."""
    m = _LETTER.match(text.strip())
    return m.group(1) if m else text


def _step(step: FilterStep, text: str) -> str | None:
    if step.regex is not None:
        matches = list(re.finditer(step.regex, text))
        if not matches:
            return text if step.on_miss == "keep" else None
        m = matches[0] if step.select == "first" else matches[-1]
        group = step.group if step.group is not None else (1 if m.re.groups else 0)
        return m.group(group) or ""
    if step.first_line:
        return text.strip().split("\n", 1)[0]
    if step.strip:
        return text.strip()
    if step.lower:
        return text.lower()
    if step.letter:
        return unwrap_letter(text)
    if step.number:
        return parse_number(text)
    for r in step.remove:
        text = text.replace(r, "")
    return text


def _run(spec: FilterSpec, text: str) -> str | None:
    if spec.first_of:
        for alt in spec.first_of:
            out = _run(alt, text)
            if out is not None and out != "":
                return out
        return None
    out: str | None = text
    for step in spec.steps:
        out = _step(step, out)
        if out is None:
            return None
    return out


def apply_filter(name: str | FilterSpec, text: str) -> str | None:
    """Run filter ``name`` on ``text``; None means "no answer found"."""
    spec = load_filters()[name] if isinstance(name, str) else name
    out = _run(spec, text)
    return None if out is None or out.strip() == "" else out
