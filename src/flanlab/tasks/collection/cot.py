"""The Flan CoT tasks rendered with flan/v2's CoT templates (a FLAN checkout given).

flan/v2 has two CoT submixtures over the same nine TSV files: CoT (``PATTERNS["cot_gsm8k"]`` ...,
each template phrasing the answer its own way: "So the answer is ...", "The final answer: ..."),
and CoT-II, the input inversions (``PATTERNS["cot_input_inversion_gsm8k"]`` ...), mixed at 0.3 of
CoT's rate. Both read ``{question}``, ``{answer}`` and ``{chain_of_thought}``; neither appends
"Let's think step by step.". With a checkout, the catalog's ``cot_NAME`` tasks get flan/v2's CoT
templates and ``cot_NAME:inverted`` tasks (source ``flan_cot_ii``, submixture ``cot_ii``) are added.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from flanlab.tasks.collection.flan_render import FlanSpec, flan_family
from flanlab.tasks.collection.flan_repo import load_flan_repo
from flanlab.tasks.preprocessors import rename_fields
from flanlab.tasks.task import Task

__all__ = ["COT_KEYS", "flan_cot_tasks"]

# Our CoT task -> flan/v2's task name (task_configs.py: f"{cot_type}_{dataset}") and its inversion's.
COT_KEYS = {
    "cot_gsm8k": ("cot_gsm8k", "cot_input_inversion_gsm8k"),
    "cot_strategyqa": ("cot_strategyqa", "cot_input_inversion_strategyqa"),
    "cot_creak": ("cot_creak", "cot_input_inversion_creak"),
    "cot_qasc": ("cot_qasc", "cot_input_inversion_qasc"),
    "cot_esnli": ("cot_esnli", "cot_input_inversion_esnli"),
    "cot_ecqa": ("cot_ecqa", "cot_input_inversion_ecqa"),
    "cot_sensemaking": ("cot_sensemaking", "cot_input_inversion_sensemaking"),
    "cot_aqua": ("stream_aqua", "stream_input_inversion_aqua"),
    "cot_qed": ("stream_qed", "stream_input_inversion_qed"),
}
_FIELDS = ("question", "answer", "chain_of_thought")


def flan_cot_tasks(tasks: list[Task], flan_repo: str | Path) -> list[Task]:
    """``tasks`` with the CoT ones switched to flan/v2's templates, plus their CoT-II inversions."""
    repo = load_flan_repo(flan_repo)
    out: list[Task] = []
    for task in tasks:
        if task.name not in COT_KEYS:
            out.append(task)
            continue
        key, inv_key = COT_KEYS[task.name]
        # Our rows name the rationale "cot"; flan/v2's templates read {chain_of_thought}.
        pre = (*task.preprocessors, rename_fields({"cot": "chain_of_thought"}))
        fam = flan_family(FlanSpec(repo, key, key, options=False, cot=True), _FIELDS)
        out.append(dataclasses.replace(task, family=fam, preprocessors=pre, _pool={},
                                       tags=(*task.tags, "flan_repo")))
        inv = flan_family(FlanSpec(repo, inv_key, inv_key, options=False, cot=True), _FIELDS)
        out.append(dataclasses.replace(
            task, name=f"{task.name}:inverted", family=inv, preprocessors=pre, _pool={}, source_kind="flan_cot_ii",
            category=f"Inverted {task.category}", description=f"{task.description} (flan/v2 CoT-II inversions)",
            tags=(*task.tags, "flan_repo", "inverted")))
    return out
