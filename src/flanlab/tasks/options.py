"""Answer options in the Flan styles.

The deterministic Flan rendering is ``"OPTIONS:\\n- a\\n- b"``. The randomized styles vary the
header, the marker before each option (``-``, ``(A)``, ``A.``, ``i.``, ``1.`` ...) and the
separators; a style is drawn per example from a seeded RNG. When a style labels the options
(``(A)``, ``i.``), the target becomes the answer's label. The style pieces are data
(``data/option_styles.yaml``).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

import yaml

from flanlab.core.errors import UserError

__all__ = [
    "LABEL_KINDS",
    "OptionStyle",
    "RenderedOptions",
    "deterministic_style",
    "label",
    "random_style",
    "render_options",
    "skip_random_style",
]

LABEL_KINDS = ("none", "upper", "lower", "roman", "roman_upper", "number")
_ROMAN = [(1000, "m"), (900, "cm"), (500, "d"), (400, "cd"), (100, "c"), (90, "xc"), (50, "l"),
          (40, "xl"), (10, "x"), (9, "ix"), (5, "v"), (4, "iv"), (1, "i")]


def _roman(n: int) -> str:
    out = []
    for value, numeral in _ROMAN:
        while n >= value:
            out.append(numeral)
            n -= value
    return "".join(out)


def _letters(i: int) -> str:
    # A..Z, then AA, AB, ... so that long option lists still get distinct labels.
    s = ""
    i += 1
    while i:
        i, r = divmod(i - 1, 26)
        s = chr(ord("A") + r) + s
    return s


def label(kind: str, index: int) -> str:
    """The label of option ``index`` (0-based) for a label kind: ``upper`` → A, ``roman`` → i ..."""
    if kind == "upper":
        return _letters(index)
    if kind == "lower":
        return _letters(index).lower()
    if kind == "roman":
        return _roman(index + 1)
    if kind == "roman_upper":
        return _roman(index + 1).upper()
    if kind == "number":
        return str(index + 1)
    if kind == "none":
        return ""
    raise ValueError(f"unknown label kind {kind!r}; expected one of {LABEL_KINDS}")


@dataclass(frozen=True)
class OptionStyle:
    """How a list of options is written: ``header`` + ``header_separator``, then each option as
    ``marker`` (with ``{label}``) + text, joined by ``separator``. ``target`` (with ``{label}``),
    when set, is what the answer's target becomes."""

    header: str = "OPTIONS:"
    header_separator: str = "\n"
    marker: str = "- "
    labels: str = "none"
    separator: str = "\n"
    target: str | None = None

    @property
    def uses_labels(self) -> bool:
        return self.labels != "none" and self.target is not None


@dataclass(frozen=True)
class RenderedOptions:
    """The options block and, per option, the target it maps to (its label or its text)."""

    text: str
    targets: tuple[str, ...]

    def target_for(self, options: Sequence[str], answer: str) -> str:
        """The target for ``answer``: its label under a labelled style, else the answer itself."""
        try:
            return self.targets[list(options).index(answer)]
        except ValueError:
            return answer


def render_options(options: Sequence[Any], style: OptionStyle) -> RenderedOptions:
    """Write ``options`` in ``style``."""
    items, targets = [], []
    for i, option in enumerate(options):
        text = str(option)
        lab = label(style.labels, i)
        items.append(style.marker.replace("{label}", lab) + text)
        targets.append(style.target.replace("{label}", lab) if style.uses_labels else text)
    body = style.separator.join(items)
    return RenderedOptions(f"{style.header}{style.header_separator}{body}", tuple(targets))


def _check(where: str, data: Any, key: str, kind: type) -> Any:
    if key not in data:
        raise UserError(f"{where}: missing key {key!r}")
    value = data[key]
    if not isinstance(value, kind):
        raise UserError(f"{where}: key {key!r}: expected {kind.__name__}, got {type(value).__name__}")
    return value


@lru_cache(maxsize=1)
def _styles() -> dict[str, Any]:
    where = "flanlab/tasks/data/option_styles.yaml"
    data = yaml.safe_load(resources.files("flanlab.tasks").joinpath("data/option_styles.yaml").read_text("utf-8"))
    det = _check(where, data, "deterministic", dict)
    markers = []
    for i, m in enumerate(_check(where, data, "markers", list)):
        spot = f"{where}: markers[{i}]"
        _check(spot, m, "marker", str)
        if m.get("labels", "none") not in LABEL_KINDS:
            raise UserError(f"{spot}: labels must be one of {LABEL_KINDS}, got {m.get('labels')!r}")
        markers.append(m)
    return {
        "deterministic": OptionStyle(**det),
        "headers": tuple(_check(where, data, "headers", list)),
        "header_separators": tuple(_check(where, data, "header_separators", list)),
        "separators": tuple(_check(where, data, "separators", list)),
        "markers": tuple(markers),
    }


def deterministic_style() -> OptionStyle:
    """The Flan rendering ``OPTIONS:\\n- a\\n- b``."""
    return _styles()["deterministic"]


def random_style(rng: random.Random) -> OptionStyle:
    """A randomized Flan style drawn from ``rng`` (header, marker and separators independently)."""
    s = _styles()
    m = rng.choice(s["markers"])
    return OptionStyle(
        header=rng.choice(s["headers"]),
        header_separator=rng.choice(s["header_separators"]),
        marker=m["marker"],
        labels=m.get("labels", "none"),
        separator=rng.choice(s["separators"]),
        target=m.get("target"),
    )


def skip_random_style(rng: random.Random) -> None:
    """Advance ``rng`` exactly as :func:`random_style` does, without building a style: an example
    that shows no options still makes the draws, so everything drawn after them is unchanged."""
    s = _styles()
    for key in ("markers", "headers", "header_separators", "separators"):
        rng.choice(s[key])
