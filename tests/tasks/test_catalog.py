from __future__ import annotations

import dataclasses

import pytest

from flanlab.cli import main
from flanlab.core.errors import UserError
from flanlab.tasks.catalog import build_catalog, get_task, list_tasks, load_catalog_file, task_row
from flanlab.tasks.sources import FileSource
from flanlab.tasks.task import fingerprint, render, render_example

FLAN_COT = ["aqua", "creak", "ecqa", "esnli", "gsm8k", "qasc", "qed", "sensemaking", "strategyqa"]
# A fixture in the Flan CoT TSV schema for the two datasets without local data.
COT_FIXTURE = {
    "esnli": ('Premise: "A man plays a guitar on stage."\\nHypothesis: "A person is making music."\\n'
              "Is the hypothesis entailed by the premise?\\nOptions:\\n- yes\\n- it is not possible to tell\\n- no",
              "yes", "Playing a guitar is making music."),
    "qed": ("Passage: The Nile is the longest river in Africa.\\n\\nQuestion: What is the longest river in Africa?",
            "the Nile", "The passage says the Nile is the longest river in Africa."),
}


def _local_tasks(shared_data, tmp_path):
    """Every shipped non-BIG-bench task, on its real data or on a fixture in the same schema."""
    tasks = []
    for _, task in build_catalog(shared_data, bigbench=False).items():
        if task.source_kind not in ("flan_cot", "gsm8k", "mmlu", "bbh", "mgsm"):
            continue  # the Flan 2022 collection's tasks are tested in tests/tasks/collection
        source = task.source
        missing = [p for p in getattr(source, "files", {}).values() if not p.is_file()]
        if missing:
            key = task.name.removeprefix("cot_")
            fixture = tmp_path / f"{key}_train.tsv"
            fixture.write_text("\n".join(["\t".join(COT_FIXTURE[key])] * 3) + "\n", encoding="utf-8")
            source = FileSource({"train": fixture}, columns=["question", "answer", "cot"], unescape=True)
            task = dataclasses.replace(task, source=source, _pool={})
        tasks.append(task)
    return tasks


def test_shipped_catalog_contents(shared_data):
    cot = list_tasks(shared_data, source="flan_cot")
    assert [t.name for t in cot] == [f"cot_{n}" for n in FLAN_COT]
    with_data = [t for t in cot if all(p.is_file() for p in t.source.files.values())]
    assert len(with_data) == 7
    gsm8k = get_task("gsm8k", shared_data)
    assert gsm8k.heldout_splits == {"test": "gsm8k-test"} and not gsm8k.is_heldout("train") and gsm8k.is_heldout("test")
    assert task_row(gsm8k) == {"name": "gsm8k", "source": "gsm8k", "type": "cot", "templates": 16,
                               "heldout": "gsm8k-test (test split)"}
    assert [t.name for t in list_tasks(shared_data, source="gsm8k", tag="heldout")] == ["gsm8k"]


def test_every_shipped_template_renders_on_its_data(shared_data, tmp_path):
    tasks = _local_tasks(shared_data, tmp_path)
    assert len(tasks) == 10 + 57 + 27 + 11  # CoT + GSM8K, MMLU subjects, BBH subtasks, MGSM languages
    for task in tasks:
        examples = list(task.examples(task.train_split))
        assert examples, task.name
        task.validate_templates()
        for template in task.family.templates:
            for fmt in set(template.formats) & set(task.formats()):
                for ex in examples[:3]:
                    inputs, targets = render_example(task, template, ex, fmt)
                    assert inputs and targets, (task.name, template.id, fmt)
        for fmt in task.formats():
            assert len(list(render(task, fmt, split=task.train_split, limit=4))) == min(4, len(examples))


def test_gsm8k_cot_and_heldout_test_split(shared_data):
    task = get_task("gsm8k", shared_data)
    first = next(task.examples())
    assert first["answer"] == "72" and "<<" not in first["cot"]
    assert first["cot"].startswith("Natalia sold 48/2 = 24 clips in May.")
    test_ids = {fingerprint(ex) for ex in task.examples("test")}
    assert len(test_ids) == 1319
    for r in render(task, "fs_cot", split="test", limit=20, seed=4):
        assert len(r.exemplar_ids) == 3 and not test_ids & set(r.exemplar_ids)
        assert r.inputs.count("The answer is") == 3  # exemplars carry CoT targets, the query none


def test_cli_list_and_show(shared_data, capsys):
    assert main(["tasks", "list", "--data-dir", str(shared_data), "--source", "flan_cot"]) == 0
    out = capsys.readouterr().out
    assert all(f"cot_{n}" in out for n in FLAN_COT) and "9 tasks" in out
    args = ["tasks", "show", "cot_gsm8k", "--data-dir", str(shared_data), "--format", "fs_cot", "--n", "2",
            "--seed", "3"]
    assert main(args) == 0
    shown = capsys.readouterr().out
    assert shown.count("=== example") == 2
    assert ("Natalia sold 48 / 2 = 24 clips in May. Natalia sold 48 + 24 = 72 clips altogether in April and "
            "May. The answer is 72.") in shown
    assert main(args) == 0
    assert capsys.readouterr().out == shown  # same seed, same output
    assert main([*args[:-1], "4"]) == 0
    assert capsys.readouterr().out != shown


def test_cli_errors(shared_data, capsys):
    assert main(["tasks", "show", "cot_gsm8", "--data-dir", str(shared_data)]) == 2
    assert "did you mean 'cot_gsm8k'" in capsys.readouterr().err
    assert main(["tasks", "show", "cot_esnli", "--data-dir", str(shared_data), "--format", "zs_cot"]) == 2
    assert "esnli_train.tsv: file not found" in capsys.readouterr().err
    assert main(["tasks", "show", "gsm8k", "--data-dir", str(shared_data), "--format", "zs_opt"]) == 2
    assert "no templates for format 'zs_opt'" in capsys.readouterr().err


def test_user_catalog_file(tmp_path):
    (tmp_path / "train.jsonl").write_text('{"question": "2+2?", "answer": "4", "cot": "2 and 2 make 4."}\n',
                                          encoding="utf-8")
    good = tmp_path / "mine.yaml"
    good.write_text("kind: task_catalog\ntasks:\n  - name: mine\n    files: {train: train.jsonl}\n"
                    "    family: cot\n    task_type: cot\n    heldout: [mmlu]\n", encoding="utf-8")
    (task,) = load_catalog_file(good)
    assert task.heldout_tags() == ["mmlu"]
    assert next(render(task, "zs_cot")).targets == "2 and 2 make 4. The answer is 4."
    bad = tmp_path / "bad.yaml"
    bad.write_text("kind: task_catalog\ntasks:\n  - name: mine\n    files: {train: train.jsonl}\n"
                   "    family: cot\n    task_typ: cot\n", encoding="utf-8")
    with pytest.raises(UserError, match=r"bad.yaml:6: unknown key 'tasks.0.task_typ'"):
        load_catalog_file(bad)


def test_benchmarks_in_the_data_dir_are_held_out(shared_data):
    from flanlab.tasks.bigbench import bbh_map

    mmlu = list_tasks(shared_data, source="mmlu")
    assert len(mmlu) == 57 and all(t.heldout == ("mmlu",) for t in mmlu)
    algebra = get_task("mmlu.abstract_algebra", shared_data)
    first = next(algebra.examples("test"))
    assert first["options"] == ["0", "4", "2", "6"] and first["answer"] == "4" and first["letter"] == "B"
    assert {t.name for t in list_tasks(shared_data, source="bbh", tag="bbh")} == {f"bbh.{n}" for n in bbh_map()}
    mgsm = list_tasks(shared_data, source="mgsm")
    assert {t.language for t in mgsm} == {"bn", "de", "en", "es", "fr", "ja", "ru", "sw", "te", "th", "zh"}
    assert all(t.is_heldout() for t in mgsm)
    # Without a data dir the expanded entries are simply absent.
    assert not [t for t in build_catalog(None, bigbench=False).names() if t.startswith(("mmlu.", "bbh.", "mgsm."))]


def test_bad_mmlu_row_names_file_and_line(tmp_path):
    (tmp_path / "mmlu" / "test").mkdir(parents=True)
    (tmp_path / "mmlu" / "dev").mkdir(parents=True)
    (tmp_path / "mmlu" / "test" / "toy_test.csv").write_text("1+1?,1,2,3,4,B\n2+2?,2,4,6,8,E\n", encoding="utf-8")
    task = build_catalog(tmp_path, bigbench=False).get("mmlu.toy")
    with pytest.raises(UserError, match=r"toy_test.csv:2: expected 6 columns question,A,B,C,D,answer-letter"):
        list(task.examples("test"))


def test_user_catalog_with_a_hub_dataset_entry(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder = tmp_path / "hub" / "data"
    folder.mkdir(parents=True)
    rows = [{"question": "Is water wet?", "options": ["yes", "no"], "answer": "yes"},
            {"question": "Is fire cold?", "options": ["yes", "no"], "answer": "no"}]
    pq.write_table(pa.Table.from_pylist(rows), folder / "train-00000-of-00001.parquet")
    spec = tmp_path / "hub.yaml"
    spec.write_text(f"kind: task_catalog\ntasks:\n  - name: wet\n    hf: {{path: {tmp_path / 'hub'}, splits: {{train: train}}}}\n"
                    "    family: qa_mc\n    task_type: multiple_choice\n    options_field: options\n", encoding="utf-8")
    (task,) = load_catalog_file(spec)
    assert list(task.examples()) == rows
    out = list(render(task, "zs_opt", option_styles="flan"))
    assert "Is fire cold?\nOPTIONS:\n- yes\n- no" in out[1].inputs and out[1].targets == "no"


def test_cli_show_with_a_tokenizer_budget(shared_data, tmp_path, capsys):
    from flanlab.inference.tiny import make_tiny_tokenizer

    make_tiny_tokenizer().save_pretrained(tmp_path / "tok")
    args = ["tasks", "show", "cot_ecqa", "--data-dir", str(shared_data), "--format", "fs_cot", "--n", "1",
            "--shots", "3", "--tokenizer", str(tmp_path / "tok")]
    assert main(args) == 0
    with_budget = capsys.readouterr().out
    assert main(args[:-2]) == 0
    plain = capsys.readouterr().out
    # The Flan budgets (2048 / 512 / 1920 tokens) are far above these short examples: same output.
    assert with_budget == plain and plain.count("The answer is") == 4
