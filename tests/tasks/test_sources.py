from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from flanlab.core.errors import UserError
from flanlab.tasks.sources import FileSource, HFSource, SourceError
from flanlab.tasks.task import Task
from flanlab.tasks.template import parse_family

ROWS = [{"question": "2+2?", "answer": "4"}, {"question": "3+3?", "answer": "6"}]
FAMILY = parse_family("""
family: qa
fields: [question, answer]
templates:
  - inputs: "{{ question }}"
    targets: "{{ answer }}"
""", "qa.yaml")


def _write(tmp_path, fmt: str):
    path = tmp_path / f"train.{fmt}"
    if fmt == "jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in ROWS), encoding="utf-8")
    elif fmt == "json":
        path.write_text(json.dumps({"examples": ROWS}), encoding="utf-8")
    elif fmt in ("csv", "tsv"):
        sep = "," if fmt == "csv" else "\t"
        path.write_text("question" + sep + "answer\n" + "".join(f"{r['question']}{sep}{r['answer']}\n" for r in ROWS),
                        encoding="utf-8")
    else:
        pq.write_table(pa.Table.from_pylist(ROWS), path)
    return path


@pytest.mark.parametrize("fmt", ["jsonl", "json", "csv", "tsv", "parquet"])
def test_local_formats(tmp_path, fmt):
    source = FileSource({"train": _write(tmp_path, fmt)})
    assert [ex for _, ex in source.records("train")] == ROWS
    task = Task("qa", source, FAMILY)
    assert list(task.examples()) == ROWS


def test_headerless_tsv_with_escaped_newlines(tmp_path):
    path = tmp_path / "cot.tsv"
    path.write_text('Is "it" so?\\nOptions:\\n- yes\\n- no\tyes\tBecause.\\nSo yes.\n', encoding="utf-8")
    source = FileSource({"train": path}, columns=["question", "answer", "cot"], unescape=True)
    (where, ex), = list(source.records("train"))
    assert where == f"{path}:1"
    assert ex == {"question": 'Is "it" so?\nOptions:\n- yes\n- no', "answer": "yes", "cot": "Because.\nSo yes."}


def test_hf_source_on_a_local_folder_in_hub_layout(tmp_path):
    folder = tmp_path / "hub_dataset"
    (folder / "data").mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist(ROWS), folder / "data" / "train-00000-of-00001.parquet")
    pq.write_table(pa.Table.from_pylist(ROWS[:1]), folder / "data" / "test-00000-of-00001.parquet")
    source = HFSource(str(folder), splits_map={"train": "train", "eval": "test"})
    assert source.splits() == ["train", "eval"]
    assert [ex for _, ex in source.records("train")] == ROWS
    assert [ex for _, ex in source.records("eval")] == ROWS[:1]
    with pytest.raises(SourceError, match="no split 'dev'"):
        list(source.records("dev"))


# -- bad inputs: each error names the file and the line or field --------------------------------
def test_malformed_jsonl_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(ROWS[0]) + "\n" + '{"question": "x", answer: 1}\n', encoding="utf-8")
    with pytest.raises(UserError, match=rf"{path}:2: malformed JSON line"):
        list(Task("qa", FileSource({"train": path}), FAMILY).examples())


def test_missing_field(tmp_path):
    path = tmp_path / "missing.jsonl"
    path.write_text(json.dumps(ROWS[0]) + "\n" + json.dumps({"question": "q"}) + "\n", encoding="utf-8")
    with pytest.raises(UserError, match=rf"{path}:2: missing field 'answer'"):
        list(Task("qa", FileSource({"train": path}), FAMILY).examples())


def test_empty_split(tmp_path):
    path = tmp_path / "empty.jsonl"
    path.write_text("\n", encoding="utf-8")
    with pytest.raises(UserError, match=rf"{path}: split 'train' of task 'qa' has no examples"):
        list(Task("qa", FileSource({"train": path}), FAMILY).examples())


def test_not_utf8(tmp_path):
    path = tmp_path / "latin1.csv"
    path.write_bytes("question,answer\ncaf\xe9?,yes\n".encode("latin-1"))
    with pytest.raises(UserError, match=rf"{path}:2: not UTF-8"):
        list(FileSource({"train": path}).records("train"))


def test_unknown_placeholder_against_task_fields(tmp_path):
    family = parse_family("""
family: qa2
fields: [question, answer, context]
templates:
  - inputs: "{{ context }} {{ question }}"
    targets: "{{ answer }}"
""", "qa2.yaml")
    task = Task("qa", FileSource({"train": _write(tmp_path, "jsonl")}), family)
    with pytest.raises(UserError, match=r"qa2.yaml: template 0.*unknown placeholder 'context'.*task 'qa'"):
        task.validate_templates(["question", "answer"])


def test_csv_wrong_column_count_and_unknown_split(tmp_path):
    path = tmp_path / "ragged.csv"
    path.write_text("question,answer\na,b,c\n", encoding="utf-8")
    with pytest.raises(UserError, match=rf"{path}:2: expected 2 columns"):
        list(FileSource({"train": path}).records("train"))
    with pytest.raises(UserError, match="no split 'test'"):
        list(FileSource({"train": path}).records("test"))
