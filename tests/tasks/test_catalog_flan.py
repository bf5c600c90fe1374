"""A custom catalog task rendered with a flan/v2 template list (``flan_pattern``) of a checkout."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from flanlab.core.config import ConfigError
from flanlab.tasks.catalog import load_catalog_file
from flanlab.tasks.task import render

FLAN = Path(__file__).resolve().parents[3] / "shared" / "reference" / "FLAN"


@pytest.mark.skipif(not (FLAN / "flan" / "v2" / "templates.py").is_file(), reason=f"no FLAN checkout at {FLAN}")
def test_catalog_entry_renders_through_a_flan_v2_template_list(tmp_path, monkeypatch):
    monkeypatch.delenv("FLANLAB_FLAN_REPO", raising=False)
    rows = [{"premise": f"P{i}.", "hypothesis": f"H{i}.", "options": ["yes", "no"], "answer": "yes"} for i in range(6)]
    (tmp_path / "nli.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    cat = tmp_path / "catalog.yaml"
    cat.write_text(f"kind: task_catalog\nflan_repo: {FLAN}\ntasks:\n"
                   "  - {name: my_nli, files: {train: nli.jsonl}, flan_pattern: rte, options_field: options}\n")
    task = load_catalog_file(cat)[0]
    assert task.formats() == ["zs_opt", "zs_noopt", "fs_opt", "fs_noopt"]
    r = next(render(task, "zs_noopt", seed=0))
    assert r.template_id.startswith("flan:rte:noopt:") and "P0." in r.inputs
    cat.write_text("kind: task_catalog\ntasks:\n  - {name: x, files: {train: nli.jsonl}, flan_pattern: rte}\n")
    with pytest.raises(ConfigError, match="needs the catalog's flan_repo"):
        load_catalog_file(cat)
    cat.write_text("kind: task_catalog\ntasks:\n  - {name: x, files: {train: nli.jsonl}}\n")
    with pytest.raises(ConfigError, match="exactly one of family"):
        load_catalog_file(cat)
