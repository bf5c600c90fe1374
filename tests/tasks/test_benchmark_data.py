"""The one owner of each benchmark's files: local layout and hub rows give the same examples, and
evaluation, the contamination check and the held-out catalog tasks all read through it."""

from __future__ import annotations

import json

import pytest

from flanlab.tasks.benchmark_data import BENCHMARK_DATA, DataError, data_spec, get_data
from flanlab.tasks.benchmark_data.mmlu import hub_row as hub_row_mmlu
from flanlab.tasks.benchmark_data.tydiqa import hub_row as hub_row_tydiqa

GSM = [{"question": "Tom has 3 apples and buys 2. How many?", "answer": "3 + 2 = 5\n#### 5"},
       {"question": "A car costs $1,200 and a bike $300. Total?", "answer": "1200+300=1500\n#### 1,500"}]


def _data(root):
    (root / "gsm8k").mkdir(parents=True)
    (root / "gsm8k" / "test.jsonl").write_text("\n".join(json.dumps(r) for r in GSM) + "\n", encoding="utf-8")
    (root / "bbh" / "tasks").mkdir(parents=True)
    (root / "bbh" / "tasks" / "yes_no.json").write_text(json.dumps({"examples": [
        {"input": "Is 4 even? Answer with yes or no, thinking about the parity of the number.", "target": "yes"},
        {"input": "Is 5 even?", "target": "no"}]}), encoding="utf-8")
    (root / "mmlu" / "test").mkdir(parents=True)
    (root / "mmlu" / "dev").mkdir(parents=True)
    (root / "mmlu" / "test" / "astronomy_test.csv").write_text(
        "Which planet is largest?,Mars,Jupiter,Venus,Earth,B\n", encoding="utf-8")
    (root / "mmlu" / "dev" / "astronomy_dev.csv").write_text("What is the Sun?,A star,A planet,A moon,A comet,A\n",
                                                             encoding="utf-8")
    return root


def test_every_benchmark_has_one_owner_with_its_hub_location():
    assert BENCHMARK_DATA.names() == ["bbh", "gsm8k", "mgsm", "mmlu", "tydiqa"]
    assert data_spec("gsm8k").hub.path == "openai/gsm8k" and data_spec("gsm8k").hub.config == "main"
    assert len(get_data("mmlu", None).subtasks()) == 57 and len(get_data("bbh", None).subtasks()) == 27


def test_hub_rows_convert_to_the_local_layout():
    assert hub_row_mmlu({"question": "q", "subject": "x", "choices": ["a", "b", "c", "d"], "answer": 2}) == {
        "question": "q", "choices": ["a", "b", "c", "d"], "answer": "C"}
    row = {"id": "arabic-1", "title": "t", "context": "c", "question": "q",
           "answers": {"text": ["x", "y"], "answer_start": [0, 2]}}
    assert hub_row_tydiqa(row) == {"id": "arabic-1", "context": "c", "question": "q", "answers": ["x", "y"]}


def test_local_files_and_hub_rows_give_the_same_examples(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    local = get_data("gsm8k", _data(tmp_path / "data"))
    hub_folder = tmp_path / "hub" / "data"
    hub_folder.mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist(GSM), hub_folder / "test-00000-of-00001.parquet")
    hub = get_data("gsm8k", None)
    # The same dataset layout as openai/gsm8k, from a local folder instead of the network.
    hub.spec = hub.spec.model_copy(update={"hub": hub.spec.hub.model_copy(
        update={"path": str(tmp_path / "hub"), "config": None})})
    assert hub.examples("main") == local.examples("main")
    assert [e.target for e in local.examples("main")] == ["5", "1500"]


def test_evaluation_contamination_and_catalog_read_the_same_rows(tmp_path):
    from flanlab.evaluation.benchmarks import get_benchmark
    from flanlab.mixture.contamination import read_eval_sets
    from flanlab.tasks.catalog import build_catalog

    root = _data(tmp_path)
    scored = get_benchmark("bbh", root).examples("yes_no")
    texts = [t for t in read_eval_sets(root, ["bbh"])]
    task = build_catalog(root, bigbench=False).get("bbh.yes_no")
    rows = [ex for _, ex in task.records("test")]
    assert [t.text for t in texts] == [e.fields["input"] for e in scored] == [r["question"] for r in rows]
    assert [t.id for t in texts] == ["yes_no:0", "yes_no:1"] and [r["answer"] for r in rows] == ["yes", "no"]
    assert task.heldout == ("bbh",)
    mmlu = build_catalog(root, bigbench=False).get("mmlu.astronomy")
    assert [ex for _, ex in mmlu.records("dev")] == [
        {"question": "What is the Sun?", "options": ["A star", "A planet", "A moon", "A comet"],
         "answer": "A star", "letter": "A"}]
    # A benchmark whose files are absent has no held-out tasks and no evaluation texts.
    assert not [n for n in build_catalog(root, bigbench=False).names() if n.startswith(("mgsm.", "tydiqa."))]
    assert {t.benchmark for t in read_eval_sets(root)} == {"bbh", "gsm8k", "mmlu"}


def test_bad_rows_name_the_file_and_line(tmp_path):
    root = _data(tmp_path)
    (root / "gsm8k" / "test.jsonl").write_text('{"question": "q", "answer": "#### 1"}\n{bad\n', encoding="utf-8")
    with pytest.raises(DataError, match=r"gsm8k/test.jsonl:2: invalid JSON"):
        get_data("gsm8k", root).examples("main")
    with pytest.raises(DataError, match=r"unknown subtask 'nope'"):
        get_data("bbh", root).examples("nope")
