"""Tiny task fixtures shared by the tasks tests."""

from __future__ import annotations

import pytest

from flanlab.tasks.sources import MemorySource
from flanlab.tasks.task import Task
from flanlab.tasks.template import builtin_family, parse_family

MC_FAMILY = """
family: tiny_mc
fields: [question, options, answer]
templates:
  - inputs: "{{ question }}{% if options_ %}\\n{{ options_ }}{% endif %}"
    targets: "{{ answer }}"
  - id: qa
    inputs: "Q: {{ question }}{% if options_ %}\\n{{ options_ }}{% endif %}\\nA:"
    targets: "{{ answer }}"
"""


def mc_examples(n: int, prefix: str = "q") -> list[dict]:
    return [{"question": f"{prefix}{i}: is {i} even?", "options": ["yes", "no"],
             "answer": "yes" if i % 2 == 0 else "no"} for i in range(n)]


@pytest.fixture
def mc_task() -> Task:
    """A multiple-choice task with a train and a held-out test split."""
    source = MemorySource({"train": mc_examples(12), "test": mc_examples(4, prefix="t")}, name="tiny")
    return Task("tiny_mc", source, parse_family(MC_FAMILY, "tiny_mc.yaml"), task_type="multiple_choice",
                options_field="options", heldout_splits={"test": "tiny-test"})


@pytest.fixture
def cot_task() -> Task:
    rows = [{"question": f"What is {i} + {i}?", "answer": str(2 * i), "cot": f"{i} plus {i} is {2 * i}."}
            for i in range(8)]
    return Task("tiny_cot", MemorySource({"train": rows}), builtin_family("cot"), task_type="cot")
