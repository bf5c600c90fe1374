"""Named preprocessors: pure example → example functions a task applies in order.

They are registered by name so that catalog files (data) can refer to them.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from flanlab.core.registry import Registry

__all__ = ["PREPROCESSORS", "Example", "Preprocessor", "gsm8k_cot", "mmlu_choices", "rename_fields", "strip_fields"]

Example = dict[str, Any]
Preprocessor = Callable[[Example], Example]
PREPROCESSORS: Registry[Preprocessor] = Registry("preprocessor")

_CALC = re.compile(r"<<[^<>]*>>")


@PREPROCESSORS.decorator("gsm8k_cot")
def gsm8k_cot(ex: Example) -> Example:
    """GSM8K ``{question, answer: "steps ... #### N"}`` → ``{question, cot, answer: "N"}``; the
    calculator annotations ``<<48/2=24>>`` are dropped from the chain of thought."""
    text = str(ex["answer"])
    steps, sep, final = text.rpartition("####")
    if not sep:
        steps, final = "", text
    cot = " ".join(line.strip() for line in _CALC.sub("", steps).splitlines() if line.strip())
    return {**ex, "cot": cot, "answer": final.strip().replace(",", "")}


@PREPROCESSORS.decorator("strip_fields")
def strip_fields(ex: Example) -> Example:
    """Strip surrounding whitespace from every string field."""
    return {k: v.strip() if isinstance(v, str) else v for k, v in ex.items()}


@PREPROCESSORS.decorator("mmlu_choices")
def mmlu_choices(ex: Example) -> Example:
    """A Hendrycks MMLU row ``{question, A, B, C, D, target: letter}`` → ``{question, options,
    answer: the option's text}``."""
    letters = ["A", "B", "C", "D"]
    options = [str(ex[k]) for k in letters]
    letter = str(ex["target"]).strip().upper()
    if letter not in letters:
        raise ValueError(f"answer letter {ex['target']!r} is not one of A, B, C, D")
    return {"question": ex["question"], "options": options, "answer": options[letters.index(letter)],
            "letter": letter}


def rename_fields(mapping: dict[str, str]) -> Preprocessor:
    """A preprocessor renaming fields (``{"input": "question"}``); other fields are kept."""

    def rename(ex: Example) -> Example:
        return {mapping.get(k, k): v for k, v in ex.items()}

    rename.__name__ = f"rename_fields({mapping})"
    return rename
