"""The original Flan 2022 templates, read at run time from a user's checkout of google-research/FLAN.

From ``flan/v2/templates.py`` we read ``PATTERNS`` (zero-shot), ``FEWSHOT_PATTERNS``
(``FewShotPattern(...)`` entries with their prefixes, delimiters and separators),
``INLINE_FS_PATTERNS`` (NIv2), the option and dialog randomization candidates
(``OPT_START_STRING_CANDIDATES`` ...) and the ``.replace(...)`` chains that turn patterns into
their no-options versions; from ``flan_templates_branched.py`` the branched no-options
``PATTERNS``; from ``constants.py`` ``FEW_SHOT_MAX_LEN`` and ``T_NAME_TO_NUM_CASES``.

The files are parsed with :mod:`ast` and only a small expression language is evaluated (literals,
``+``, names bound earlier, list comprehensions over ``range`` with ``chr``/``ord``/``str`` and
``str.lower``/``upper``, conditional expressions, ``FewShotPattern(...)`` with the defaults of its
dataclass); nothing is imported or executed and nothing of it is copied into this repository.
Every pattern keeps its file line; an entry that cannot be read is recorded with its line and
raised (a :class:`FlanRepoError`) when a task asks for it — never replaced by other templates.
"""

from __future__ import annotations

import ast
import string
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from flanlab.core.errors import UserError

__all__ = [
    "FewShotPattern",
    "FlanPattern",
    "FlanRepo",
    "FlanRepoError",
    "format_to_jinja",
    "load_flan_repo",
    "placeholders",
    "t0_task_types",
    "templates_path",
]


class FlanRepoError(ValueError, UserError):
    """The checkout is missing, or one of its files (or one entry) is not in the expected shape."""


@dataclass(frozen=True)
class FlanPattern:
    """A zero-shot ``(inputs, targets)`` pattern of flan/v2, with where it was read."""

    inputs: str
    targets: str
    file: str
    line: int

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}"


@dataclass(frozen=True)
class FewShotPattern:
    """A flan/v2 ``FewShotPattern`` (same field meanings), with where it was read."""

    inputs: str
    targets: str
    inputs_prefix: str
    targets_prefix: str
    x_y_delimiter: str
    example_separator: str
    final_suffix: str
    input_pattern: str
    in_template_mix: bool
    file: str
    line: int

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}"

    @property
    def combined_inputs_w_target_prefix(self) -> str:
        return self.inputs_prefix + self.inputs + self.x_y_delimiter + self.targets_prefix

    @property
    def combined_targets_wo_target_prefix(self) -> str:
        return self.targets + self.example_separator


def templates_path(flan_repo: str | Path) -> Path:
    """``flan/v2/templates.py`` inside a checkout (or the file itself)."""
    root = Path(flan_repo).expanduser()
    path = root if root.is_file() else root / "flan" / "v2" / "templates.py"
    if not path.is_file():
        raise FlanRepoError(f"{path}: not found; --flan-repo must point at a checkout of google-research/FLAN "
                            "(containing flan/v2/templates.py)")
    return path


def placeholders(text: str) -> list[str]:
    """The ``{name}`` fields a flan/v2 pattern reads, in order (``str.format`` syntax)."""
    try:
        return [f for _, f, _, _ in string.Formatter().parse(text) if f is not None]
    except ValueError as e:
        raise FlanRepoError(f"bad format string {text[:60]!r}: {e}") from None


# -- the restricted evaluator ------------------------------------------------------------------
_FUNCS: dict[str, Callable[..., Any]] = {"range": range, "chr": chr, "ord": ord, "str": str, "len": len}
_METHODS = {"lower", "upper", "strip"}


class _Eval:
    """Evaluates the small expression language the data parts of flan/v2 are written in."""

    def __init__(self, names: dict[str, Any], fewshot_defaults: dict[str, Any] | None, file: str) -> None:
        self.names, self.fewshot_defaults, self.file = names, fewshot_defaults, file

    def __call__(self, node: ast.AST, local: dict[str, Any] | None = None) -> Any:
        local = local or {}
        ev = self.__call__
        if isinstance(node, ast.Constant) and isinstance(node.value, (str, int, float, bool, type(None))):
            return node.value
        if isinstance(node, (ast.Tuple, ast.List)):
            items = [ev(e, local) for e in node.elts]
            return tuple(items) if isinstance(node, ast.Tuple) else items
        if isinstance(node, ast.Dict):
            if any(k is None for k in node.keys):
                raise ValueError(f"line {node.lineno}: dict unpacking is not data")
            return {ev(k, local): ev(v, local) for k, v in zip(node.keys, node.values, strict=True)}
        if isinstance(node, ast.BinOp):
            left, right = ev(node.left, local), ev(node.right, local)
            if isinstance(node.op, ast.Add) and type(left) is type(right) and isinstance(left, (str, list, int)):
                return left + right
            if isinstance(node.op, ast.Sub) and isinstance(left, int) and isinstance(right, int):
                return left - right
            if isinstance(node.op, ast.Mod) and isinstance(left, int) and isinstance(right, int):
                return left % right
            raise ValueError(f"line {node.lineno}: unsupported operator {type(node.op).__name__}")
        if isinstance(node, ast.Name):
            if node.id in local:
                return local[node.id]
            if node.id in self.names:
                return self.names[node.id]
            raise ValueError(f"line {node.lineno}: unknown name {node.id!r}")
        if isinstance(node, ast.Compare) and len(node.ops) == 1 and isinstance(node.ops[0], (ast.Eq, ast.NotEq)):
            a, b = ev(node.left, local), ev(node.comparators[0], local)
            return (a == b) if isinstance(node.ops[0], ast.Eq) else (a != b)
        if isinstance(node, ast.IfExp):
            return ev(node.body, local) if ev(node.test, local) else ev(node.orelse, local)
        if isinstance(node, ast.ListComp) and len(node.generators) == 1:
            gen = node.generators[0]
            if not isinstance(gen.target, ast.Name) or gen.is_async:
                raise ValueError(f"line {node.lineno}: unsupported comprehension")
            out = []
            for value in ev(gen.iter, local):
                inner = {**local, gen.target.id: value}
                if all(ev(cond, inner) for cond in gen.ifs):
                    out.append(ev(node.elt, inner))
            return out
        if isinstance(node, ast.Subscript):
            base = ev(node.value, local)
            return base[ev(node.slice, local)]
        if isinstance(node, ast.Call):
            return self._call(node, local)
        raise ValueError(f"line {getattr(node, 'lineno', '?')}: not data ({type(node).__name__})")

    def _call(self, node: ast.Call, local: dict[str, Any]) -> Any:
        func = node.func
        if isinstance(func, ast.Attribute) and func.attr in _METHODS and not node.args and not node.keywords:
            value = self(func.value, local)
            if isinstance(value, str):
                return getattr(value, func.attr)()
        if isinstance(func, ast.Name) and func.id == "FewShotPattern" and self.fewshot_defaults is not None:
            if node.args:
                raise ValueError(f"line {node.lineno}: FewShotPattern takes keyword arguments here")
            kwargs = {k.arg: self(k.value, local) for k in node.keywords}
            unknown = set(kwargs) - set(self.fewshot_defaults) - {"inputs", "targets"}
            if unknown or not {"inputs", "targets"} <= set(kwargs) or any(k is None for k in kwargs):
                raise ValueError(f"line {node.lineno}: FewShotPattern needs inputs/targets and known fields")
            values = {**self.fewshot_defaults, **kwargs}
            return FewShotPattern(file=self.file, line=node.lineno, **values)
        if isinstance(func, ast.Name) and func.id in _FUNCS and not node.keywords:
            return _FUNCS[func.id](*(self(a, local) for a in node.args))
        raise ValueError(f"line {node.lineno}: call of {ast.unparse(func)!r} is not data")


def _replace_chain(nodes: list[ast.stmt]) -> list[tuple[str, str]]:
    """The ``.replace(a, b)`` calls of some statements, in the order Python runs them."""
    out: list[tuple[str, str]] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "replace":
            visit(node.func.value)  # the receiver's replaces run first
            args = node.args
            if len(args) == 2 and all(isinstance(a, ast.Constant) and isinstance(a.value, str) for a in args):
                out.append((args[0].value, args[1].value))
            return
        for child in ast.iter_child_nodes(node):
            visit(child)

    for stmt in nodes:
        visit(stmt)
    return out


def _apply_replaces(text: str, chain: list[tuple[str, str]]) -> str:
    for old, new in chain:
        text = text.replace(old, new)
    return text


@dataclass
class FlanRepo:
    """What a flan/v2 checkout's templates are, as data (see the module docstring)."""

    root: Path
    patterns: dict[str, list[FlanPattern]] = field(default_factory=dict)
    branched: dict[str, list[FlanPattern]] = field(default_factory=dict)
    fewshot: dict[str, list[FewShotPattern]] = field(default_factory=dict)
    inline_fs: dict[str, list[FlanPattern]] = field(default_factory=dict)
    candidates: dict[str, list[Any]] = field(default_factory=dict)
    noopt_replaces: list[tuple[str, str]] = field(default_factory=list)
    fewshot_noopt_replaces: list[tuple[str, str]] = field(default_factory=list)
    num_cases: dict[str, dict[str, int]] = field(default_factory=dict)
    few_shot_max_len: int | None = None
    errors: dict[str, str] = field(default_factory=dict)  # "PATTERNS['x']" -> why it cannot be read

    # -- lookups ------------------------------------------------------------------------------
    def _get(self, table: dict[str, list[Any]], name: str, key: str, file: str) -> list[Any]:
        spot = f"{name}[{key!r}]"
        if spot in self.errors:
            raise FlanRepoError(self.errors[spot])
        if key not in table:
            from flanlab.core.registry import close_matches

            hint = close_matches(key, table)
            raise FlanRepoError(f"{file}: no {spot}" + (f"; did you mean {hint}?" if hint else ""))
        return table[key]

    def zero_shot(self, key: str) -> list[FlanPattern]:
        """``PATTERNS[key]``: the zero-shot templates (with options where the task has them)."""
        return self._get(self.patterns, "PATTERNS", key, self.file("templates.py"))

    def no_options(self, key: str) -> list[FlanPattern]:
        """flan/v2's ``PATTERNS_NO_OPTIONS[key]``: the branched patterns where the branched file has
        the key (else ``PATTERNS``), with the options placeholders removed by flan/v2's replaces."""
        branched_error = self.errors.get(f"branched PATTERNS[{key!r}]")
        if branched_error:  # never fall back to PATTERNS when the branched entry is unreadable
            raise FlanRepoError(branched_error)
        base = self.branched[key] if key in self.branched else self.zero_shot(key)
        return [FlanPattern(_apply_replaces(p.inputs, self.noopt_replaces), p.targets, p.file, p.line)
                for p in base]

    def few_shot(self, key: str, options: bool = True) -> list[FewShotPattern]:
        """``FEWSHOT_PATTERNS[key]`` (``options=False``: ``FEWSHOT_PATTERNS_NO_OPTIONS``)."""
        found = self._get(self.fewshot, "FEWSHOT_PATTERNS", key, self.file("templates.py"))
        if options:
            return found
        from dataclasses import replace

        return [replace(p, inputs=_apply_replaces(p.inputs, self.fewshot_noopt_replaces)) for p in found]

    def inline_few_shot(self, key: str) -> list[FlanPattern]:
        """``INLINE_FS_PATTERNS[key]`` (NIv2's templates with one inline positive example)."""
        return self._get(self.inline_fs, "INLINE_FS_PATTERNS", key, self.file("templates.py"))

    def candidate(self, name: str) -> list[Any]:
        """One of the randomization candidate lists (``OPT_START_STRING_CANDIDATES`` ...)."""
        if name in self.errors:
            raise FlanRepoError(self.errors[name])
        if name not in self.candidates:
            raise FlanRepoError(f"{self.file('templates.py')}: no {name} list")
        return self.candidates[name]

    def file(self, name: str) -> str:
        return str(self.root / "flan" / "v2" / name)


_CANDIDATES = ("OPT_START_STRING_CANDIDATES", "OPT_ITEM_NAME_CANDIDATES", "OPT_ITEM_END_STR_CANDIDATES",
               "DIALOG_START_STRING_CANDIDATES", "DIALOG_ITEM_NAME_CANDIDATES", "DIALOG_ITEM_END_STR_CANDIDATES")


def _fewshot_defaults(tree: ast.Module, file: str) -> dict[str, Any] | None:
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name == "FewShotPattern":
            out: dict[str, Any] = {}
            for stmt in node.body:
                if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name) and stmt.value is not None:
                    out[stmt.target.id] = _Eval({}, None, file)(stmt.value)
            return out
    return None


def _read_table(repo: FlanRepo, name: str, node: ast.Dict, ev: _Eval, file: str,
                table: dict[str, list[Any]], kind: str) -> None:
    for k, v in zip(node.keys, node.values, strict=True):
        if not (isinstance(k, ast.Constant) and isinstance(k.value, str)):
            continue
        _read_entry(repo, name, k.value, v, ev, file, table, kind)


def _read_entry(repo: FlanRepo, name: str, key: str, v: ast.AST, ev: _Eval, file: str,
                table: dict[str, list[Any]], kind: str) -> None:
    spot = f"{name}[{key!r}]"
    if not isinstance(v, (ast.List, ast.Tuple)):
        repo.errors[spot] = f"{file}:{v.lineno}: {spot} is not a list of templates"
        return
    items: list[Any] = []
    for i, el in enumerate(v.elts):
        try:
            value = ev(el)
        except (ValueError, KeyError, TypeError, IndexError) as e:
            repo.errors[spot] = f"{file}:{el.lineno}: {spot} template {i} cannot be read as data ({e})"
            return
        if kind == "fewshot":
            if not isinstance(value, FewShotPattern):
                repo.errors[spot] = f"{file}:{el.lineno}: {spot} template {i}: expected FewShotPattern(...)"
                return
            items.append(value)
        else:
            if not (isinstance(value, tuple) and len(value) >= 2 and all(isinstance(s, str) for s in value[:2])):
                repo.errors[spot] = f"{file}:{el.lineno}: {spot} template {i}: expected an (inputs, targets) pair"
                return
            items.append(FlanPattern(value[0], value[1], file, el.lineno))
    table[key] = items


def _parse_module(repo: FlanRepo, path: Path, tables: dict[str, tuple[dict, str]],
                  fewshot_defaults: dict[str, Any] | None) -> ast.Module:
    file = str(path)
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=file)
    except SyntaxError as e:
        raise FlanRepoError(f"{file}:{e.lineno}: cannot parse ({e.msg})") from None
    names: dict[str, Any] = {}
    ev = _Eval(names, fewshot_defaults, file)
    found: set[str] = set()
    for node in tree.body:
        if not isinstance(node, ast.Assign) or len(node.targets) != 1:
            continue
        target = node.targets[0]
        if isinstance(target, ast.Name) and target.id in tables and isinstance(node.value, ast.Dict):
            found.add(target.id)
            _read_table(repo, target.id, node.value, ev, file, *tables[target.id])
        elif (isinstance(target, ast.Subscript) and isinstance(target.value, ast.Name)
              and target.value.id in tables and isinstance(target.slice, ast.Constant)):
            # PATTERNS["wiki_dialog"] = PATTERNS["predict_next_turn_dialog"]: an alias, or a new list.
            table, kind = tables[target.value.id]
            key = str(target.slice.value)
            src = node.value
            if (isinstance(src, ast.Subscript) and isinstance(src.value, ast.Name)
                    and src.value.id == target.value.id and isinstance(src.slice, ast.Constant)):
                other = str(src.slice.value)
                spot = f"{target.value.id}[{other!r}]"
                if other in table:
                    table[key] = table[other]
                else:
                    repo.errors[f"{target.value.id}[{key!r}]"] = repo.errors.get(
                        spot, f"{file}:{node.lineno}: {target.value.id}[{key!r}] copies {spot}, which is not defined")
            else:
                _read_entry(repo, target.value.id, key, src, ev, file, table, kind)
        elif isinstance(target, ast.Name):
            try:
                names[target.id] = ev(node.value)
            except (ValueError, KeyError, TypeError, IndexError) as e:
                if target.id in _CANDIDATES:
                    repo.errors[target.id] = f"{file}:{node.lineno}: {target.id} cannot be read as data ({e})"
                # Other names bound to code (copies, dataclasses) are never read as data.
    for name in tables:
        if name not in found and not any(k.startswith(name + "[") for k in repo.errors):
            raise FlanRepoError(f"{file}: no top-level '{name} = {{...}}' dict found")
    repo.candidates.update({k: names[k] for k in _CANDIDATES if k in names})
    return tree


def _loop_replaces(tree: ast.Module, over: str) -> list[tuple[str, str]]:
    """The replace chain of the top-level ``for ... in OVER.items():`` loop."""
    for node in tree.body:
        if (isinstance(node, ast.For) and isinstance(node.iter, ast.Call)
                and isinstance(node.iter.func, ast.Attribute) and isinstance(node.iter.func.value, ast.Name)
                and node.iter.func.value.id == over):
            return _replace_chain(node.body)
    return []


def _parse_constants(repo: FlanRepo, path: Path) -> None:
    if not path.is_file():
        return
    file = str(path)
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=file)
    ev = _Eval({}, None, file)
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            name = node.targets[0].id
            if name == "FEW_SHOT_MAX_LEN":
                repo.few_shot_max_len = int(ev(node.value))
            elif name == "T_NAME_TO_NUM_CASES":
                try:
                    repo.num_cases = ev(node.value)
                except ValueError as e:
                    repo.errors[name] = f"{file}:{node.lineno}: {name} cannot be read as data ({e})"


@cache
def _load(root: str, stamp: tuple[float, ...]) -> FlanRepo:
    repo = FlanRepo(Path(root))
    templates = Path(repo.file("templates.py"))
    branched_file = Path(repo.file("flan_templates_branched.py"))
    text = templates.read_text(encoding="utf-8")
    try:
        defaults = _fewshot_defaults(ast.parse(text), str(templates))
    except SyntaxError as e:
        raise FlanRepoError(f"{templates}:{e.lineno}: cannot parse ({e.msg})") from None
    tables: dict[str, tuple[dict, str]] = {"PATTERNS": (repo.patterns, "pattern")}
    if defaults is not None:
        tables["FEWSHOT_PATTERNS"] = (repo.fewshot, "fewshot")
    if "INLINE_FS_PATTERNS" in text:
        tables["INLINE_FS_PATTERNS"] = (repo.inline_fs, "pattern")
    tree = _parse_module(repo, templates, tables, defaults)
    repo.noopt_replaces = _loop_replaces(tree, "PATTERNS_NO_OPTIONS")
    repo.fewshot_noopt_replaces = _loop_replaces(tree, "FEWSHOT_PATTERNS_NO_OPTIONS")
    if branched_file.is_file():
        branched = FlanRepo(repo.root)
        _parse_module(branched, branched_file, {"PATTERNS": (branched.patterns, "pattern")}, None)
        repo.branched = branched.patterns
        repo.errors.update({f"branched {k}": v for k, v in branched.errors.items()})
    _parse_constants(repo, Path(repo.file("constants.py")))
    return repo


def load_flan_repo(flan_repo: str | Path) -> FlanRepo:
    """The checkout's flan/v2 templates as data (parsed once per file version)."""
    path = templates_path(flan_repo)
    root = path.parent.parent.parent
    stamp = tuple(p.stat().st_mtime if p.is_file() else 0.0 for p in
                  (path, path.parent / "flan_templates_branched.py", path.parent / "constants.py"))
    return _load(str(root.resolve()), stamp)


def format_to_jinja(text: str) -> tuple[str, set[str]]:
    """A flan/v2 pattern as Jinja2 text (for listing and validation; rendering uses the pattern
    itself), and the fields it reads. Literal text containing Jinja syntax becomes a Jinja string
    expression, so no Flan text can become template code."""
    out: list[str] = []
    used: set[str] = set()
    try:
        parts = list(string.Formatter().parse(text))
    except ValueError as e:
        raise FlanRepoError(f"bad format string {text[:60]!r}: {e}") from None
    for literal, name, spec, conversion in parts:
        if literal:
            if any(tok in literal for tok in ("{", "}", "%}", "#}")):
                out.append("{{ " + repr(literal) + " }}")
            else:
                out.append(literal)
        if name is None:
            continue
        if spec or conversion or not name.isidentifier():
            raise FlanRepoError(f"unsupported placeholder {{{name}}} in {text[:60]!r}")
        if name != "options_":
            used.add(name)
        out.append("{{ " + name + " }}")
    return "".join(out), used


@cache
def t0_task_types(root: str) -> dict[str, str]:
    """``{P3 subset: flan/v2 T0 task type}`` from the checkout's ``constants_t0.py`` (read as data)."""
    path = Path(root) / "flan" / "v2" / "constants_t0.py"
    if not path.is_file():
        raise FlanRepoError(f"{path}: not found (the checkout has no T0 metadata)")
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in tree.body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "T0_TRAIN_TASK_METADATA":
            try:
                meta = _Eval({}, None, str(path))(node.value)
            except ValueError as e:
                raise FlanRepoError(f"{path}:{node.lineno}: T0_TRAIN_TASK_METADATA cannot be read as data ({e})") from None
            return {k.split(":", 1)[-1]: str(v["task_type"]) for k, v in meta.items()}
    raise FlanRepoError(f"{path}: no T0_TRAIN_TASK_METADATA")
