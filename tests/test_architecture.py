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
