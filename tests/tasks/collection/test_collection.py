"""The collection's availability (local / hub / missing) and `flanlab tasks list --collection`."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from flanlab.cli import main
from flanlab.core.errors import UserError
from flanlab.tasks.collection.collection import availability, collection_tasks
from flanlab.tasks.task import render

FIX = Path(__file__).parent / "fixtures"


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """A data dir holding a little of each collection in its real layout."""
    (tmp_path / "muffin" / "anli_r1").mkdir(parents=True)
    shutil.copy(FIX / "muffin" / "anli_r1.jsonl", tmp_path / "muffin" / "anli_r1" / "train.jsonl")
    (tmp_path / "muffin" / "wiki_dialog").mkdir(parents=True)
    shutil.copy(FIX / "dialog" / "wiki_dialog.jsonl", tmp_path / "muffin" / "wiki_dialog" / "train.jsonl")
    (tmp_path / "p3" / "cos_e_v1.11_i_think").mkdir(parents=True)
    shutil.copy(FIX / "t0" / "p3_train.jsonl", tmp_path / "p3" / "cos_e_v1.11_i_think" / "train.jsonl")
    tasks = tmp_path / "natural-instructions" / "tasks"
    tasks.mkdir(parents=True)
    shutil.copy(FIX / "niv2" / "tasks" / "task999_fixture_antonyms.json", tasks / "task001_quoref_question_generation.json")
    (tmp_path / "flan_cot").mkdir()
    (tmp_path / "flan_cot" / "aqua_train.tsv").write_text("What is 2+3?\t5\t2 plus 3 is 5.\n")
    return tmp_path


def test_availability_statuses(data_dir):
    found = {a.task.name: a for a in availability(data_dir)}
    assert len(found) == 1836
    assert found["muffin/anli_r1"].status == "local"
    assert found["muffin/anli_r2"].status == "hub" and found["muffin/anli_r2"].detail == "facebook/anli"
    assert found["muffin/wiki_dialog"].status == "local"
    assert found["muffin/task_master"].status == "missing" and "outside the hub" in found["muffin/task_master"].detail
    assert found["muffin/qrecc"].status == "hub"
    assert found["muffin/cosmos_qa"].status == "missing" and "no hub mapping" in found["muffin/cosmos_qa"].detail
    assert found["t0sf/cos_e_v1.11_i_think"].status == "local"
    assert found["t0sf/cos_e_v1.11_rationale"].detail == "bigscience/P3 subset cos_e_v1.11_rationale"
    assert found["niv2/task001_quoref_question_generation"].status == "local"
    assert found["niv2/task002_quoref_answer_generation"].status == "missing"
    assert found["cot/stream_aqua"].status == "local" and found["cot/stream_qed"].status == "missing"
    bare = {a.task.name: a.status for a in availability(None)}
    assert bare["niv2/task001_quoref_question_generation"] == "missing" and bare["muffin/anli_r1"] == "hub"
    with pytest.raises(UserError, match="unknown collection"):
        availability(data_dir, collection="flan2021")


def test_collection_tasks_build_offline(data_dir):
    tasks = {t.name: t for t in collection_tasks(data_dir)}
    assert {"muffin/anli_r1", "muffin/anli_r1:inverted", "muffin/wiki_dialog", "muffin/qrecc",
            "t0sf/cos_e_v1.11_i_think", "niv2/task001_quoref_question_generation"} <= set(tasks)
    assert "muffin/task_master" not in tasks  # no data anywhere
    assert len([n for n in tasks if n.startswith("t0sf/")]) == 193
    assert next(render(tasks["niv2/task001_quoref_question_generation"], "zs_noopt")).targets == "dark"
    assert next(render(tasks["t0sf/cos_e_v1.11_i_think"], "zs_noopt")).targets == "refrigerator"
    assert {tasks["muffin/anli_r1"].source_kind, tasks["muffin/wiki_dialog"].source_kind,
            tasks["t0sf/cos_e_v1.11_i_think"].source_kind} == {"muffin", "dialog", "t0"}


def test_cli_tasks_list_collection(data_dir, capsys):
    assert main(["tasks", "list", "--collection", "flan2022", "--data-dir", str(data_dir), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == 1836
    assert {r["data"] for r in rows} == {"local", "hub", "missing"}
    assert main(["tasks", "list", "--collection", "flan2022", "--data-dir", str(data_dir), "--source", "cot"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[-1] == "flan2022: 9 tasks — cot: 1 local, 8 missing"
    assert any(line.startswith("cot/stream_aqua") and "local" in line for line in out)
    assert main(["tasks", "list", "--collection", "nope"]) == 2


def test_cli_tasks_show_with_flan_repo(data_dir, capsys, monkeypatch):
    from flanlab.tasks import catalog

    monkeypatch.setattr(catalog, "_CACHE", {})  # the catalog is cached per data dir; start clean
    monkeypatch.delenv("FLANLAB_FLAN_REPO", raising=False)
    args = ["tasks", "show", "muffin/anli_r1", "--data-dir", str(data_dir), "--n", "1", "--format", "zs_opt"]
    assert main(args) == 0
    assert "template nli:" in capsys.readouterr().out  # flanlab's own templates by default
    monkeypatch.setattr(catalog, "_CACHE", {})
    flan = Path(__file__).resolve().parents[4] / "shared" / "reference" / "FLAN"
    if not flan.is_dir():
        pytest.skip(f"no google-research/FLAN checkout at {flan}")
    assert main([*args, "--flan-repo", str(flan)]) == 0
    out = capsys.readouterr().out
    assert "template flan:anli:" in out and "The cat was awake all afternoon." in out
    import os

    assert "FLANLAB_FLAN_REPO" not in os.environ  # the switch is passed along, never written
