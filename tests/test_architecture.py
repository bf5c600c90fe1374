"""The layering rule of DEVELOPERS.md, checked on the source: imports only flow downhill."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "flanlab"

# stage -> the stages it may import (besides itself)
ALLOWED = {
    "core": set(),
    "tasks": {"core"},
    "mixture": {"core", "tasks"},
    "inference": {"core"},
    "evaluation": {"core", "inference", "tasks"},
    "training": {"core", "tasks", "mixture", "inference", "evaluation"},
    "experiments": {"core", "tasks", "mixture", "inference", "evaluation", "training", "reports"},
    "reports": {"core", "tasks", "mixture", "inference", "evaluation", "training"},
}


def _imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
    return found


def _modules() -> list[Path]:
    return sorted(p for p in SRC.rglob("*.py"))


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(SRC)))
def test_imports_flow_downhill(path: Path):
    rel = path.relative_to(SRC)
    stage = rel.parts[0] if len(rel.parts) > 1 else None
    for line, module in _imports(path):
        parts = module.split(".")
        if parts[0] != "flanlab" or len(parts) < 2:
            continue
        target = parts[1]
        if rel.name != "__main__.py":
            assert target != "cli", f"{rel}:{line} imports flanlab.cli (nothing may import the CLI)"
        if stage is None or target == stage or target not in ALLOWED:
            continue
        assert target in ALLOWED[stage], f"{rel}:{line}: stage {stage!r} may not import {module!r} (upward)"


# Settings reach a stage as typed config fields, passed explicitly; nothing in src/ writes the
# environment. (path, line text) pairs allowed, each with the issue that removes it (none left).
ENV_WRITES_ALLOWED: set[tuple[str, str]] = set()
_ENV_METHODS = {"setdefault", "update", "pop", "popitem", "clear", "__setitem__", "__delitem__"}


def _is_environ(node: ast.AST) -> bool:
    return (isinstance(node, ast.Attribute) and node.attr == "environ"
            and isinstance(node.value, ast.Name) and node.value.id == "os")


def _env_writes(tree: ast.AST) -> list[int]:
    lines = []
    for node in ast.walk(tree):
        targets: list[ast.AST] = []
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, ast.AugAssign | ast.AnnAssign):
            targets = [node.target]
        elif isinstance(node, ast.Delete):
            targets = node.targets
        if any(isinstance(t, ast.Subscript) and _is_environ(t.value) for t in targets):
            lines.append(node.lineno)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            f = node.func
            if (f.attr in _ENV_METHODS and _is_environ(f.value)) or (
                    f.attr in ("putenv", "unsetenv") and isinstance(f.value, ast.Name) and f.value.id == "os"):
                lines.append(node.lineno)
    return lines


def _cli_subprocesses(tree: ast.AST) -> list[int]:
    """Lines of list/tuple literals holding "-m", "flanlab" in a row: a stage starting the CLI."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.List | ast.Tuple):
            values = [e.value if isinstance(e, ast.Constant) else None for e in node.elts]
            if any(a == "-m" and b == "flanlab" for a, b in zip(values, values[1:], strict=False)):
                found.append(node.lineno)
    return found


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(SRC)))
def test_no_environment_writes_and_no_cli_subprocess(path: Path):
    rel = str(path.relative_to(SRC))
    text = path.read_text(encoding="utf-8")
    tree = ast.parse(text, filename=str(path))
    source = text.splitlines()
    for line in _env_writes(tree):
        if (rel, source[line - 1].strip()) not in ENV_WRITES_ALLOWED:
            pytest.fail(f"{rel}:{line} writes os.environ ({source[line - 1].strip()}); pass the setting as a "
                        "config field instead")
    for line in _cli_subprocesses(tree):
        pytest.fail(f"{rel}:{line} starts `python -m flanlab`; call the stage's Python API instead")


def test_the_checks_catch_what_they_look_for():
    bad = ast.parse('import os\nos.environ["X"] = "1"\nos.environ.setdefault("Y", "2")\nos.putenv("Z", "3")\n'
                    'os.environ.update(A="1")\ncmd = [sys.executable, "-m", "flanlab", "mix"]\n'
                    'x = os.environ.get("X")\n')
    assert _env_writes(bad) == [2, 3, 4, 5]
    assert _cli_subprocesses(bad) == [6]
