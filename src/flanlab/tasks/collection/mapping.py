"""Field mappings: how a raw dataset row becomes the fields a template family reads.

A mapping is data (see ``data/muffin/datasets.yaml``)::

    fields:  {premise: premise, answer: answers.text.0, lang: {const: German},
              data: {join: tripleset, sep: "; ", inner: " | "}}
    options: ["yes", "no"]  |  [{path: choice1}, {path: choice2}]  |  {path: choices.text}
    answer:  {index: label, offset: 0} | {match: answerKey, among: choices.label}
             | {map: label, values: {0: no, 1: yes}} | {path: answer}
    skip:    {label: [-1]}

:func:`mapped_source` wraps any :class:`~flanlab.tasks.sources.Source` and applies a mapping, dropping
skipped rows; errors name the row (``file:line`` / ``hf:... row N``) and the path that failed.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from flanlab.core.errors import UserError
from flanlab.tasks.sources import Source, SourceError

__all__ = ["ExpandSource", "FieldMapping", "MappingError", "get_path", "mapped_source", "parse_mapping"]


class MappingError(ValueError, UserError):
    """A malformed mapping in a data file: names the file, the dataset and the key."""


_MISSING = object()


def get_path(row: Any, path: str) -> Any:
    """Follow a dotted path through dicts and lists (``answers.text.0``); missing → KeyError(path)."""
    node = row
    for part in path.split("."):
        if isinstance(node, Mapping) and part in node:
            node = node[part]
        elif isinstance(node, (list, tuple)) and part.lstrip("-").isdigit() and -len(node) <= int(part) < len(node):
            node = node[int(part)]
        else:
            raise KeyError(path)
    return node


def _check_spec(spec: Any, where: str) -> None:
    if isinstance(spec, str):
        return
    if isinstance(spec, dict) and len(spec) >= 1:
        kinds = {"const", "join", "path", "concat"} & set(spec)
        if "concat" in spec:
            if not isinstance(spec["concat"], list) or not spec["concat"]:
                raise MappingError(f"{where}: concat: expected a list of specs")
            for i, part in enumerate(spec["concat"]):
                _check_spec(part, f"{where}.concat.{i}")
        regex = spec.get("regex", [])
        if len(kinds) == 1 and isinstance(regex, list) and all(
                isinstance(r, list) and len(r) == 2 and all(isinstance(x, str) for x in r) for r in regex):
            return
    raise MappingError(f"{where}: expected a dotted path, {{const: v}}, {{path: p}}, {{join: p, sep: s}} or "
                       f"{{concat: [specs]}} (optional regex: [[pattern, replacement], ...]), got {spec!r}")


def _value(row: Any, spec: Any) -> Any:
    if isinstance(spec, str):
        return get_path(row, spec)
    if "regex" in spec:
        import re

        value = str(_value(row, {k: v for k, v in spec.items() if k != "regex"}))
        for pattern, repl in spec["regex"]:
            value = re.sub(pattern, repl, value)
        return value
    if "const" in spec:
        return spec["const"]
    if "concat" in spec:
        return "".join(str(_value(row, part)) for part in spec["concat"])
    if "path" in spec:
        return get_path(row, spec["path"])
    items = get_path(row, spec["join"])
    if not isinstance(items, (list, tuple)):
        raise KeyError(spec["join"])
    inner = spec.get("inner", " ")
    parts = [inner.join(map(str, x)) if isinstance(x, (list, tuple)) else str(x) for x in items]
    return spec.get("sep", " ").join(parts)


@dataclass(frozen=True)
class FieldMapping:
    """A validated mapping (see the module docstring)."""

    fields: Mapping[str, Any]
    options: Any = None
    answer: Mapping[str, Any] | None = None
    skip: Mapping[str, list[Any]] | None = None

    def has_options(self) -> bool:
        return self.options is not None

    def apply(self, row: Mapping[str, Any]) -> dict[str, Any] | None:
        """The family fields of ``row`` (None when ``skip`` drops it); KeyError names a missing path."""
        for path, values in (self.skip or {}).items():
            if get_path(row, path) in values:
                return None
        out = {name: _value(row, spec) for name, spec in self.fields.items()}
        options = None
        if self.options is not None:
            if isinstance(self.options, dict):
                options = [str(o) for o in get_path(row, self.options["path"])]
            else:
                options = [str(_value(row, o)) if isinstance(o, dict) else str(o) for o in self.options]
            out["options"] = options
        if self.answer is not None:
            out["answer"] = self._answer(row, options)
        return out

    def _answer(self, row: Mapping[str, Any], options: list[str] | None) -> str:
        a = self.answer or {}
        if "index" in a:
            i = int(get_path(row, a["index"])) + int(a.get("offset", 0))
            if options is None or not 0 <= i < len(options):
                raise ValueError(f"answer index {i} out of range for {len(options or [])} options")
            return options[i]
        if "match" in a:
            key = get_path(row, a["match"])
            labels = [str(x) for x in get_path(row, a["among"])]
            if str(key) not in labels:
                raise ValueError(f"answer key {key!r} is not among {labels}")
            return (options or [])[labels.index(str(key))]
        if "map" in a:
            raw = get_path(row, a["map"])
            if raw not in a["values"]:
                raise ValueError(f"{a['map']}={raw!r} has no entry in values {a['values']}")
            return str(a["values"][raw])
        return str(get_path(row, a["path"]))


def parse_mapping(data: Mapping[str, Any], where: str) -> FieldMapping:
    """Validate a mapping read from a data file; errors name ``where`` and the key."""
    fields = data.get("fields")
    if not isinstance(fields, dict) or not fields:
        raise MappingError(f"{where}: 'fields' must be a non-empty mapping of family field -> path")
    for name, spec in fields.items():
        _check_spec(spec, f"{where}.fields.{name}")
    options = data.get("options")
    if options is not None:
        if isinstance(options, dict):
            if set(options) != {"path"}:
                raise MappingError(f"{where}.options: expected {{path: list_field}}, got {options!r}")
        elif isinstance(options, list) and len(options) >= 2:
            for i, o in enumerate(options):
                if isinstance(o, dict):
                    _check_spec(o, f"{where}.options.{i}")
                elif not isinstance(o, (str, int, float)):
                    raise MappingError(f"{where}.options.{i}: expected a string or {{path: p}}, got {o!r}")
        else:
            raise MappingError(f"{where}.options: expected at least 2 options or {{path: list_field}}")
    answer = data.get("answer")
    if answer is not None:
        shapes = [{"index"}, {"index", "offset"}, {"match", "among"}, {"map", "values"}, {"path"}]
        if not isinstance(answer, dict) or set(answer) not in shapes:
            raise MappingError(f"{where}.answer: expected one of {{index[, offset]}}, {{match, among}}, "
                               f"{{map, values}}, {{path}}; got {answer!r}")
        if ("index" in answer or "match" in answer) and options is None:
            raise MappingError(f"{where}.answer: an index/match answer needs 'options'")
    elif options is not None:
        raise MappingError(f"{where}: 'options' given without 'answer'")
    skip = data.get("skip")
    if skip is not None and not (isinstance(skip, dict) and all(isinstance(v, list) for v in skip.values())):
        raise MappingError(f"{where}.skip: expected {{field: [values to drop]}}, got {skip!r}")
    return FieldMapping(dict(fields), options, answer, skip)


@dataclass
class ExpandSource:
    """A source whose rows each become zero or more examples through ``fn(where, row)``, which
    yields ``(where, example)`` pairs (dialogs → one example per turn, prompts → rendered pairs)."""

    inner: Source
    fn: Any
    name: str = ""

    def __post_init__(self) -> None:
        self.name = self.name or self.inner.name

    def splits(self) -> list[str]:
        return self.inner.splits()

    def records(self, split: str) -> Iterator[tuple[str, dict[str, Any]]]:
        for where, row in self.inner.records(split):
            try:
                yield from self.fn(where, row)
            except KeyError as e:
                raise SourceError(f"{where}: no field {e.args[0]!r} in the row (fields: "
                                  f"{', '.join(sorted(row)) or 'none'})") from None


def mapped_source(inner: Source, mapping: FieldMapping, name: str = "") -> ExpandSource:
    """``inner`` with every row passed through ``mapping``; rows the mapping skips are dropped."""

    def apply(where: str, row: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
        try:
            out = mapping.apply(row)
        except (ValueError, TypeError) as e:
            raise SourceError(f"{where}: {e}") from None
        if out is not None:
            yield where, out

    return ExpandSource(inner, apply, name)
