"""Rendering with a FLAN checkout equals what flan/v2's own code produces.

The expected strings are computed here independently: the checkout's files are read with
``ast.literal_eval`` (keyword by keyword for ``FewShotPattern(...)``) and filled with Python's
``str.format``; few-shot strings follow seqio's ``fewshot_preprocessor`` as flan/v2 calls it. These
tests read the real ``../shared/reference/FLAN`` and skip, saying so, only where it is absent.
"""

from __future__ import annotations

import ast
import random
from functools import cache
from pathlib import Path

import pytest

from flanlab.core.errors import UserError
from flanlab.tasks.budget import WhitespaceCounter
from flanlab.tasks.collection.flan_render import OptionDraw, assemble_fewshot, fill, format_options
from flanlab.tasks.collection.flan_repo import FlanRepoError, load_flan_repo
from flanlab.tasks.collection.muffin import flan_fields, has_flan_inversions, muffin_datasets, muffin_task
from flanlab.tasks.sources import MemorySource
from flanlab.tasks.task import render

FLAN = Path(__file__).resolve().parents[4] / "shared" / "reference" / "FLAN"
pytestmark = pytest.mark.skipif(not (FLAN / "flan" / "v2" / "templates.py").is_file(),
                                reason=f"no google-research/FLAN checkout at {FLAN}")


@cache
def _module(name: str) -> ast.Module:
    return ast.parse((FLAN / "flan" / "v2" / name).read_text())


@cache
def expected_tables() -> dict[str, dict]:
    """PATTERNS, branched PATTERNS and FEWSHOT_PATTERNS, read independently with literal_eval."""
    out: dict[str, dict] = {"PATTERNS": {}, "BRANCHED": {}, "FEWSHOT": {}}
    for node in _module("templates.py").body:
        if not (isinstance(node, ast.Assign) and len(node.targets) == 1):
            continue
        t = node.targets[0]
        if isinstance(t, ast.Name) and t.id == "PATTERNS":
            out["PATTERNS"].update(ast.literal_eval(node.value))
        elif isinstance(t, ast.Name) and t.id == "FEWSHOT_PATTERNS":
            for k, v in zip(node.value.keys, node.value.values, strict=True):
                out["FEWSHOT"][k.value] = [{kw.arg: ast.literal_eval(kw.value) for kw in call.keywords}
                                           for call in v.elts]
    for node in _module("flan_templates_branched.py").body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "PATTERNS":
            out["BRANCHED"].update(ast.literal_eval(node.value))
    return out


def _placeholders(*texts: str) -> set[str]:
    import string

    return {f for t in texts for _, f, _, _ in string.Formatter().parse(t) if f}


def _example(name: str) -> dict:
    """A synthetic example in the fields flan/v2's templates read for dataset ``name``."""
    spec = flan_fields()[name]
    ex = {f: f"<{f} of {name}>" for f in spec.mapping.fields}
    ex["answer"] = ex.get("answer", "<answer>")
    if spec.mapping.has_options():
        ex["options"] = ["first option", "<answer>", "third option"][: 3 if name != "rte" else 2]
        ex["answer"] = "<answer>"
    return ex


def _task(name: str, rows: list[dict] | None = None, inverted: bool = False):
    return muffin_task(name, flan_repo=FLAN, inverted=inverted,
                       source=MemorySource({"train": rows or []}), category="test")


def test_every_muffin_dataset_and_inverted_variant_loads():
    loaded = inverted = 0
    for name in muffin_datasets():
        task = _task(name)
        assert set(task.formats()) == {"zs_opt", "zs_noopt", "fs_opt", "fs_noopt"}, name
        loaded += 1
        if has_flan_inversions(name, FLAN):
            inv = _task(name, inverted=True)
            assert all(t.kind == "inversion" for t in inv.family.templates)
            inverted += 1
        else:
            with pytest.raises(UserError, match="no input-inversion template"):
                _task(name, inverted=True)
    assert loaded == len(muffin_datasets()) == 52  # every hub-mapped Muffin dataset
    assert inverted == 36


def test_zero_shot_with_a_fixed_option_style_equals_str_format_of_every_pattern():
    tables = expected_tables()
    checked = 0
    for name in muffin_datasets():
        spec = flan_fields()[name]
        task = _task(name)
        flan = task.family.flan
        ex = _example(name)
        opts = ex.get("options")
        options_ = ("OPTIONS:\n- " + "\n- ".join(opts)) if opts else ""
        for i, (inputs, targets) in enumerate(tables["PATTERNS"][spec.pattern]):
            if _placeholders(inputs, targets) & set(spec.unavailable):
                continue
            got = flan.zero_shot_one("zs_opt", i, ex, draw=None)
            ctx = {**ex, "options_": options_}
            assert got == (inputs.format(**ctx), targets.format(**ctx)), (name, i)
            checked += 1
    assert checked == 515  # every PATTERNS template of the 52 datasets (less the 5 needing a title)


def test_no_options_renderings_equal_the_branched_patterns():
    tables = expected_tables()
    checked = 0
    for name in muffin_datasets():
        spec = flan_fields()[name]
        flan = _task(name).family.flan
        ex = _example(name)
        base = tables["BRANCHED"].get(spec.pattern, tables["PATTERNS"][spec.pattern])
        for i, (inputs, targets) in enumerate(base):
            # flan/v2's PATTERNS_NO_OPTIONS drops the options placeholder; the rest is the branched text.
            for old in ("\n\n{options_}", "\n{options_}", "{options_}", "\n\n{options_str}"):
                inputs = inputs.replace(old, "")
            assert "{options_}" not in inputs
            if _placeholders(inputs, targets) & set(spec.unavailable):
                continue
            assert flan.zero_shot_one("zs_noopt", i, ex) == (inputs.format(**ex), targets.format(**ex)), (name, i)
            checked += 1
    assert checked == 515
    # The old way (deleting {options_} from the zero-shot PATTERNS) is not what flan/v2 trains on.
    rte = load_flan_repo(FLAN).no_options("rte")[0].inputs
    assert "with options" not in rte and "options" not in rte.lower()


def test_random_option_styles_use_flan_v2_candidates_and_relabel_the_answer():
    repo = load_flan_repo(FLAN)
    consts = {}
    for node in _module("templates.py").body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "OPT_START_STRING_CANDIDATES":
            consts[node.targets[0].id] = ast.literal_eval(node.value)
    assert repo.candidate("OPT_START_STRING_CANDIDATES") == consts["OPT_START_STRING_CANDIDATES"]
    assert len(repo.candidate("OPT_ITEM_NAME_CANDIDATES")) == 87
    names = repo.candidate("OPT_ITEM_NAME_CANDIDATES")
    roman = next(i for i, n in enumerate(names) if n[0] == " (i) ")
    dash = next(i for i, n in enumerate(names) if n[0] == "\n- ")
    start = consts["OPT_START_STRING_CANDIDATES"].index("Options:")
    text, answer = format_options(repo, ["yes", "no"], "no", OptionDraw(start, roman, 1))
    assert (text, answer) == ("Options: (i) yes; (ii) no;", "(ii)")
    text, answer = format_options(repo, ["yes", "no"], "no", OptionDraw(start, dash, 0))
    assert (text, answer) == ("Options:\n- yes\n- no", "no")  # item names not distinct: answer kept
    with pytest.raises(UserError, match="at most 26"):
        format_options(repo, [str(i) for i in range(27)], "1", OptionDraw(0, roman, 0))


def _seqio(query, shots, p, *, strip=False, sep=None, xy=None, prefixes=True):
    """seqio's fewshot_preprocessor as flan/v2's register_few_shot_version_of_task calls it."""
    ip, tp = (p["inputs_prefix"], p["targets_prefix"]) if prefixes else ("", "")
    xy = p["x_y_delimiter"] if xy is None else xy
    sep = p["example_separator"] if sep is None else sep
    train = "".join(ip + (x + xy) + tp + y + sep for x, y in shots)
    inputs = (train + ip + (query[0] + xy) + tp.rstrip()).rstrip(" ")
    suffix = p.get("final_suffix", "")
    return inputs + suffix, query[1].strip() if strip else query[1]


def test_few_shot_strings_equal_flan_v2_assembly_for_a_fixed_template_and_exemplars():
    tables = expected_tables()
    defaults = dict(inputs_prefix="", targets_prefix="", x_y_delimiter="\n\n", example_separator="\n\n\n",
                    final_suffix="", input_pattern="{{inputs}}{final_suffix}")
    checked = 0
    for name in muffin_datasets():
        spec = flan_fields()[name]
        repo_patterns = load_flan_repo(FLAN).few_shot(spec.pattern)
        exs = [_example(name) for _ in range(3)]
        for k, ex in enumerate(exs):
            for f in spec.mapping.fields:
                ex[f] = f"{ex[f]} #{k}"
        for i, (raw, options) in enumerate((r, o) for o in (True, False) for r in tables["FEWSHOT"][spec.pattern]):
            p = {**defaults, **raw}
            if not options:  # flan/v2's FEWSHOT_PATTERNS_NO_OPTIONS: the options placeholder removed
                for old in ("\n\n{options_}", "\n{options_}", " | {options_}", " {options_}", " ({options_})",
                            "{options_}", "\n\n{options_str}", "\n{options_str}"):
                    p["inputs"] = p["inputs"].replace(old, "")
            if _placeholders(p["inputs"], p["targets"]) & set(spec.unavailable):
                continue
            n = len(tables["FEWSHOT"][spec.pattern])
            ours = (repo_patterns if options else load_flan_repo(FLAN).few_shot(spec.pattern, False))[i % n]
            ctxs = [{**e, "options_": "OPTIONS:\n- " + "\n- ".join(e["options"]) if "options" in e else ""}
                    for e in exs]
            pairs = [(p["inputs"].format(**c), p["targets"].format(**c)) for c in ctxs]
            filled = [(fill(ours.inputs, c), fill(ours.targets, c)) for c in ctxs]
            assert filled == pairs, (name, i)
            got = assemble_fewshot(filled[0], filled[1:], inputs_prefix=ours.inputs_prefix,
                                   targets_prefix=ours.targets_prefix, x_y_delimiter=ours.x_y_delimiter,
                                   example_separator=ours.example_separator, final_suffix=ours.final_suffix,
                                   input_pattern=ours.input_pattern)
            assert got == _seqio(pairs[0], pairs[1:], p), (name, i)
            checked += 1
    assert checked == 1028  # every FEWSHOT_PATTERNS template, with and without options (52 datasets)


def test_zero_shot_with_a_random_option_style_equals_str_format_with_that_style():
    repo = load_flan_repo(FLAN)
    tables = expected_tables()
    rng = random.Random(5)
    checked = 0
    for name in muffin_datasets():
        spec = flan_fields()[name]
        if not spec.mapping.has_options():
            continue
        flan = _task(name).family.flan
        ex = _example(name)
        for i, (inputs, targets) in enumerate(tables["PATTERNS"][spec.pattern]):
            if _placeholders(inputs, targets) & set(spec.unavailable):
                continue
            draw = OptionDraw.random(repo, rng)
            names = repo.candidate("OPT_ITEM_NAME_CANDIDATES")[draw.items]
            ends = repo.candidate("OPT_ITEM_END_STR_CANDIDATES")[draw.ends]
            options_ = repo.candidate("OPT_START_STRING_CANDIDATES")[draw.start] + "".join(
                names[k] + o + ends[k] for k, o in enumerate(ex["options"]))
            labels = [n.strip() for n in names[: len(ex["options"])]]
            answer = labels[ex["options"].index(ex["answer"])] if len(set(labels)) == len(labels) else ex["answer"]
            ctx = {**ex, "options_": options_, "answer": answer}
            assert flan.zero_shot_one("zs_opt", i, ex, draw) == (inputs.format(**ctx), targets.format(**ctx))
            checked += 1
    assert checked == 285  # every PATTERNS template of the datasets with answer options


def test_x_shot_and_template_mix_render_through_the_task():
    rows = [{"sentence1": f"Premise {i}.", "sentence2": f"Hypothesis {i}.", "label": i % 2} for i in range(40)]
    task = _task("rte", rows)
    patterns = load_flan_repo(FLAN).few_shot("rte")
    modes = set()
    for r in render(task, "fs_opt", seed=3, limit=40):
        p = patterns[int(r.template_id.rsplit(":", 1)[1])]
        assert r.exemplar_ids
        assert ("OPTIONS:\n- yes\n- no" in r.inputs) == ("{options_}" in p.inputs)
        # x-shot targets are stripped; template-mix targets are the template's target as is.
        modes.add("x" if r.inputs.startswith(p.inputs_prefix) and r.inputs.count(p.x_y_delimiter) > len(
            r.exemplar_ids) else "mix")
    assert modes == {"x", "mix"}
    for r in render(task, "fs_noopt", seed=3, limit=10):
        assert "OPTIONS" not in r.inputs
        assert r.template_id.startswith("flan:rte:fs_noopt:")


def test_exemplars_plus_query_stay_under_flan_v2_budget_and_unfit_examples_are_dropped():
    long = " ".join(["word"] * 1900)
    rows = [{"sentence1": long if i == 0 else f"Premise {i} " + "w " * 300, "sentence2": "H.", "label": 0}
            for i in range(12)]
    task = _task("rte", rows)
    counter = WhitespaceCounter()
    out = list(render(task, "fs_noopt", seed=0, tokenizer=counter))
    assert 0 not in [r.index for r in out]  # no exemplar fits beside a 1,900-word query: dropped
    assert out
    for r in out:
        assert counter.count(r.inputs) <= load_flan_repo(FLAN).few_shot_max_len + 20
        assert len(r.exemplar_ids) <= 6


def test_inverted_share_follows_flan_v2_template_weighting():
    """Muffin inversions come from flan/v2's own template lists, about one in ten."""
    rng = random.Random(0)
    total = inverted = 0
    expected_num = expected_den = 0.0
    for name in muffin_datasets():
        task = _task(name)
        flan = task.family.flan
        inv_ids = {t.id for t in _task(name, inverted=True).family.templates} if has_flan_inversions(name, FLAN) \
            else set()
        zs = flan.zero_shot()
        expected_num += sum(1 for i, _ in zs if f"flan:{flan.key}:{i}" in inv_ids) / len(zs)
        expected_den += 1
        for _ in range(40):
            i, _ = rng.choice(zs)
            total += 1
            inverted += f"flan:{flan.key}:{i}" in inv_ids
    share, want = inverted / total, expected_num / expected_den
    assert abs(share - want) < 0.02
    assert 0.05 < want < 0.2


def test_an_unreadable_template_is_an_error_naming_the_entry_and_line(tmp_path):
    v2 = tmp_path / "flan" / "v2"
    v2.mkdir(parents=True)
    text = (FLAN / "flan" / "v2" / "templates.py").read_text()
    broken = text.replace('"rte": [\n', '"rte": [\n        make_pattern(),\n', 1)
    (v2 / "templates.py").write_text(broken)
    with pytest.raises(FlanRepoError, match=r"templates\.py:\d+: PATTERNS\['rte'\] template 0 cannot be read"):
        muffin_task("rte", flan_repo=tmp_path, source=MemorySource({"train": []}), category="x")
    # Other datasets still load from the same checkout.
    assert muffin_task("cb", flan_repo=tmp_path, source=MemorySource({"train": []}), category="x")
    # An unreadable branched (no-options) entry is an error too, never replaced by PATTERNS.
    (v2 / "templates.py").write_text(text)
    branched = (FLAN / "flan" / "v2" / "flan_templates_branched.py").read_text()
    (v2 / "flan_templates_branched.py").write_text(branched.replace('"cb": [\n', '"cb": [\n        make(),\n', 1))
    with pytest.raises(FlanRepoError, match=r"flan_templates_branched\.py:\d+: PATTERNS\['cb'\] template 0"):
        muffin_task("cb", flan_repo=tmp_path, source=MemorySource({"train": []}), category="x")


def test_cot_targets_are_phrased_per_flan_v2_template_without_a_zero_shot_trigger():
    from flanlab.tasks.catalog import build_catalog
    from flanlab.tasks.collection.cot import COT_KEYS

    tables = expected_tables()
    reg = build_catalog(None, bigbench=False, flan_repo=FLAN)
    ex = {"question": "What is 2 + 3?", "answer": "5", "chain_of_thought": "2 plus 3 makes 5."}
    checked = 0
    for ours, (key, inv_key) in COT_KEYS.items():
        task = reg.get(ours)
        assert task.formats() == ["zs_cot", "fs_cot"]
        flan = task.family.flan
        for i, (inputs, targets) in enumerate(tables["PATTERNS"][key]):
            got = flan.zero_shot_one("zs_cot", i, ex)
            assert got == (inputs.format(**ex), targets.format(**ex)), (ours, i)
            assert "Let's think step by step." not in got[0]
            checked += 1
        inverted = reg.get(f"{ours}:inverted")
        assert inverted.source_kind == "flan_cot_ii" and inverted.family.flan.key == inv_key
    assert checked == 100  # every PATTERNS template of the 9 CoT datasets (esnli has 20)
    phrasings = {t.format(**ex).removeprefix(ex["chain_of_thought"]) for _, t in tables["PATTERNS"]["cot_gsm8k"]}
    assert len(phrasings) == 10  # ten ways of giving the answer, not one "The answer is ..."


def test_t0_sf_is_wrapped_in_flan_v2_t0_templates():
    from flanlab.tasks.collection.flan_repo import t0_task_types
    from flanlab.tasks.collection.t0 import t0_task

    tables = expected_tables()
    types = t0_task_types(str(FLAN))
    qa = next(k for k, v in types.items() if v == "t0_question_answer")
    mc = next(k for k, v in types.items() if v == "t0_multiple_choice_separated_options")
    row = {"inputs_pretokenized": "Line one\nLine two?", "targets_pretokenized": " yes\n", "answer_choices": ["yes", "no"]}
    task = t0_task(qa, source=MemorySource({"train": [row] * 3}), flan_repo=FLAN)
    ex = next(task.examples())
    assert ex == {"question": "Line one Line two?", "answer": "yes"}  # flan/v2 preprocessors.t0
    for i, (inputs, targets) in enumerate(tables["PATTERNS"]["t0_question_answer"]):
        assert task.family.flan.zero_shot_one("zs_opt", i, ex) == (inputs.format(**ex), targets.format(**ex))
    task = t0_task(mc, source=MemorySource({"train": [row] * 3}), flan_repo=FLAN)
    ex = next(task.examples())
    options_ = "OPTIONS:\n- yes\n- no"
    for i, (inputs, targets) in enumerate(tables["PATTERNS"]["t0_multiple_choice_separated_options"]):
        want = (inputs.format(**ex, options_=options_), targets.format(**ex))
        assert task.family.flan.zero_shot_one("zs_opt", i, ex) == want


def test_niv2_renders_flan_v2_zero_shot_inline_and_x_shot_layouts(tmp_path):
    import json

    from flanlab.tasks.collection.niv2 import niv2_task

    tables = expected_tables()
    path = tmp_path / "task999_toy.json"
    path.write_text(json.dumps({
        "Definition": ["Return the capital."],
        "Positive Examples": [{"input": "France", "output": "Paris", "explanation": "Paris is its capital."},
                              {"input": "Italy", "output": "Rome", "explanation": "Rome is."}],
        "Negative Examples": [],
        "Instances": [{"id": str(i), "input": f"Country {i}", "output": [f"City {i}"]} for i in range(20)]}))
    task = niv2_task(path, flan_repo=FLAN)
    assert task.formats() == ["zs_opt", "fs_opt"]  # flan/v2 mixes no NIv2 no-options variant
    base = {"Definition": "Return the capital.", "input": "Country 0", "output": "City 0"}
    zs = {r.template_id: r for r in render(task, "zs_opt", seed=0)}
    for tid, r in zs.items():
        i = int(tid.rsplit(":", 1)[1])
        inputs, targets = tables["PATTERNS"]["natinst_v2"][i]
        k = r.index
        ctx = {**base, "input": f"Country {k}", "output": f"City {k}"}
        assert (r.inputs, r.targets) == (inputs.format(**ctx), targets.format(**ctx))
    inline = {p[0]: p for p in []}
    for node in _module("templates.py").body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "INLINE_FS_PATTERNS":
            inline = ast.literal_eval(node.value)["natinst_v2"]
    defaults = dict(inputs_prefix="", targets_prefix="", x_y_delimiter="\n\n", example_separator="\n\n\n")
    seen = set()
    for r in render(task, "fs_opt", seed=1):
        ctx = {**base, "input": f"Country {r.index}", "output": f"City {r.index}", "ex_input": "France",
               "ex_output": "Paris", "ex_explanation": "Paris is its capital."}
        kind, i = r.template_id.split(":")[2], int(r.template_id.rsplit(":", 1)[1])
        if kind == "inline":
            assert (r.inputs, r.targets) == (inline[i][0].format(**ctx), inline[i][1].format(**ctx))
        else:  # preprocessors.reformat_single_example with two exemplars
            p = {**defaults, **tables["FEWSHOT"]["natinst_v2"][i]}
            ip = p["inputs_prefix"] + p["inputs"] + p["x_y_delimiter"] + p["targets_prefix"]
            tp = p["targets"] + p["example_separator"]
            pairs = sorted((r.inputs.index(x), x, y) for x, y in [("France", "Paris"), ("Italy", "Rome")])
            shots = "".join((ip + tp).format(input=x, output=y) for _, x, y in pairs)
            body = (shots + ip.format(**ctx)).rstrip(" ")
            outer = p["input_pattern"].replace("{{Definition}}", "{Definition}").replace("{{inputs}}", "{x}")
            assert r.inputs == outer.format(Definition=ctx["Definition"], x=body, final_suffix="")
            assert r.targets == tp.format(**ctx)
        seen.add(kind)
    assert seen == {"inline", "fs"}


def test_dialog_turns_are_formatted_as_flan_v2_formats_them():
    from flanlab.tasks.collection.dialog import dialog_task
    from flanlab.tasks.collection.flan_render import format_dialog

    repo = load_flan_repo(FLAN)
    turns = ["Hi", "Hello", "What time is it?"]
    assert format_dialog(repo, turns, None) == "DIALOG:\nHi\n- Hello\n- What time is it?\n- "
    starts = repo.candidate("DIALOG_START_STRING_CANDIDATES")
    assert "CONVERSATION:Conversation:" in starts  # flan/v2's missing comma, kept as flan/v2 has it
    names = repo.candidate("DIALOG_ITEM_NAME_CANDIDATES")
    p1 = next(i for i, n in enumerate(names) if n[0] == "\nP1: ")
    text = format_dialog(repo, turns, OptionDraw(starts.index("Phone call:"), p1, 1))
    assert text == "Phone call:\nP1: Hi;\nP2: Hello;\nP1: What time is it?;\nP2: "
    rows = [{"Context": ["Hi", "Hello"], "Question": "Time?", "Answer": "Noon."}] * 4
    task = dialog_task("qrecc", source=MemorySource({"train": rows}), flan_repo=FLAN)
    assert task.formats() == ["zs_opt", "fs_opt"]
    tables = expected_tables()
    ex = next(task.examples())
    for i, (inputs, targets) in enumerate(tables["PATTERNS"]["predict_next_turn_dialog"]):
        ctx = {**ex, "dialog_": "DIALOG:\nHi\n- Hello\n- Time?\n- "}
        assert task.family.flan.zero_shot_one("zs_opt", i, ex) == (inputs.format(**ctx), targets.format(**ctx))


def test_check_flan_loads_every_family_of_the_collection(capsys):
    import json

    from flanlab.cli import main

    assert main(["tasks", "check-flan", "--flan-repo", str(FLAN), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    totals = {t["collection"]: t for t in report["totals"]}
    assert set(totals) == {"muffin", "t0sf", "niv2", "cot"}
    assert sum(t["tasks"] for t in totals.values()) == 1836
    assert all(t["load errors"] == 0 and t["templates loaded"] == t["tasks"] for t in totals.values())
    rows = {r["name"]: r for r in report["tasks"]}
    assert rows["muffin/rte"]["formats"] == {"zs_opt": 10, "zs_noopt": 10, "fs_opt": 10, "fs_noopt": 10}
    assert rows["muffin/wiki_dialog"]["renderer"] == "flan/v2"
    assert rows["cot/cot_gsm8k"]["flan_key"] == "cot_gsm8k"


def test_check_flan_exits_non_zero_on_a_load_failure(tmp_path, capsys):
    from flanlab.cli import main

    v2 = tmp_path / "flan" / "v2"
    v2.mkdir(parents=True)
    for f in (FLAN / "flan" / "v2").glob("*.py"):
        (v2 / f.name).write_text(f.read_text())
    text = (v2 / "templates.py").read_text()
    (v2 / "templates.py").write_text(text.replace('"rte": [\n', '"rte": [\n        make_pattern(),\n', 1))
    assert main(["tasks", "check-flan", "--flan-repo", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "LOAD ERROR" in out and "PATTERNS['rte'] template 0 cannot be read" in out


def test_flan_field_mappings_cover_every_dataset_and_name_their_file(monkeypatch):
    from flanlab.tasks.collection import muffin
    from flanlab.tasks.collection.mapping import MappingError

    assert set(flan_fields()) == set(muffin_datasets())
    # Every placeholder flan/v2's lists read for a dataset is mapped, or declared unavailable with why.
    repo = load_flan_repo(FLAN)
    for name, spec in flan_fields().items():
        lists = [*repo.zero_shot(spec.pattern), *repo.no_options(spec.pattern), *repo.few_shot(spec.pattern)]
        read = {f for p in lists for f in _placeholders(p.inputs, p.targets)} - {"options_"}
        have = set(spec.mapping.fields) | {"answer"} | set(spec.unavailable)
        assert read <= have, (name, read - have)

    # Rows shaped as flan/v2's preprocessors shape them (task_configs_v1: _process_winogrande, _process_dart).
    wino = flan_fields()["winogrande"].mapping.apply(
        {"sentence": "Ann beat Bo so _ won the cup.", "option1": "Ann", "option2": "Bo", "answer": "1"})
    assert wino == {"context": "Ann beat Bo so ", "options": ["Ann won the cup.", "Bo won the cup."],
                    "answer": "Ann won the cup."}
    dart = flan_fields()["dart"].mapping.apply(
        {"tripleset": [["[TITLE]", "a", "b"], ["c", "d", "e"]], "annotations": {"text": ["t"]}})
    assert dart == {"tripleset": "; a; b; c; d; e", "target": "t", "tripleset_newline": "[TITLE]\na\nb\nc\nd\ne"}

    class Fake:
        def joinpath(self, name):
            return self

        def read_text(self, _):
            return "datasets:\n  rte: {fields: {premise: sentence1}}\n"

    muffin.flan_fields.cache_clear()
    monkeypatch.setattr(muffin, "_root", lambda: Fake())
    with pytest.raises(MappingError, match=r"flan_fields.yaml: datasets.rte: expected 'pattern'"):
        muffin.flan_fields()
    monkeypatch.undo()
    muffin.flan_fields.cache_clear()
