"""The shipped Flan 2022 mixture configs: `flanlab mix CONFIG --dry-run` plans them without data, and
with local data for a subset `flanlab mix` builds it."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from flanlab.cli import main

REPO = Path(__file__).resolve().parents[3]
CONFIGS = REPO / "configs" / "mixtures"
FIX = Path(__file__).parent / "fixtures"


def _plan(capsys, name: str, *extra: str) -> dict[str, int]:
    """Planned tasks per submixture, their variants (``:inverted``) included."""
    assert main(["mix", str(CONFIGS / name), "--dry-run", "--top", "5", *extra]) == 0
    out = capsys.readouterr().out
    rows = re.findall(r"^\| (\w+) \| (\d+) \| (\d+) \| [\d/]+ \| ([\d.]+) \| (\d+|-) \| ([\d.]+)% \|$", out,
                      re.MULTILINE)
    return {sub: int(n) + int(v) for sub, n, v, *_ in rows}


def test_configs_start_with_their_command():
    names = sorted(p.name for p in CONFIGS.glob("*.yaml"))
    for want in ("flan2022.yaml", "flan2022-cot-only.yaml", "flan2022-no-cot.yaml", "tasks-9.yaml",
                 "tasks-89.yaml", "tasks-282.yaml", "tasks-1836.yaml"):
        assert want in names
        first = (CONFIGS / want).read_text().splitlines()[0]
        assert first.startswith(f"# flanlab mix configs/mixtures/{want} ")


def test_dry_run_plans_the_ladder_without_data(capsys, tmp_path):
    # Without data (no data dir): NIv2 tasks are planned from the manifest, hub tasks by name.
    none = str(tmp_path / "empty")
    full = {"flan2021": 104, "dialog": 2, "t0": 193, "niv2": 1554, "cot": 9}
    assert _plan(capsys, "flan2022.yaml", "--data-dir", none) == full
    assert _plan(capsys, "tasks-1836.yaml", "--data-dir", none) == full
    assert _plan(capsys, "tasks-282.yaml", "--data-dir", none) == {"cot": 9, "flan2021": 104, "dialog": 2, "t0": 193}
    assert _plan(capsys, "tasks-89.yaml", "--data-dir", none) == {"cot": 9, "flan2021": 104, "dialog": 2}
    assert _plan(capsys, "tasks-9.yaml", "--data-dir", none) == {"cot": 9}
    assert _plan(capsys, "flan2022-cot-only.yaml", "--data-dir", none) == {"cot": 9}
    assert "cot" not in _plan(capsys, "flan2022-no-cot.yaml", "--data-dir", none)
    assert main(["mix", str(CONFIGS / "flan2022.yaml"), "--dry-run", "--data-dir", none]) == 0
    out = capsys.readouterr().out
    # Expected shares: the Flan 2022 rates renormalized over the submixtures present.
    # Tasks and their :inverted variants are counted apart (1,809 + 53, not 1,862 "tasks").
    assert "(1809 tasks + 53 variants;" in out
    assert "| flan2021 | 52 | 52 | 0/104/0 | 0.4 | 30000 | 40.00% |" in out
    assert "| niv2 | 1554 | 0 | 0/0/1554 | 0.2 | 5000 | 20.00% |" in out
    assert not (tmp_path / "empty").exists()  # nothing written
    assert main(["mix", str(CONFIGS / "flan2022.yaml")]) == 2  # a build needs --out


@pytest.mark.slow
def test_builds_the_locally_available_subset(tmp_path, shared_data, tiny_llama_dir):
    data = tmp_path / "data"
    (data / "muffin" / "anli_r1").mkdir(parents=True)
    shutil.copy(FIX / "muffin" / "anli_r1.jsonl", data / "muffin" / "anli_r1" / "train.jsonl")
    (data / "p3" / "cos_e_v1.11_i_think").mkdir(parents=True)
    shutil.copy(FIX / "t0" / "p3_train.jsonl", data / "p3" / "cos_e_v1.11_i_think" / "train.jsonl")
    (data / "natural-instructions" / "tasks").mkdir(parents=True)
    shutil.copy(FIX / "niv2" / "tasks" / "task999_fixture_antonyms.json",
                data / "natural-instructions" / "tasks" / "task001_quoref_question_generation.json")
    (data / "flan_cot").mkdir()
    lines = (shared_data / "flan_cot" / "aqua_train.tsv").read_text(encoding="utf-8").splitlines()[:50]
    (data / "flan_cot" / "aqua_train.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = tmp_path / "mix"
    # The config names smollm2-135m for the token budgets; a tiny tokenizer stands in (no download).
    assert main(["mix", str(CONFIGS / "flan2022.yaml"), "--out", str(out), "--data-dir", str(data),
                 "--examples", "60", "--tokenizer", str(tiny_llama_dir)]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert set(manifest["tasks"]) == {"muffin/anli_r1", "muffin/anli_r1:inverted", "t0sf/cos_e_v1.11_i_think",
                                      "niv2/task001_quoref_question_generation", "cot_aqua"}
    subs = {k: v["examples"] for k, v in manifest["submixtures"].items()}
    # 0.4 / 0.32 / 0.2 / 0.05 renormalized over the four present → 24 / 20 / 12 / 4 of 60 (rounded).
    assert subs == {"flan2021": 24, "t0": 20, "niv2": 12, "cot": 4}
