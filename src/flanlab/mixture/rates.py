"""Rate rules: Flan 2022 submixture rates and caps (package data), examples-proportional weights.

The constants live in ``data/flan2022.yaml``; this module validates and applies them.
"""

from __future__ import annotations

import functools
from importlib import resources
from typing import Any

import yaml

from flanlab.core.errors import UserError

__all__ = ["FlanConstants", "canonical_submixture", "flan2022", "largest_remainder", "proportional_weight"]

_DATA = "flan2022.yaml"


class FlanConstants:
    """Submixture rates, caps and aliases, read from the package data."""

    def __init__(self, data: dict[str, Any], source: str) -> None:
        subs = data.get("submixtures") if isinstance(data, dict) else None
        if not isinstance(subs, dict) or not subs:
            raise UserError(f"{source}: expected a mapping 'submixtures: {{name: {{rate, cap, aliases}}}}'")
        self.rates: dict[str, float] = {}
        self.caps: dict[str, int | None] = {}
        self.aliases: dict[str, str] = {}
        # An inversion submixture shares its parent's rate (flan/v2: CoT 1 : CoT-II 0.3 inside the
        # CoT submix): child -> (parent, fraction of the parent's weight).
        self.parts: dict[str, tuple[str, float]] = {}
        for name, spec in subs.items():
            if not isinstance(spec, dict):
                raise UserError(f"{source}: submixtures.{name}: expected a mapping with rate and cap")
            if "part_of" in spec:
                parent, fraction = spec.get("part_of"), spec.get("fraction")
                if parent not in subs or not isinstance(fraction, int | float) or fraction <= 0:
                    raise UserError(f"{source}: submixtures.{name}: part_of must name another submixture and "
                                    f"fraction be a number > 0, got {parent!r}, {fraction!r}")
                self.parts[name] = (str(parent), float(fraction))
                spec = {**spec, "rate": float(subs[parent]["rate"]) * float(fraction)}
            rate, cap = spec.get("rate"), spec.get("cap")
            if not isinstance(rate, int | float) or rate <= 0:
                raise UserError(f"{source}: submixtures.{name}.rate: expected a number > 0, got {rate!r}")
            if cap is not None and (not isinstance(cap, int) or cap <= 0):
                raise UserError(f"{source}: submixtures.{name}.cap: expected an integer > 0, got {cap!r}")
            self.rates[name] = float(rate)
            self.caps[name] = cap
            for alias in [name, *spec.get("aliases", [])]:
                self.aliases[str(alias).lower()] = name
        kinds = data.get("source_kinds", {})
        if not isinstance(kinds, dict):
            raise UserError(f"{source}: source_kinds: expected a mapping of source kind to submixture")
        self.source_kinds: dict[str, str] = {str(k): self.canonical(str(v)) for k, v in kinds.items()}

    def split_parts(self, rates: dict[str, float], defaulted: set[str]) -> dict[str, float]:
        """``rates`` with each inversion submixture carved out of its parent's rate when both are
        present and took their Flan 2022 defaults: parent ``r / (1 + f)``, child ``r f / (1 + f)``
        (flan/v2 run_example.py gives CoT 0.05 for CoT and CoT-II together)."""
        out = dict(rates)
        for child, (parent, fraction) in self.parts.items():
            if child in out and parent in out and child in defaulted and parent in defaulted:
                total = self.rates[parent]
                out[parent], out[child] = total / (1 + fraction), total * fraction / (1 + fraction)
        return out

    def canonical(self, name: str) -> str:
        """The canonical submixture name of an alias (``muffin`` → ``flan2021``); unknown names pass."""
        return self.aliases.get(name.lower(), name)


@functools.cache
def flan2022() -> FlanConstants:
    """The shipped Flan 2022 constants."""
    text = resources.files("flanlab.mixture").joinpath("data", _DATA).read_text(encoding="utf-8")
    return FlanConstants(yaml.safe_load(text), f"flanlab/mixture/data/{_DATA}")


def canonical_submixture(name: str) -> str:
    return flan2022().canonical(name)


def proportional_weight(size: int, cap: int | None, temperature: float = 1.0, weight: float = 1.0) -> float:
    """Examples-proportional mixing weight: ``weight * min(size, cap) ** (1 / temperature)``."""
    n = min(size, cap) if cap is not None else size
    return weight * float(n) ** (1.0 / temperature) if n > 0 else 0.0


def largest_remainder(total: int, shares: list[float]) -> list[int]:
    """Integers summing to ``total`` closest to ``total * share`` (Hamilton's method; ties go to the
    earlier index, so the result is deterministic)."""
    if total < 0:
        raise ValueError("total must be >= 0")
    s = sum(shares)
    if s <= 0:
        raise ValueError("shares must have a positive sum")
    exact = [total * x / s for x in shares]
    counts = [int(e) for e in exact]
    short = total - sum(counts)
    order = sorted(range(len(shares)), key=lambda i: (-(exact[i] - counts[i]), i))
    for i in order[:short]:
        counts[i] += 1
    return counts
