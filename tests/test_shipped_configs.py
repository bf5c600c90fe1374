"""Every shipped config loads against its schema and starts with the command that runs it."""

from __future__ import annotations

from pathlib import Path

import pytest

from flanlab.cli import build_parser
from flanlab.core.config import load_config

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs").rglob("*.yaml"))
# accelerate's own launcher configs are not flanlab configs; they are checked as YAML only.
FLANLAB_CONFIGS = [p for p in CONFIGS if "accelerate" not in p.parts]


def test_configs_are_shipped():
    assert FLANLAB_CONFIGS, "no configs under configs/"


@pytest.mark.parametrize("path", FLANLAB_CONFIGS, ids=lambda p: str(p.relative_to(p.parents[1])))
def test_shipped_config_loads(path: Path):
    build_parser()  # importing every stage's commands registers every config kind
    first = path.read_text(encoding="utf-8").splitlines()[0]
    assert first.startswith("#") and "flanlab" in first, f"{path}: first line must be '# flanlab ...' (the command)"
    load_config(path)


@pytest.mark.parametrize("path", [p for p in CONFIGS if p not in FLANLAB_CONFIGS] or [None])
def test_accelerate_configs_are_yaml(path):
    if path is None:
        pytest.skip("no accelerate configs shipped")
    import yaml

    first = path.read_text(encoding="utf-8").splitlines()[0]
    assert first.startswith("#") and "accelerate launch" in first
    assert isinstance(yaml.safe_load(path.read_text()), dict)
