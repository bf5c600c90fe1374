"""Named preprocessors: pure example → example functions a task applies in order.

They are registered by name so that catalog files (data) can refer to them.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from flanlab.core.registry import Registry

__all__ = ["PREPROCESSORS", "Example", "Preprocessor", "gsm8k_cot", "strip_fields"]

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
