"""T0-SF: P3 pre-rendered rows and promptsource template files rendered in our sandbox."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from flanlab.tasks.collection.manifest import load_manifest
from flanlab.tasks.collection.t0 import (
    PromptsourceError,
    load_promptsource_file,
    p3_name,
    promptsource_task,
    t0_task,
)
from flanlab.tasks.sources import FileSource, SourceError
from flanlab.tasks.task import render

FIX = Path(__file__).parent / "fixtures" / "t0"
ROWS = FileSource({"train": FIX / "cos_e_rows.jsonl"})


def test_p3_names_match_the_manifest():
    t0 = {t.short_name for t in load_manifest().select(collections=["t0sf"])}
    assert p3_name("cos_e", "v1.11", "i think") == "cos_e_v1.11_i_think" in t0
    assert p3_name("race", "high", "Select the best answer (generate span)") == \
        "race_high_Select_the_best_answer_generate_span_" in t0
    assert p3_name("social_i_qa", None, "Check if a random answer is valid or not") in t0


def test_p3_rows_render_zero_and_few_shot(tmp_path):
    folder = tmp_path / "p3" / "cos_e_v1.11_i_think"
    folder.mkdir(parents=True)
    shutil.copy(FIX / "p3_train.jsonl", folder / "train.jsonl")
    task = t0_task("t0sf/cos_e_v1.11_i_think", data_dir=tmp_path)
    assert "local" in task.tags and task.source_kind == "t0"
    assert task.formats() == ["zs_noopt", "fs_noopt"]
    zs = list(render(task, "zs_noopt"))
    assert [r.targets for r in zs] == ["refrigerator", "pen", "water"]
    assert zs[0].inputs == "Where would you keep milk cold?\nPick one: oven, refrigerator, closet"
    fs = list(render(task, "fs_noopt", shots=2, seed=1))
    assert all(len(r.exemplar_ids) == 2 and r.inputs.count("Pick one:") == 3 for r in fs)
    hub = t0_task("cos_e_v1.11_i_think")
    assert "hub" in hub.tags and hub.source.inner.path == "bigscience/P3"
    assert hub.source.inner.config == "cos_e_v1.11_i_think"


def test_promptsource_templates_render_in_the_sandbox():
    templates = load_promptsource_file(FIX / "templates.yaml")
    assert [t.p3_name for t in templates] == ["cos_e_v1.11_i_think", "cos_e_v1.11_generate_explanation_given_text",
                                              "cos_e_v1.11_Hint_random_choice_"]
    think = promptsource_task(templates[0], ROWS)
    assert think.name == "t0sf/cos_e_v1.11_i_think"
    r = next(render(think, "zs_noopt"))
    assert r.inputs == ("Where would you keep milk cold?\nPick the option that answers the question best.\n"
                        "- oven\n- refrigerator\n- closet")
    assert r.targets == "refrigerator"
    fs = next(render(think, "fs_noopt", shots=1))
    assert fs.inputs.count("Pick the option") == 2
    expl = [r.targets for r in render(promptsource_task(templates[1], ROWS), "zs_noopt")]
    # promptsource skips rows whose target renders empty (c2 has no explanation).
    assert expl == ["A refrigerator keeps food cold.", "Fish breathe in water."]
    hint = [r.inputs for r in render(promptsource_task(templates[2], ROWS), "zs_noopt")]
    assert hint == [r.inputs for r in render(promptsource_task(templates[2], ROWS), "zs_noopt")]  # reproducible
    assert len(hint) == 2 and "(hint: " in hint[0]


def test_promptsource_errors(tmp_path):
    bad = tmp_path / "templates.yaml"
    bad.write_text("dataset: x\ntemplates:\n  a: !Template\n    name: n\n    jinja: '{{ q }} ||| {{ a'\n")
    with pytest.raises(PromptsourceError, match="templates.a \\(n\\): syntax error"):
        load_promptsource_file(bad)
    bad.write_text("dataset: x\ntemplates:\n  a: !!python/object:os.system {}\n")
    with pytest.raises(PromptsourceError, match="invalid YAML"):
        load_promptsource_file(bad)  # only safe tags: no Python objects
    bad.write_text("dataset: x\ntemplates:\n  a: !Template\n    name: n\n    jinja: '{{ missing }} ||| x'\n")
    task = promptsource_task(load_promptsource_file(bad)[0], ROWS)
    with pytest.raises(SourceError, match=r"cos_e_rows.jsonl:1: template 'n': 'missing' is undefined"):
        next(task.examples())
    bad.write_text("dataset: x\ntemplates:\n  a: !Template\n    name: n\n    jinja: '{{ question.__class__ }} ||| x'\n")
    task = promptsource_task(load_promptsource_file(bad)[0], ROWS)
    with pytest.raises(SourceError):
        next(task.examples())
