from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flanlab.core.errors import UserError
from flanlab.tasks.budget import HFCounter, WhitespaceCounter
from flanlab.tasks.formats import COT_TRIGGER, FEWSHOT_SEPARATOR, Budget
from flanlab.tasks.sources import MemorySource
from flanlab.tasks.task import Task, fingerprint, render
from flanlab.tasks.template import parse_family
from tests.conftest import hypothesis_examples

from .conftest import MC_FAMILY

PLAIN = parse_family("""
family: plain
fields: [question, answer]
templates:
  - inputs: "{{ question }}"
    targets: "{{ answer }}"
""", "plain.yaml")
SETTINGS = settings(max_examples=hypothesis_examples(40))  # deadline, database, randomness: the profile's


def test_formats_of_tasks(mc_task, cot_task):
    assert mc_task.formats() == ["zs_opt", "zs_noopt", "fs_opt", "fs_noopt"]
    assert cot_task.formats() == ["zs_noopt", "fs_noopt", "zs_cot", "fs_cot"]
    with pytest.raises(UserError, match="no templates for format 'zs_opt'"):
        list(render(cot_task, "zs_opt"))
    with pytest.raises(ValueError, match="unknown format"):
        list(render(cot_task, "zero_shot"))


def test_cot_formats(cot_task):
    zs = list(render(cot_task, "zs_cot", seed=2))
    assert all(r.targets.endswith(f"The answer is {ex['answer']}.") for r, ex in zip(zs, cot_task.examples(), strict=True))
    with_trigger = [r for r in zs if r.template_id in ("cot:plain", "cot:qa", "cot:q_a", "cot:solve")]
    assert with_trigger and all(r.inputs.endswith(COT_TRIGGER) for r in with_trigger)
    fs = list(render(cot_task, "fs_cot", seed=2, shots=2))
    assert all(COT_TRIGGER not in r.inputs and r.inputs.count("The answer is") == 2 for r in fs)
    inverted = list(render(cot_task, "zs_noopt", seed=2))
    assert {r.template_id.split(":")[0] for r in inverted} == {"inv"}


def test_fewshot_uses_query_template_and_train_exemplars(mc_task):
    for r in render(mc_task, "fs_noopt", split="test", seed=5, shots=3):
        assert len(r.exemplar_ids) == 3
        blocks = r.inputs.split(FEWSHOT_SEPARATOR)
        assert len(blocks) == 4
        qa = r.template_id == "qa"
        assert all(b.startswith("Q: ") == qa for b in blocks)
        assert all(b.removeprefix("Q: ").startswith("q") for b in blocks[:-1])  # train questions
        assert blocks[-1].removeprefix("Q: ").startswith("t")  # the held-out query comes last


def test_rendered_is_json_ready(mc_task):
    r = next(render(mc_task, "fs_opt"))
    assert json.loads(json.dumps(r.to_dict()))["task"] == "tiny_mc"


def _task(train, test=None, family=PLAIN, name="prop"):
    data = {"train": train} | ({"test": test} if test is not None else {})
    return Task(name, MemorySource(data), family, heldout_splits={"test": "prop-test"} if test is not None else {})


words = st.text(alphabet="abcdefgh ", min_size=0, max_size=30)


@SETTINGS
@given(st.lists(st.tuples(words, words), min_size=1, max_size=8), st.integers(0, 2**31),
       st.sampled_from(["zs_noopt", "fs_noopt"]))
def test_rendering_is_deterministic_for_a_seed(rows, seed, fmt):
    examples = [{"question": f"<{i}> {q}", "answer": a} for i, (q, a) in enumerate(rows)]
    first = list(render(_task(examples), fmt, seed=seed))
    again = list(render(_task(examples), fmt, seed=seed))
    assert first == again
    mc_rows = [{"question": f"<{i}> {q}", "options": ["yes", "no", a or "x"], "answer": "no"}
               for i, (q, a) in enumerate(rows)]
    mc = parse_family(MC_FAMILY, "tiny_mc.yaml")
    a = list(render(Task("m", MemorySource({"train": mc_rows}), mc, options_field="options"), "fs_opt", seed=seed))
    b = list(render(Task("m", MemorySource({"train": mc_rows}), mc, options_field="options"), "fs_opt", seed=seed))
    assert a == b


@SETTINGS
@given(st.integers(1, 12), st.integers(1, 6), st.lists(st.integers(0, 5), max_size=4),
       st.integers(0, 2**31), st.integers(1, 5))
def test_fewshot_never_contains_query_or_heldout(n_train, n_test, leaked, seed, shots):
    train = [{"question": f"<train{i}>", "answer": f"a{i}"} for i in range(n_train)]
    test = [{"question": f"<test{i}>", "answer": f"b{i}"} for i in range(n_test)]
    # Contamination: some held-out examples also appear in the training split.
    train += [test[i % n_test] for i in leaked]
    heldout_ids = {fingerprint(ex) for ex in test}
    task = _task(train, test)
    for split in ("train", "test"):
        for r in render(task, "fs_noopt", split=split, seed=seed, shots=shots):
            assert r.example_id not in r.exemplar_ids
            assert not heldout_ids & set(r.exemplar_ids)
            context = r.inputs.rsplit(FEWSHOT_SEPARATOR, 1)[0] if r.exemplar_ids else ""
            assert "<test" not in context
            query = r.inputs.rsplit(FEWSHOT_SEPARATOR, 1)[-1]
            assert query not in context.split("\n")


@SETTINGS
@given(st.lists(st.tuples(st.integers(0, 120), st.integers(0, 40)), min_size=1, max_size=6),
       st.integers(0, 2**31), st.sampled_from(["zs_noopt", "fs_noopt"]))
def test_budgets_hold_for_any_lengths(lengths, seed, fmt):
    examples = [{"question": " ".join(f"q{i}w{j}" for j in range(nq)), "answer": " ".join(["t"] * na)}
                for i, (nq, na) in enumerate(lengths)]
    budget = Budget(inputs=50, targets=10, fewshot_inputs=30)
    counter = WhitespaceCounter()
    for r in render(_task(examples), fmt, seed=seed, shots=4, tokenizer=counter, budget=budget):
        assert counter.count(r.inputs) <= budget.inputs
        assert counter.count(r.targets) <= budget.targets
        if r.exemplar_ids:
            shots_text = r.inputs.rsplit(FEWSHOT_SEPARATOR, 1)[0]
            assert counter.count(shots_text) <= budget.fewshot_inputs
        query = examples[r.index]["question"]
        assert r.inputs.endswith(counter.truncate(query, budget.inputs))


def test_budgets_with_a_real_tokenizer():
    from flanlab.inference.tiny import make_tiny_tokenizer

    counter = HFCounter(make_tiny_tokenizer())
    long = "Janet's ducks lay 16 eggs per day and she sells the rest at the market. " * 30
    examples = [{"question": f"{i} {long[: 12 * (i + 1) ** 2]}", "answer": long[: 15 * (i + 1)]} for i in range(8)]
    budget = Budget(inputs=120, targets=20, fewshot_inputs=80)
    rendered = list(render(_task(examples), "fs_noopt", shots=4, tokenizer=counter, budget=budget))
    for r in rendered:
        assert counter.count(r.inputs) <= budget.inputs
        assert counter.count(r.targets) <= budget.targets
        if r.exemplar_ids:
            assert counter.count(r.inputs.rsplit(FEWSHOT_SEPARATOR, 1)[0]) <= budget.fewshot_inputs
    assert any(r.exemplar_ids for r in rendered) and any(len(r.exemplar_ids) < 4 for r in rendered)
    defaults = Budget()
    assert (defaults.inputs, defaults.targets, defaults.fewshot_inputs) == (2048, 512, 1920)


_TINY: list[HFCounter] = []


def _tiny_counter() -> HFCounter:
    # Built once per module (hypothesis re-runs the test body many times).
    if not _TINY:
        from flanlab.inference.tiny import make_tiny_tokenizer

        _TINY.append(HFCounter(make_tiny_tokenizer()))
    return _TINY[0]


@SETTINGS
# No newlines in the query, so that the last separator splits exemplars from the query exactly. Only
# real characters (codec utf-8: no lone surrogates, which task files are refused for, see test_fuzz).
@given(st.lists(st.tuples(st.text(st.characters(codec="utf-8", exclude_characters="\n\r"), max_size=300),
                          st.text(max_size=120)), min_size=1, max_size=5), st.integers(0, 2**31))
def test_budgets_hold_with_a_real_tokenizer_on_any_text(rows, seed):
    counter = _tiny_counter()
    examples = [{"question": f"{i} {q}", "answer": a} for i, (q, a) in enumerate(rows)]
    budget = Budget(inputs=64, targets=16, fewshot_inputs=40)
    for r in render(_task(examples), "fs_noopt", seed=seed, shots=3, tokenizer=counter, budget=budget):
        assert counter.count(r.inputs) <= budget.inputs
        assert counter.count(r.targets) <= budget.targets
        if r.exemplar_ids:
            assert counter.count(r.inputs.rsplit(FEWSHOT_SEPARATOR, 1)[0]) <= budget.fewshot_inputs
