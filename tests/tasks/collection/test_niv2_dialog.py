"""NIv2 task JSON in the Flan NIv2 layouts, and dialog next-turn tasks in the wiki_dialog / qrecc
shapes, on fixtures in the real file formats."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from flanlab.core.errors import UserError
from flanlab.tasks.collection.dialog import dialog_task, dialog_turns
from flanlab.tasks.collection.niv2 import find_niv2_repo, niv2_task, read_niv2_task
from flanlab.tasks.sources import SourceError
from flanlab.tasks.task import render

FIX = Path(__file__).parent / "fixtures"
NIV2 = FIX / "niv2" / "tasks" / "task999_fixture_antonyms.json"


def test_niv2_definition_only():
    task = niv2_task(NIV2, modes=["definition"])
    assert task.name == "niv2/task999_fixture_antonyms" and task.source_kind == "niv2"
    rows = list(render(task, "zs_noopt"))
    assert [r.targets for r in rows] == ["dark", "closed", "sad", "slow"]
    assert rows[0].inputs == ("Definition: Given a word, write its antonym (a word with the opposite meaning)."
                              "\n\nInput: light\nOutput:")


def test_niv2_definition_with_two_positive_examples():
    plain = next(render(niv2_task(NIV2, modes=["definition_pos2"]), "zs_noopt")).inputs
    assert "Positive Example 1 -\nInput: hot\nOutput: cold\n\nPositive Example 2 -\nInput: up\nOutput: down" in plain
    assert "Positive Example 3" not in plain and "Explanation" not in plain
    assert plain.endswith("Now complete the following example -\nInput: light\nOutput:")
    expl = next(render(niv2_task(NIV2, modes=["definition_pos2_expl"]), "zs_noopt")).inputs
    assert "Output: cold\nExplanation: Cold is the opposite of hot.\n\nPositive Example 2" in expl
    assert "large" not in expl  # negative examples are not shown


def test_niv2_all_formats_and_fewshot():
    task = niv2_task(NIV2)
    assert task.formats() == ["zs_noopt", "fs_noopt"]
    seen = {r.template_id for r in render(task, "zs_noopt", seed=5)} | {
        r.template_id for s in range(6) for r in render(task, "zs_noopt", seed=s)}
    assert seen == {"niv2:definition", "niv2:definition_pos2", "niv2:definition_pos2_expl"}
    fs = list(render(task, "fs_noopt", shots=2))
    assert all(r.template_id == "niv2:definition" and len(r.exemplar_ids) == 2 for r in fs)
    assert all(r.inputs.count("Definition:") == 3 for r in fs)
    assert [ex["outputs"] for ex in task.examples()][0] == ["dark", "heavy"]


def test_niv2_errors_name_file_and_key(tmp_path):
    data = json.loads(NIV2.read_text())
    data["Instances"][1]["output"] = []
    bad = tmp_path / "tasks" / "task1_bad.json"
    bad.parent.mkdir()
    bad.write_text(json.dumps(data))
    with pytest.raises(SourceError, match=r"task1_bad.json: 'Instances'\[1\]"):
        read_niv2_task(bad)
    data["Instances"][1]["output"] = ["x"]
    del data["Definition"]
    bad.write_text(json.dumps(data))
    with pytest.raises(SourceError, match="'Definition'"):
        list(niv2_task(bad).examples())
    assert find_niv2_repo(None, tmp_path) is None
    assert find_niv2_repo(tmp_path) == tmp_path / "tasks"
    with pytest.raises(UserError, match="natural-instructions"):
        find_niv2_repo(tmp_path / "nope")
    with pytest.raises(UserError, match="unknown NIv2 mode"):
        niv2_task(NIV2, modes=["definition_pos4"])


def test_wiki_dialog_next_turn():
    task = dialog_task("wiki_dialog", files={"train": FIX / "dialog" / "wiki_dialog.jsonl"})
    assert task.name == "muffin/wiki_dialog" and task.source_kind == "dialog"
    examples = list(task.examples())
    assert len(examples) == 4  # 3 turns after the first, then 1
    assert examples[2]["dialog"] == ("A: What do you know about honey bees?\nB: Honey bees live in colonies.\n"
                                     "A: How many queens does a colony have?")
    assert examples[2]["next_turn"] == "A colony has one queen." and examples[2]["speaker"] == "B"
    for fmt in task.formats():
        rows = list(render(task, fmt, shots=1))
        assert len(rows) == 4 and all(r.targets for r in rows)
    inv = dialog_task("wiki_dialog", files={"train": FIX / "dialog" / "wiki_dialog.jsonl"}, inverted=True)
    r = next(render(inv, "zs_noopt"))
    assert r.targets == "A: What do you know about honey bees?" and "Honey bees live in colonies." in r.inputs


def test_qrecc_shape_and_local_layout(tmp_path):
    folder = tmp_path / "muffin" / "qrecc"
    folder.mkdir(parents=True)
    (folder / "train.jsonl").write_text((FIX / "dialog" / "qrecc.jsonl").read_text())
    task = dialog_task("muffin/qrecc", data_dir=tmp_path)
    examples = list(task.examples())
    assert len(examples) == 2  # the row without an answer is skipped
    assert examples[1]["dialog"] == "A: Who wrote Dracula?\nB: Bram Stoker wrote Dracula.\nA: When was it published?"
    assert examples[1]["next_turn"] == "It was published in 1897."
    assert next(render(task, "fs_noopt", shots=1)).exemplar_ids
    hub = dialog_task("qrecc")
    assert "hub" in hub.tags
    with pytest.raises(UserError, match="no local files"):
        dialog_task("wiki_dialog", data_dir=tmp_path)
    taskmaster = dialog_turns("taskmaster", {"utterances": [
        {"speaker": "USER", "text": "Book a table for two."}, {"speaker": "ASSISTANT", "text": "For what time?"}]})
    assert taskmaster == [{"title": "", "background": "", "dialog": "USER: Book a table for two.",
                           "next_turn": "For what time?", "speaker": "ASSISTANT",
                           "turns": ["Book a table for two."], "answer": "For what time?"}]
    with pytest.raises(SourceError, match="bad.jsonl:1: no field 'Context'"):
        bad = tmp_path / "bad.jsonl"
        bad.write_text('{"Question": "q", "Answer": "a"}\n')
        list(dialog_task("qrecc", files={"train": bad}).examples())
