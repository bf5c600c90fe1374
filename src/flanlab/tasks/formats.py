"""The Flan formats and the constants every stage shares (budgets, CoT shapes).

Flan renders each example in one of four formats: zero-shot or few-shot, with or without the
answer options in the input. Chain-of-thought templates add two more (``zs_cot`` and ``fs_cot``),
whose targets have the Flan CoT shape ``"{chain of thought} The answer is {answer}."``.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "ALL_FORMATS",
    "COT_FORMATS",
    "COT_TRIGGER",
    "FEWSHOT_SEPARATOR",
    "FORMATS",
    "Budget",
    "check_format",
    "cot_target",
    "is_fewshot",
    "with_options",
]

FORMATS = ("zs_opt", "zs_noopt", "fs_opt", "fs_noopt")
COT_FORMATS = ("zs_cot", "fs_cot")
ALL_FORMATS = FORMATS + COT_FORMATS

# Kojima et al. (2022): the zero-shot chain-of-thought trigger, appended to zs_cot inputs.
COT_TRIGGER = "Let's think step by step."
# Between few-shot exemplars (and before the query), as in the Flan collection's few-shot inputs.
FEWSHOT_SEPARATOR = "\n\n"


def check_format(fmt: str) -> str:
    """``fmt`` if it is a known format; otherwise a ValueError listing the known ones."""
    if fmt not in ALL_FORMATS:
        raise ValueError(f"unknown format {fmt!r}; expected one of: {', '.join(ALL_FORMATS)}")
    return fmt


def is_fewshot(fmt: str) -> bool:
    return check_format(fmt).startswith("fs_")


def with_options(fmt: str) -> bool:
    """Whether the answer options are shown in the input (``*_opt``; CoT formats show them too)."""
    return check_format(fmt).endswith("_opt") or fmt in COT_FORMATS


def cot_target(chain_of_thought: str, answer: str) -> str:
    """The Flan CoT target: ``"{chain of thought} The answer is {answer}."``."""
    cot = chain_of_thought.strip()
    answer = answer.strip().rstrip(".")
    return f"{cot} The answer is {answer}." if cot else f"The answer is {answer}."


@dataclass(frozen=True)
class Budget:
    """Token budgets (defaults of the Flan collection): the whole input, the target, and the
    few-shot exemplars inside the input."""

    inputs: int = 2048
    targets: int = 512
    fewshot_inputs: int = 1920

    def __post_init__(self) -> None:
        if min(self.inputs, self.targets, self.fewshot_inputs) < 1:
            raise ValueError(f"budgets must be positive, got {self}")
