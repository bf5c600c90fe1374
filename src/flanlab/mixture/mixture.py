"""The ``Mixture`` noun: named members (task streams or sub-mixtures) and the rule that turns them
into shares.

A *stream* is one (task, format) pair. Shares are computed in two levels, as in Flan 2022:

1. groups (submixtures such as ``flan2021`` or ``cot``, or nested sub-mixtures) get rates: the
   Flan 2022 defaults renormalized over the groups present, a mapping from the config, or
   proportional to their members' weights;
2. inside a submixture, its share is split evenly over the formats present (zs_opt, fs_opt, ...)
   and, per format, over its tasks by fixed weights or examples-proportionally with the
   submixture's cap and an optional temperature. A nested mixture shares its rate by its own rules.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from flanlab.core.errors import UserError
from flanlab.mixture.rates import flan2022, proportional_weight

__all__ = ["Mixture", "Stream", "SubMixture"]


@dataclass(frozen=True)
class Stream:
    """One (task, format) stream of examples, with what the rules need to weigh it."""

    task: str
    format: str
    submixture: str
    size: int
    category: str = ""
    weight: float = 1.0
    cap: int | None = None  # per-task override of the submixture's cap
    tags: tuple[str, ...] = ()
    source: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @property
    def key(self) -> str:
        return f"{self.task}/{self.format}"


@dataclass
class SubMixture:
    """A mixture used as one group of a parent; ``rate`` overrides the parent's rate for its name."""

    mixture: Mixture
    rate: float | None = None


@dataclass
class Mixture:
    """A named set of members with its rate rule; :meth:`shares` gives every stream's share."""

    name: str
    members: list[Stream | SubMixture]
    rule: str = "examples_proportional"
    temperature: float = 1.0
    submixture_rates: str | dict[str, float] = "flan2022"
    caps: dict[str, int | None] = field(default_factory=dict)
    default_cap: int | None = None
    group_rates: dict[str, float] = field(default_factory=dict)  # per-member explicit rates

    def streams(self) -> list[Stream]:
        """All streams, depth first, in member order."""
        out: list[Stream] = []
        for m in self.members:
            out.extend(m.mixture.streams() if isinstance(m, SubMixture) else [m])
        return out

    def cap_of(self, stream: Stream) -> int | None:
        """The cap that applies to a stream: its own, the config's for its submixture, the Flan
        2022 default, then ``default_cap``."""
        if stream.cap is not None:
            return stream.cap
        sub = stream.submixture
        if sub in self.caps:
            return self.caps[sub]
        known = flan2022().caps
        return known.get(sub, self.default_cap)

    def _stream_weight(self, stream: Stream) -> float:
        if self.rule == "fixed":
            return stream.weight
        return proportional_weight(stream.size, self.cap_of(stream), self.temperature, stream.weight)

    def _groups(self) -> dict[str, list[Stream | SubMixture]]:
        groups: dict[str, list[Stream | SubMixture]] = {}
        for m in self.members:
            name = m.mixture.name if isinstance(m, SubMixture) else m.submixture
            groups.setdefault(name, []).append(m)
        return groups

    def _group_rates(self, groups: dict[str, list[Stream | SubMixture]]) -> dict[str, float]:
        rates: dict[str, float] = {}
        defaulted: set[str] = set()
        for name, members in groups.items():
            explicit = [m.rate for m in members if isinstance(m, SubMixture) and m.rate is not None]
            if name in self.group_rates:
                rates[name] = self.group_rates[name]
            elif explicit:
                rates[name] = explicit[0]
            elif self.submixture_rates == "proportional":
                rates[name] = sum(
                    self._stream_weight(m) if isinstance(m, Stream) else 1.0 for m in members)
            elif isinstance(self.submixture_rates, dict) and name in self.submixture_rates:
                rates[name] = float(self.submixture_rates[name])
            elif name in flan2022().rates:
                rates[name] = flan2022().rates[name]
                defaulted.add(name)
            else:
                known = ", ".join(flan2022().rates)
                raise UserError(
                    f"mixture {self.name!r}: no rate for submixture {name!r}; give it one under "
                    f"submixture_rates (Flan 2022 defaults exist for: {known}) or use "
                    f"submixture_rates: proportional")
        return flan2022().split_parts(rates, defaulted)

    def shares(self) -> list[tuple[Stream, float]]:
        """(stream, share) for every stream with a positive share; shares sum to 1."""
        groups = self._groups()
        rates = self._group_rates(groups)
        total_rate = sum(r for name, r in rates.items() if self._group_has_mass(groups[name]))
        if total_rate <= 0:
            raise UserError(f"mixture {self.name!r}: no member has any examples")
        out: list[tuple[Stream, float]] = []
        for name, members in groups.items():
            if not self._group_has_mass(members):
                continue
            share = rates[name] / total_rate
            subs = [m for m in members if isinstance(m, SubMixture)]
            streams = [m for m in members if isinstance(m, Stream)]
            if subs and streams:
                raise UserError(f"mixture {self.name!r}: {name!r} names both a sub-mixture and a submixture "
                                "of tasks; rename one")
            if subs:
                inner = [pair for sub in subs for pair in sub.mixture.shares()]
                norm = sum(s for _, s in inner)
                out.extend((st, share * s / norm) for st, s in inner)
                continue
            out.extend(self._split_group(share, streams))
        return [(st, s) for st, s in out if s > 0]

    def _group_has_mass(self, members: list[Stream | SubMixture]) -> bool:
        return any(isinstance(m, SubMixture) or self._stream_weight(m) > 0 for m in members)

    def _split_group(self, share: float, streams: list[Stream]) -> list[tuple[Stream, float]]:
        """A submixture's share: evenly over its formats, then by weight inside each format."""
        by_format: dict[str, list[Stream]] = {}
        for st in streams:
            by_format.setdefault(st.format, []).append(st)
        live = {f: ss for f, ss in by_format.items() if sum(self._stream_weight(s) for s in ss) > 0}
        out = []
        for members in live.values():
            weights = [self._stream_weight(s) for s in members]
            total = sum(weights)
            out.extend((s, share / len(live) * w / total) for s, w in zip(members, weights, strict=True))
        return out
