"""Muffin: hub mappings and our template families, rendered offline from rows in the hub's schema;
the --flan-repo path reads a templates.py in the Flan shape with ast (never imported)."""

from __future__ import annotations

import shutil
import sys
from collections import Counter
from pathlib import Path

import pytest

from flanlab.tasks.collection.flan_repo import FlanRepoError, format_to_jinja, load_flan_repo
from flanlab.tasks.collection.manifest import load_manifest
from flanlab.tasks.collection.mapping import MappingError, parse_mapping
from flanlab.tasks.collection.muffin import local_files, muffin_datasets, muffin_family, muffin_task
from flanlab.tasks.formats import FORMATS
from flanlab.tasks.sources import FileSource, SourceError
from flanlab.tasks.task import render

FIXTURES = Path(__file__).parent / "fixtures"
FLAN_REPO = FIXTURES / "flan_repo"


def _task(name: str, **kw):
    return muffin_task(name, source=FileSource({"train": FIXTURES / "muffin" / f"{name}.jsonl"}), **kw)


def test_mappings_cover_the_paper_categories():
    datasets = muffin_datasets()
    assert len(datasets) >= 25
    manifest = {t.short_name: t for t in load_manifest().select(collections=["muffin"])}
    assert set(datasets) <= set(manifest), sorted(set(datasets) - set(manifest))
    families = Counter(d.family for d in datasets.values())
    assert {"nli", "boolq", "extractive_qa", "closed_book_qa", "mc_qa", "sentiment", "paraphrase",
            "completion", "cause_effect", "coreference", "struct_to_text", "summarization",
            "translation", "topic", "acceptability", "word_sense"} == set(families)
    for family in families:
        standard = muffin_family(family, "standard")
        assert len(standard.templates) >= 10, family
        assert muffin_family(family, "inversion").templates
    categories = {manifest[n].category for n in datasets}
    for want in ("Natural Language Inference", "Sentiment Analysis", "Paraphrasing Identification",
                 "Coreference Resolution", "Structured Data to Text", "Summarization", "Translation",
                 "Closed-Book QA", "Extractive QA", "Next Sentence Prediction"):
        assert want in categories


@pytest.mark.parametrize("name", ["anli_r1", "arc_easy", "bool_q", "winogrande"])
def test_classification_tasks_render_every_format(name):
    task = _task(name)
    assert task.formats() == list(FORMATS)
    first = next(task.examples())
    assert first["answer"] in first["options"]
    for fmt in FORMATS:
        rows = list(render(task, fmt, seed=3, shots=2, option_styles="flan"))
        assert len(rows) == len(list(task.examples()))
        for r in rows:
            assert r.inputs and r.targets
            assert ("OPTIONS:" in r.inputs) == fmt.endswith("_opt")
        if fmt.startswith("fs_"):
            assert all(len(r.exemplar_ids) == 2 for r in rows)


def test_mapped_fields_follow_the_hub_schema():
    arc = [ex for ex in _task("arc_easy").examples()]
    assert [ex["answer"] for ex in arc] == ["the Sun", "sunlight", "0"]
    assert [ex["answer"] for ex in _task("bool_q").examples()] == ["yes", "no", "no"]
    assert [ex["answer"] for ex in _task("winogrande").examples()] == ["the trophy", "the bag", "Alex"]
    # SQuAD v2's unanswerable questions (no answer text) are dropped.
    from flanlab.tasks.sources import MemorySource

    rows = [{"context": "c", "question": "q", "answers": {"text": [], "answer_start": []}},
            {"context": "c2", "question": "q2", "answers": {"text": ["a"], "answer_start": [0]}}]
    squad = muffin_task("squad_v2", source=MemorySource({"train": rows}))
    assert list(squad.examples()) == [{"context": "c2", "question": "q2", "answer": "a"}]
    # SNLI's unlabelled rows (label -1) are dropped.
    assert [ex["answer"] for ex in _task("snli").examples()] == ["yes", "yes", "no"]
    dart = next(_task("dart").examples())
    assert dart == {"data": "Mars Hotel | location | Paris; Mars Hotel | rating | 4 stars",
                    "target": "The Mars Hotel in Paris has a 4 star rating."}


def test_generation_tasks_and_inversions():
    tr = _task("wmt16_translate_deen")
    assert tr.formats() == ["zs_noopt", "fs_noopt"]
    r = next(render(tr, "zs_noopt", seed=0))
    assert r.targets == "The house is small." and "Das Haus ist klein." in r.inputs
    inv = _task("wmt16_translate_deen", inverted=True)
    assert inv.name == "muffin/wmt16_translate_deen:inverted"
    r = next(render(inv, "fs_noopt", seed=0, shots=1))
    assert r.targets == "Das Haus ist klein." and "German" in r.inputs
    nli_inv = _task("anli_r1", inverted=True)
    assert nli_inv.formats() == ["zs_noopt", "fs_noopt"] and nli_inv.category.startswith("Inverted")
    assert all(r.targets for r in render(nli_inv, "zs_noopt"))


def test_local_data_dir_layout(tmp_path):
    folder = tmp_path / "muffin" / "anli_r1"
    folder.mkdir(parents=True)
    shutil.copy(FIXTURES / "muffin" / "anli_r1.jsonl", folder / "train.jsonl")
    assert local_files(tmp_path, "muffin/anli_r1") == {"train": folder / "train.jsonl"}
    task = muffin_task("anli_r1", data_dir=tmp_path)
    assert "local" in task.tags and task.source_kind == "muffin" and len(list(task.examples())) == 4
    hub = muffin_task("anli_r1", data_dir=tmp_path / "nothing")
    assert "hub" in hub.tags and hub.source.inner.path == "facebook/anli"


def test_bad_rows_and_mappings_name_the_place(tmp_path):
    bad = tmp_path / "train.jsonl"
    bad.write_text('{"premise": "p", "label": 0}\n')
    task = muffin_task("anli_r1", source=FileSource({"train": bad}))
    with pytest.raises(SourceError, match=r"train.jsonl:1: no field 'hypothesis'"):
        list(task.examples())
    bad.write_text('{"premise": "p", "hypothesis": "h", "label": 7}\n')
    with pytest.raises(SourceError, match=r"train.jsonl:1: answer index 7 out of range"):
        list(muffin_task("anli_r1", source=FileSource({"train": bad})).examples())
    with pytest.raises(MappingError, match=r"x.yaml: datasets.d.answer"):
        parse_mapping({"fields": {"a": "a"}, "options": ["x", "y"], "answer": {"idx": "l"}}, "x.yaml: datasets.d")
    with pytest.raises(MappingError, match="needs 'options'"):
        parse_mapping({"fields": {"a": "a"}, "answer": {"index": "l"}}, "d")


def test_flan_repo_templates_are_parsed_not_imported():
    repo = load_flan_repo(FLAN_REPO)
    assert "flan" not in sys.modules  # the checkout's imports were never executed
    assert set(repo.patterns) == {"rte", "trivia_qa", "anli"}
    assert repo.zero_shot("rte")[0].inputs.endswith("true?\n\n{options_}")  # names bound to literals resolve
    assert repo.zero_shot("rte")[0].line == 13
    # An entry that is not data is recorded with its line, and is an error when asked for.
    with pytest.raises(FlanRepoError, match=r"templates\.py:\d+: PATTERNS\['computed'\] is not a list"):
        repo.zero_shot("computed")
    with pytest.raises(FlanRepoError, match="no PATTERNS\\['cb'\\]"):
        repo.zero_shot("cb")
    # Literal braces and Jinja-looking text in a Flan string stay text, never template code.
    jinja, used = format_to_jinja("{premise} {{literal}} {{% x %}}\n{options_}")
    assert used == {"premise"}
    from flanlab.tasks.sandbox import render as sandbox_render

    assert sandbox_render(jinja, {"premise": "P", "options_": "O"}) == "P {literal} {% x %}\nO"
    with pytest.raises(FlanRepoError, match="must point at a checkout"):
        load_flan_repo(FIXTURES / "nowhere")


def test_every_template_of_every_family_renders():
    from flanlab.tasks.options import deterministic_style
    from flanlab.tasks.sources import MemorySource
    from flanlab.tasks.task import Task, render_example

    checked = 0
    for name, ds in muffin_datasets().items():
        for kind in ("standard", "inversion"):
            fam = muffin_family(ds.family, kind)
            example = {f: f"<{f}>" for f in fam.fields}
            example["question"] = "cause" if ds.family == "cause_effect" else example.get("question", "")
            options = ds.mapping.has_options() and kind == "standard"
            if options:
                example.update(options=["<a>", "<b>"], answer="<a>")
            task = Task(name=name, source=MemorySource({"train": [example]}), family=fam,
                        options_field="options" if options else None)
            for fmt in task.formats():
                for t in task.templates(fmt):
                    inputs, targets = render_example(task, t, example, fmt, deterministic_style())
                    assert inputs and targets, (name, t.id, fmt)
                    assert "<" in inputs  # every template shows some field of the example
                    checked += 1
    assert checked > 1000
