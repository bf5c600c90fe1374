"""The original Flan templates, read at run time from a user's checkout of google-research/FLAN.

``flan/v2/templates.py`` holds ``PATTERNS = {"rte": [(inputs, targets), ...], ...}`` as Python
``str.format`` strings. We parse the file with :mod:`ast` and evaluate only literals (strings,
implicit/explicit ``+`` concatenation, tuples, lists, dicts, and names bound earlier to such
literals); the file is never imported or executed, and nothing of it is copied into this
repository. Templates become Jinja2 text rendered in our sandbox.
"""

from __future__ import annotations

import ast
import contextlib
import string
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from flanlab.core.errors import UserError
from flanlab.tasks.formats import FORMATS
from flanlab.tasks.template import Template, TemplateFamily

__all__ = ["FlanRepoError", "flan_family", "format_to_jinja", "load_flan_patterns", "templates_path"]

_NOOPT = ("zs_noopt", "fs_noopt")


class FlanRepoError(ValueError, UserError):
    """The checkout is missing, or its templates.py is not in the expected shape."""


def templates_path(flan_repo: str | Path) -> Path:
    """``flan/v2/templates.py`` inside a checkout (or the file itself)."""
    root = Path(flan_repo).expanduser()
    path = root if root.is_file() else root / "flan" / "v2" / "templates.py"
    if not path.is_file():
        raise FlanRepoError(f"{path}: not found; --flan-repo must point at a checkout of google-research/FLAN "
                            "(containing flan/v2/templates.py)")
    return path


class _Literal(ast.NodeVisitor):
    """Evaluate literal expressions only; anything else raises ValueError with its line."""

    def __init__(self, names: dict[str, Any]) -> None:
        self.names = names

    def eval(self, node: ast.AST) -> Any:
        if isinstance(node, ast.Constant) and isinstance(node.value, (str, int, float, bool, type(None))):
            return node.value
        if isinstance(node, (ast.Tuple, ast.List)):
            items = [self.eval(e) for e in node.elts]
            return tuple(items) if isinstance(node, ast.Tuple) else items
        if isinstance(node, ast.Dict):
            if any(k is None for k in node.keys):
                raise ValueError(f"line {node.lineno}: dict unpacking is not a literal")
            return {self.eval(k): self.eval(v) for k, v in zip(node.keys, node.values, strict=True)}
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
            left, right = self.eval(node.left), self.eval(node.right)
            if isinstance(left, str) and isinstance(right, str):
                return left + right
            if isinstance(left, list) and isinstance(right, list):
                return left + right
            raise ValueError(f"line {node.lineno}: '+' of non-strings")
        if isinstance(node, ast.Name) and node.id in self.names:
            return self.names[node.id]
        raise ValueError(f"line {getattr(node, 'lineno', '?')}: not a literal ({type(node).__name__})")


@cache
def _parse(path: str, mtime: float) -> tuple[dict[str, list[tuple[str, str]]], tuple[str, ...]]:
    text = Path(path).read_text(encoding="utf-8")
    try:
        tree = ast.parse(text, filename=path)
    except SyntaxError as e:
        raise FlanRepoError(f"{path}:{e.lineno}: cannot parse ({e.msg})") from None
    names: dict[str, Any] = {}
    evaluator = _Literal(names)
    patterns: dict[str, list[tuple[str, str]]] = {}
    skipped: list[str] = []
    found = False
    for node in tree.body:
        if not isinstance(node, ast.Assign) or len(node.targets) != 1:
            continue
        target = node.targets[0]
        if isinstance(target, ast.Name):
            if target.id == "PATTERNS":
                if not isinstance(node.value, ast.Dict):
                    raise FlanRepoError(f"{path}:{node.lineno}: PATTERNS is not a dict literal")
                found = True
                for k, v in zip(node.value.keys, node.value.values, strict=True):
                    if not (isinstance(k, ast.Constant) and isinstance(k.value, str)):
                        continue
                    _add(patterns, skipped, k.value, v, evaluator, path)
                continue
            # Names bound to non-literals (dataclasses, copies ...) are never needed by literals.
            with contextlib.suppress(ValueError):
                names[target.id] = evaluator.eval(node.value)
        elif (isinstance(target, ast.Subscript) and isinstance(target.value, ast.Name)
              and target.value.id == "PATTERNS" and isinstance(target.slice, ast.Constant)):
            _add(patterns, skipped, str(target.slice.value), node.value, evaluator, path)
    if not found:
        raise FlanRepoError(f"{path}: no top-level 'PATTERNS = {{...}}' dict found")
    return patterns, tuple(skipped)


def _add(patterns: dict, skipped: list, key: str, node: ast.AST, evaluator: _Literal, path: str) -> None:
    try:
        value = evaluator.eval(node)
    except ValueError:
        skipped.append(key)  # built by code (e.g. copied from another module): not a literal here
        return
    if not isinstance(value, list) or not all(
            isinstance(p, tuple) and len(p) >= 2 and all(isinstance(s, str) for s in p[:2]) for p in value):
        raise FlanRepoError(f"{path}:{node.lineno}: PATTERNS[{key!r}]: expected a list of (inputs, targets) "
                            "string pairs")
    patterns[key] = [(p[0], p[1]) for p in value]


def load_flan_patterns(flan_repo: str | Path) -> dict[str, list[tuple[str, str]]]:
    """``{pattern name: [(inputs, targets), ...]}`` from the checkout's ``flan/v2/templates.py``."""
    path = templates_path(flan_repo)
    return _parse(str(path.resolve()), path.stat().st_mtime)[0]


def format_to_jinja(text: str, aliases: dict[str, str] | None = None) -> tuple[str, set[str]]:
    """A ``str.format`` template as Jinja2 text, and the fields it reads (after ``aliases``).

    Literal text is emitted as a Jinja string expression when it contains Jinja syntax, so no
    Flan text can become template code."""
    aliases = aliases or {}
    out: list[str] = []
    used: set[str] = set()
    try:
        parts = list(string.Formatter().parse(text))
    except ValueError as e:
        raise FlanRepoError(f"bad format string {text[:60]!r}: {e}") from None
    for literal, field, spec, conversion in parts:
        if literal:
            if any(tok in literal for tok in ("{{", "{%", "{#", "}}", "%}", "#}")) or "{" in literal or "}" in literal:
                out.append("{{ " + repr(literal) + " }}")
            else:
                out.append(literal)
        if field is None:
            continue
        if spec or conversion or not field.isidentifier():
            raise FlanRepoError(f"unsupported placeholder {{{field}}} in {text[:60]!r}")
        name = "options_" if field == "options_" else aliases.get(field, field)
        if name != "options_":
            used.add(name)
        out.append("{{ " + name + " }}")
    return "".join(out), used


@cache
def _aliases() -> dict[str, Any]:
    ref = resources.files("flanlab.tasks.collection").joinpath("data/muffin/flan_aliases.yaml")
    return yaml.safe_load(ref.read_text("utf-8"))


def pattern_name(dataset: str) -> str:
    """The PATTERNS key of a Muffin dataset."""
    return _aliases()["patterns"].get(dataset, dataset)


def flan_family(flan_repo: str | Path, dataset: str, family: str, fields: tuple[str, ...],
                inverted: bool = False) -> TemplateFamily:
    """The original Flan templates of ``dataset`` as a family over our ``fields``.

    Templates reading a placeholder our mapping cannot provide are skipped; none left is an error.
    """
    patterns = load_flan_patterns(flan_repo)
    key = pattern_name(dataset)
    path = templates_path(flan_repo)
    if key not in patterns:
        from flanlab.core.registry import close_matches

        hint = close_matches(key, patterns)
        raise FlanRepoError(f"{path}: no PATTERNS[{key!r}] for dataset {dataset!r}"
                            + (f"; did you mean {hint}?" if hint else ""))
    spec = _aliases()["families"].get(family)
    if spec is None:
        raise FlanRepoError(f"flan_aliases.yaml: no entry for family {family!r}")
    aliases, target = dict(spec["aliases"]), spec["target"]
    aliases.setdefault("answer", "answer")
    available = set(fields)
    templates = []
    for i, (inp, tgt) in enumerate(patterns[key]):
        jin, used_in = format_to_jinja(inp, aliases)
        jtg, used_tg = format_to_jinja(tgt, aliases)
        if not (used_in | used_tg) <= available:
            continue
        is_inversion = target not in used_tg
        if is_inversion != inverted:
            continue
        has_options = "{{ options_ }}" in jin
        formats = FORMATS if has_options and not inverted else _NOOPT
        templates.append(Template(id=f"flan:{key}:{i}", inputs=jin, targets=jtg, formats=formats,
                                  kind="inversion" if inverted else "standard"))
    if not templates:
        kind = "inversion" if inverted else "standard"
        raise FlanRepoError(f"{path}: PATTERNS[{key!r}] has no {kind} template over the fields "
                            f"{sorted(available)} (after aliases {aliases})")
    return TemplateFamily(f"flan:{key}" + (":inverted" if inverted else ""), tuple(templates),
                          tuple(fields), str(path), f"Flan templates for {dataset}")
