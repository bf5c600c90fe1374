"""Instruction templates: one YAML file per family, validated when loaded.

A family file looks like::

    family: bigbench_mc
    description: generic templates for multiple-choice tasks
    fields: [input, options, answer]      # the example fields the templates may read
    templates:
      - inputs: "{{ input }}\\n\\n{{ options_ }}"
        targets: "{{ answer }}"
        formats: [zs_opt, zs_noopt, fs_opt, fs_noopt]   # optional, default: the four Flan formats
        kind: standard                                  # standard | cot | inversion

Besides the example's fields a template may read :data:`SPECIAL_FIELDS`: ``options_`` is the
rendered answer-options block (empty in ``*_noopt`` formats). Every other placeholder must be a
declared field; errors name the file, the template index (and line) and the field.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from flanlab.tasks.formats import ALL_FORMATS, COT_FORMATS, FORMATS
from flanlab.tasks.sandbox import TemplateError, compile_template, placeholders

__all__ = [
    "SPECIAL_FIELDS",
    "TEMPLATE_KINDS",
    "Template",
    "TemplateFamily",
    "builtin_families",
    "builtin_family",
    "load_family",
    "parse_family",
]

# Filled by the renderer, not read from the example: the options block (and, for flan/v2 dialog
# templates, the formatted dialog turns).
SPECIAL_FIELDS = frozenset({"options_", "dialog_"})
TEMPLATE_KINDS = ("standard", "cot", "inversion")
_BUILTIN = "data/templates"


@dataclass(frozen=True)
class Template:
    """One instruction template: Jinja2 text for the inputs and the targets, and the formats it
    serves."""

    id: str
    inputs: str
    targets: str
    formats: tuple[str, ...] = FORMATS
    kind: str = "standard"
    # zs_cot inputs get the zero-shot CoT trigger appended unless the template has its own.
    cot_trigger: bool = True

    def fields(self) -> set[str]:
        """The example fields this template reads (special fields excluded)."""
        return (placeholders(self.inputs) | placeholders(self.targets)) - SPECIAL_FIELDS

    def supports(self, fmt: str) -> bool:
        return fmt in self.formats


@dataclass(frozen=True)
class TemplateFamily:
    """The templates of one family, with the fields they may read and the file they came from."""

    name: str
    templates: tuple[Template, ...]
    fields: tuple[str, ...]
    path: str = "<memory>"
    description: str = ""
    lines: tuple[int, ...] = field(default=(), compare=False)

    def for_format(self, fmt: str) -> list[Template]:
        """The templates that serve ``fmt``."""
        return [t for t in self.templates if t.supports(fmt)]

    def formats(self) -> list[str]:
        """The formats at least one template serves, in canonical order."""
        return [f for f in ALL_FORMATS if any(t.supports(f) for t in self.templates)]

    def needed_fields(self) -> set[str]:
        """Every field some template reads."""
        return set().union(*(t.fields() for t in self.templates)) if self.templates else set()

    def where(self, index: int) -> str:
        line = f" (line {self.lines[index]})" if index < len(self.lines) else ""
        return f"{self.path}: template {index}{line}"

    def validate(self, fields: Iterable[str], task: str | None = None) -> None:
        """Every placeholder of every template must be one of ``fields`` (or special); the error
        names the file, the template index and the missing field."""
        known = set(fields) | SPECIAL_FIELDS
        for i, t in enumerate(self.templates):
            missing = sorted(t.fields() - known)
            if missing:
                whose = f" of task {task!r}" if task else ""
                raise TemplateError(
                    f"{self.where(i)} ({t.id}): unknown placeholder {missing[0]!r}: not a field{whose}; "
                    f"fields are: {', '.join(sorted(set(fields))) or '(none)'}"
                )


# libyaml's parser with the safe constructor when PyYAML was built with it: the same data as
# yaml.safe_load (checked on every shipped YAML file by the tests), ~5x faster; each build worker
# parses every family file.
YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _template_lines(text: str) -> tuple[int, ...]:
    """1-based line of each item of the top-level ``templates:`` list (for error messages)."""
    try:
        root = yaml.compose(text, Loader=YAML_LOADER)
    except yaml.YAMLError:
        return ()
    if not isinstance(root, yaml.MappingNode):
        return ()
    for key, value in root.value:
        if key.value == "templates" and isinstance(value, yaml.SequenceNode):
            return tuple(item.start_mark.line + 1 for item in value.value)
    return ()


def parse_family(text: str, path: str = "<memory>") -> TemplateFamily:
    """Parse and validate a family from YAML text; ``path`` is used in error messages."""
    try:
        data = yaml.load(text, Loader=YAML_LOADER)  # noqa: S506 (a safe loader)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}:" if mark is not None else ""
        raise TemplateError(f"{path}:{where} invalid YAML: {getattr(e, 'problem', e)}") from None
    if not isinstance(data, dict):
        raise TemplateError(f"{path}: expected a mapping with 'family', 'fields' and 'templates'")
    for key in ("family", "fields", "templates"):
        if key not in data:
            raise TemplateError(f"{path}: missing required key {key!r}")
    unknown = set(data) - {"family", "fields", "templates", "description"}
    if unknown:
        raise TemplateError(f"{path}: unknown key {sorted(unknown)[0]!r}; allowed: family, fields, templates, description")
    name, fields, raw = data["family"], data["fields"], data["templates"]
    if not isinstance(name, str) or not name:
        raise TemplateError(f"{path}: key 'family': expected a non-empty string")
    if not isinstance(fields, list) or not all(isinstance(f, str) for f in fields):
        raise TemplateError(f"{path}: key 'fields': expected a list of field names")
    if not isinstance(raw, list) or not raw:
        raise TemplateError(f"{path}: key 'templates': expected a non-empty list")
    lines = _template_lines(text)
    templates = []
    for i, item in enumerate(raw):
        spot = f"{path}: template {i}" + (f" (line {lines[i]})" if i < len(lines) else "")
        templates.append(_parse_template(item, name, i, spot))
    ids = [t.id for t in templates]
    dupes = sorted({x for x in ids if ids.count(x) > 1})
    if dupes:
        raise TemplateError(f"{path}: duplicate template id {dupes[0]!r}")
    family = TemplateFamily(name, tuple(templates), tuple(fields), path, str(data.get("description", "")), lines)
    family.validate(fields)
    return family


def _parse_template(item: Any, family: str, index: int, spot: str) -> Template:
    if not isinstance(item, dict):
        raise TemplateError(f"{spot}: expected a mapping with 'inputs' and 'targets'")
    allowed = {"id", "inputs", "targets", "formats", "kind", "cot_trigger"}
    unknown = set(item) - allowed
    if unknown:
        raise TemplateError(f"{spot}: unknown key {sorted(unknown)[0]!r}; allowed: {', '.join(sorted(allowed))}")
    for key in ("inputs", "targets"):
        if not isinstance(item.get(key), str):
            raise TemplateError(f"{spot}: missing field {key!r} (expected template text)")
        try:
            compile_template(item[key])
        except TemplateError as e:
            raise TemplateError(f"{spot}: {key}: {e}") from None
    kind = item.get("kind", "standard")
    if kind not in TEMPLATE_KINDS:
        raise TemplateError(f"{spot}: kind must be one of {', '.join(TEMPLATE_KINDS)}, got {kind!r}")
    default = COT_FORMATS if kind == "cot" else FORMATS
    formats = item.get("formats", list(default))
    if not isinstance(formats, list) or not formats:
        raise TemplateError(f"{spot}: formats: expected a non-empty list")
    for f in formats:
        if f not in ALL_FORMATS:
            raise TemplateError(f"{spot}: unknown format {f!r}; expected one of {', '.join(ALL_FORMATS)}")
    return Template(
        id=str(item.get("id", f"{family}:{index}")),
        inputs=item["inputs"],
        targets=item["targets"],
        formats=tuple(formats),
        kind=kind,
        cot_trigger=bool(item.get("cot_trigger", True)),
    )


def load_family(path: str | Path) -> TemplateFamily:
    """Load a family YAML file (UTF-8); errors name the file, the template index and the field."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise TemplateError(f"{path}: template family file not found") from None
    except UnicodeDecodeError as e:
        raise TemplateError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    return parse_family(text, str(path))


@cache
def builtin_family(name: str) -> TemplateFamily:
    """A family shipped in ``flanlab/tasks/data/templates/NAME.yaml``."""
    root = resources.files("flanlab.tasks").joinpath(_BUILTIN)
    file = root.joinpath(f"{name}.yaml")
    if not file.is_file():
        known = ", ".join(builtin_families())
        raise TemplateError(f"unknown template family {name!r}; shipped families: {known}")
    return parse_family(file.read_text("utf-8"), f"flanlab/tasks/{_BUILTIN}/{name}.yaml")


def builtin_families() -> list[str]:
    """Names of the shipped families."""
    root = resources.files("flanlab.tasks").joinpath(_BUILTIN)
    return sorted(p.name[:-5] for p in root.iterdir() if p.name.endswith(".yaml"))
