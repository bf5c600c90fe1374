"""Typed configuration: pydantic schemas loaded from YAML with dotted ``key=value`` overrides.

Every config file names its schema with a top-level ``kind:`` key (``mixture``, ``train``,
``eval``, ...). Stages register their schemas in :data:`SCHEMAS` when they are imported; core
itself knows none of them, so imports keep flowing downhill.

Errors are :class:`ConfigError` and always name the file, the dotted key, what was expected and,
where the YAML has it, the line.
"""

from __future__ import annotations

import contextlib
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from flanlab.core.errors import UserError
from flanlab.core.registry import Registry, close_matches

__all__ = [
    "SCHEMAS",
    "ConfigError",
    "Schema",
    "apply_overrides",
    "dump_config",
    "load_config",
    "load_yaml",
    "parse_overrides",
    "validate",
]

M = TypeVar("M", bound=BaseModel)


class Schema(BaseModel):
    """Base of every config schema: unknown keys are errors, values are validated on assignment."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, protected_namespaces=())


SCHEMAS: Registry[type[Schema]] = Registry("config kind")


class ConfigError(ValueError, UserError):
    """A config problem, with the file and the dotted key it concerns."""


def _describe_type(annotation: Any) -> str:
    """A short human name for a type annotation: ``int``, ``list[str]``, ``'a' | 'b'``."""
    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        return " | ".join(repr(a) for a in typing.get_args(annotation))
    if origin in (typing.Union, types.UnionType):
        return " | ".join(_describe_type(a) for a in typing.get_args(annotation))
    if origin is not None:
        args = ", ".join(_describe_type(a) for a in typing.get_args(annotation))
        name = getattr(origin, "__name__", str(origin))
        return f"{name}[{args}]" if args else name
    if annotation is type(None):
        return "null"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return f"mapping ({annotation.__name__})"
    return getattr(annotation, "__name__", str(annotation))


def _field_annotation(model: type[BaseModel], loc: Sequence[Any]) -> Any | None:
    """Walk a pydantic error location through nested models to the field's annotation."""
    current: Any = model
    annotation = None
    for part in loc:
        if isinstance(current, type) and issubclass(current, BaseModel):
            field = current.model_fields.get(str(part))
            if field is None:
                return None
            annotation = field.annotation
            current = annotation
            continue
        # Unwrap Optional / containers to find the next model.
        args = [a for a in typing.get_args(current) if a is not type(None)]
        if isinstance(part, int) or typing.get_origin(current) in (list, tuple, dict):
            current = args[-1] if args else None
            annotation = current
            continue
        models = [a for a in args if isinstance(a, type) and issubclass(a, BaseModel)]
        if not models:
            return None
        current = models[0]
        field = current.model_fields.get(str(part))
        if field is None:
            return None
        annotation = field.annotation
        current = annotation
    return annotation


def _yaml_lines(text: str) -> dict[tuple[str, ...], int]:
    """Map every dotted key path of a YAML document to its 1-based line number."""
    lines: dict[tuple[str, ...], int] = {}
    try:
        root = yaml.compose(text)
    except yaml.YAMLError:
        return lines

    def walk(node: yaml.Node, path: tuple[str, ...]) -> None:
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                sub = (*path, str(key.value))
                lines[sub] = key.start_mark.line + 1
                walk(value, sub)
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                sub = (*path, str(i))
                lines[sub] = item.start_mark.line + 1
                walk(item, sub)

    if root is not None:
        walk(root, ())
    return lines


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping, with errors that name the file and line."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}:{where} invalid YAML: {getattr(e, 'problem', e)}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    return data


def parse_overrides(items: Sequence[str]) -> list[tuple[list[str], Any]]:
    """Parse ``a.b.c=value`` strings; the value is read as YAML (``3`` → int, ``[a, b]`` → list)."""
    parsed = []
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"override {item!r}: expected KEY=VALUE, e.g. train.lr=1e-4")
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            value = raw
        # YAML reads 1e-4 as a string; numbers in overrides are common enough to help here.
        if isinstance(value, str):
            with contextlib.suppress(ValueError):
                value = float(value) if any(c in value for c in ".eE") else value
        parsed.append((key.strip().split("."), value))
    return parsed


def apply_overrides(data: dict[str, Any], overrides: Sequence[str], source: str = "<overrides>") -> dict:
    """Return a copy of ``data`` with dotted overrides applied; intermediate mappings are created."""
    import copy

    out = copy.deepcopy(data)
    for keys, value in parse_overrides(overrides):
        node = out
        for i, key in enumerate(keys[:-1]):
            child = node.get(key)
            if child is None:
                child = node[key] = {}
            if not isinstance(child, dict):
                dotted = ".".join(keys[: i + 1])
                raise ConfigError(f"{source}: override of {'.'.join(keys)!r}: {dotted!r} is not a mapping")
            node = child
        node[keys[-1]] = value
    return out


def validate(schema: type[M], data: Mapping[str, Any], source: str = "<config>", text: str | None = None) -> M:
    """Validate ``data`` against ``schema``; errors name the file, key, expected type and line."""
    try:
        return schema.model_validate(dict(data))
    except ValidationError as e:
        lines = _yaml_lines(text) if text else {}
        problems = []
        for err in e.errors():
            loc = [p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-"))]
            dotted = ".".join(str(p) for p in loc) or "<root>"
            line = lines.get(tuple(str(p) for p in loc))
            where = f"{source}:{line}" if line else source
            kind = err["type"]
            if kind == "extra_forbidden":
                parent = _field_annotation(schema, loc[:-1]) if len(loc) > 1 else schema
                allowed = sorted(parent.model_fields) if isinstance(parent, type) and issubclass(
                    parent, BaseModel) else []
                hint = close_matches(str(loc[-1]), allowed)
                msg = f"unknown key {dotted!r}" + (f" (did you mean {hint}?)" if hint else "")
                if allowed:
                    msg += f"; allowed here: {', '.join(allowed)}"
            elif kind == "missing":
                ann = _field_annotation(schema, loc)
                msg = f"missing required key {dotted!r} (expected {_describe_type(ann)})"
            else:
                ann = _field_annotation(schema, loc)
                expected = _describe_type(ann) if ann is not None else "a valid value"
                got = err.get("input")
                msg = f"key {dotted!r}: expected {expected}, got {got!r} ({err['msg']})"
            problems.append(f"{where}: {msg}")
        raise ConfigError("\n".join(problems)) from None


def load_config(
    path: str | Path,
    overrides: Sequence[str] = (),
    schema: type[M] | None = None,
) -> M:
    """Load a YAML config, apply overrides and validate it.

    Without ``schema`` the file's ``kind:`` picks one from :data:`SCHEMAS`.
    """
    path = Path(path)
    data = load_yaml(path)
    text = path.read_text(encoding="utf-8")
    data = apply_overrides(data, overrides, source=str(path))
    if schema is None:
        kind = data.get("kind")
        if kind is None:
            raise ConfigError(
                f"{path}: missing required key 'kind' (expected one of: {', '.join(SCHEMAS.names())})"
            )
        try:
            schema = SCHEMAS.get(str(kind))  # type: ignore[assignment]
        except KeyError as e:
            raise ConfigError(f"{path}: key 'kind': {e}") from None
    return validate(schema, data, source=str(path), text=text)  # type: ignore[arg-type]


def dump_config(config: BaseModel) -> str:
    """The resolved config as YAML, in field order."""
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False, allow_unicode=True)
