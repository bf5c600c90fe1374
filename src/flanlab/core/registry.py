"""One generic name → object registry, with "did you mean" on a miss."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Iterator
from typing import Generic, TypeVar

from flanlab.core.errors import UnknownNameError

T = TypeVar("T")

__all__ = ["Registry", "close_matches"]


def close_matches(name: str, candidates: Iterable[str], n: int = 3) -> str:
    """Up to ``n`` names close to ``name``, quoted and comma-joined ('' when none is close)."""
    found = difflib.get_close_matches(name, list(candidates), n=n, cutoff=0.6)
    if not found:
        lowered = name.lower()
        found = [c for c in candidates if lowered and (lowered in c.lower() or c.lower() in lowered)][:n]
    return ", ".join(repr(f) for f in found)


class Registry(Generic[T]):
    """Named objects of one kind (tasks, schemas, benchmarks, ...).

    A duplicate name is an error; so is a miss, which names close matches.
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str, item: T, *, replace: bool = False) -> T:
        """Add ``item`` under ``name``; a second registration of a name is an error unless ``replace``."""
        if not name or not isinstance(name, str):
            raise ValueError(f"{self.kind} name must be a non-empty string, got {name!r}")
        if name in self._items and not replace:
            raise KeyError(f"{self.kind} {name!r} is already registered")
        self._items[name] = item
        return item

    def decorator(self, name: str) -> Callable[[T], T]:
        """``@registry.decorator("name")`` registers the decorated object."""

        def wrap(item: T) -> T:
            return self.register(name, item)

        return wrap

    def get(self, name: str) -> T:
        """The item named ``name``; a miss raises :class:`UnknownNameError` (a KeyError) naming close
        matches."""
        try:
            return self._items[name]
        except KeyError:
            hint = close_matches(name, self._items)
            msg = f"unknown {self.kind} {name!r}"
            msg += f"; did you mean {hint}?" if hint else ""
            if not hint and self._items:
                shown = sorted(self._items)
                more = f", ... ({len(shown)} in all)" if len(shown) > 12 else ""
                msg += f"; known: {', '.join(shown[:12])}{more}"
            raise UnknownNameError(msg) from None

    def names(self) -> list[str]:
        """Registered names, sorted."""
        return sorted(self._items)

    def items(self) -> list[tuple[str, T]]:
        return sorted(self._items.items())

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {len(self)} items)"
