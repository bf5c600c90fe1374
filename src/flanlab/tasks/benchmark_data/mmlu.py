"""MMLU (Hendrycks et al., 2021): 57 subjects, 4 options, an answer letter.

Local layout: ``mmlu/{dev,test}/SUBJECT_{dev,test}.csv``, headerless CSV
``question,A,B,C,D,answer-letter``; ``mmlu/flan_cot_prompts.json`` maps a subject to the Flan
chain-of-thought exemplars. Hub: ``cais/mmlu`` (config = subject; the answer is an index).
"""

from __future__ import annotations

import csv
import json
from importlib import resources
from typing import Any

import yaml

from flanlab.tasks.benchmark_data.base import BENCHMARK_DATA, BenchmarkData, DataError, Example

__all__ = ["LETTERS", "MMLUData", "hub_row"]

LETTERS = ("A", "B", "C", "D")


def hub_row(row: dict[str, Any]) -> dict[str, Any]:
    """cais/mmlu row (question, choices, answer index) → the local row layout."""
    answer = row["answer"]
    letter = "ABCD"[answer] if isinstance(answer, int) else str(answer)
    return {"question": row["question"], "choices": list(row["choices"]), "answer": letter}


@BENCHMARK_DATA.decorator("mmlu")
class MMLUData(BenchmarkData):
    name = "mmlu"

    def categories(self) -> dict[str, str]:
        """Subject → category (STEM, humanities, social sciences, other)."""
        def read() -> dict[str, str]:
            text = resources.files("flanlab.tasks").joinpath("data/mmlu_categories.yaml").read_text("utf-8")
            return {str(k): str(v) for k, v in yaml.safe_load(text).items()}
        return self.memo("categories", read)

    def subtasks(self) -> list[str]:
        if self.data_dir is None:
            return sorted(self.categories())
        return sorted(p.name[: -len("_test.csv")] for p in self.local("mmlu", "test").glob("*_test.csv"))

    def splits(self) -> list[str]:
        return ["dev", "test"]

    def rows(self, subject: str, split: str) -> list[dict[str, Any]]:
        """``{question, choices, answer: letter}`` rows of ``split`` (``dev`` or ``test``)."""
        return self.memo(f"{split}:{subject}", lambda: self._read(subject, split))

    def _read(self, subject: str, split: str) -> list[dict[str, Any]]:
        if self.data_dir is None:
            hub_split = self.spec.hub.test_split if split == "test" else (self.spec.hub.dev_split or "dev")
            return [hub_row(r) for r in self.hub_rows(subject, hub_split)]
        path = self.local("mmlu", split, f"{subject}_{split}.csv")
        rows = []
        with open(path, encoding="utf-8", newline="") as f:
            for line, rec in enumerate(csv.reader(f), 1):
                if len(rec) != 6 or rec[5].strip() not in LETTERS:
                    raise DataError(f"{path}:{line}: expected 6 columns question,A,B,C,D,answer-letter; got {rec!r:.120}")
                rows.append({"question": rec[0], "choices": rec[1:5], "answer": rec[5].strip()})
        return rows

    def _examples(self, subject: str, split: str) -> list[Example]:
        return [Example(subject, i, {"question": r["question"], "choices": r["choices"]}, r["answer"])
                for i, r in enumerate(self.rows(subject, split))]

    def load(self, subtask: str) -> list[Example]:
        return self._examples(subtask, "test")

    def split_examples(self, subtask: str, split: str) -> list[Example]:
        return self._examples(subtask, "dev") if split == "dev" else super().split_examples(subtask, split)

    def cot_prompts(self) -> dict[str, str]:
        """The Flan MMLU chain-of-thought exemplars, subject → prompt text (local only)."""
        def read() -> dict[str, str]:
            if self.data_dir is None:
                raise DataError("mmlu cot needs the Flan MMLU CoT exemplars: pass --data-dir with "
                                "mmlu/flan_cot_prompts.json")
            path = self.local("mmlu", "flan_cot_prompts.json")
            data = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(data, dict):
                raise DataError(f"{path}: expected a mapping subject -> prompt text")
            return data
        return self.memo("cot_prompts", read)

    def record(self, example: Example) -> dict[str, Any]:
        """``{question, options, answer: the option's text, letter}`` (the ``qa_mc`` family's fields)."""
        options = [str(c) for c in example.fields["choices"]]
        return {"question": example.fields["question"], "options": options,
                "answer": options[LETTERS.index(example.target)], "letter": example.target}

    def text(self, example: Example) -> str:
        return " ".join([example.fields["question"], *example.fields["choices"]])
