"""TyDiQA-GoldP (Clark et al., 2020): extractive QA per language, SQuAD-style JSON.

Local layout: ``tydiqa/tydiqa-goldp-v1.1-dev.json`` (scored) and, optionally,
``tydiqa/tydiqa-goldp-v1.1-train.json`` (exemplars); a question's language is the prefix of its id
(``finnish-123``). Hub: ``google-research-datasets/tydiqa`` config ``secondary_task``. The one-shot
exemplar of a language is its first train example when present, else its first dev example, which
is then left out of the scored examples.
"""

from __future__ import annotations

import json
from typing import Any

from flanlab.tasks.benchmark_data.base import BENCHMARK_DATA, BenchmarkData, DataError, Example

__all__ = ["FILES", "TyDiQAData", "hub_row", "squad_rows"]

FILES = {"dev": "tydiqa-goldp-v1.1-dev.json", "train": "tydiqa-goldp-v1.1-train.json"}


def squad_rows(data: Any, source: str) -> list[dict[str, Any]]:
    """Flatten the SQuAD / TyDiQA-GoldP JSON layout to rows (id, context, question, answers)."""
    if not isinstance(data, dict) or not isinstance(data.get("data"), list):
        raise DataError(f"{source}: expected the SQuAD layout {{'data': [{{'paragraphs': [...]}}]}}")
    rows = []
    for a, article in enumerate(data["data"]):
        for p, para in enumerate(article.get("paragraphs", [])):
            for q, qa in enumerate(para.get("qas", [])):
                try:
                    rows.append({"id": qa["id"], "context": para["context"], "question": qa["question"],
                                 "answers": [x["text"] for x in qa["answers"]]})
                except (KeyError, TypeError):
                    raise DataError(f"{source}: data[{a}].paragraphs[{p}].qas[{q}]: expected id, question, "
                                    "answers[].text and the paragraph's context") from None
    return rows


def hub_row(row: dict[str, Any]) -> dict[str, Any]:
    """google-research-datasets/tydiqa secondary_task row → the local row layout."""
    return {"id": row["id"], "context": row["context"], "question": row["question"],
            "answers": list(row["answers"]["text"])}


def _lang(row_id: str) -> str:
    return row_id.split("-", 1)[0]


@BENCHMARK_DATA.decorator("tydiqa")
class TyDiQAData(BenchmarkData):
    name = "tydiqa"

    def subtasks(self) -> list[str]:
        return list(self.spec.subtasks)

    def present_subtasks(self) -> list[str]:
        """The languages the dev rows hold."""
        present = {_lang(r["id"]) for r in self.split_rows("dev") or []}
        return [s for s in self.spec.subtasks if s in present]

    def default_subtasks(self) -> list[str]:
        """The paper's 8 languages; with a local file, those of them it has (a small file may hold few)."""
        if self.data_dir is None:
            return list(self.spec.default_subtasks)
        present = set(self.present_subtasks())
        chosen = [s for s in self.spec.default_subtasks if s in present]
        if not chosen:
            raise DataError(f"tydiqa: the dev file holds none of {', '.join(self.spec.default_subtasks)}")
        return chosen

    def split_rows(self, split: str) -> list[dict[str, Any]] | None:
        """The rows of ``dev`` (scored) or ``train`` (exemplars; None when there is no train file)."""
        return self.memo(f"split:{split}", lambda: self._read(split))

    def _read(self, split: str) -> list[dict[str, Any]] | None:
        if self.data_dir is None:
            hub_split = self.spec.hub.test_split if split == "dev" else (self.spec.hub.dev_split or "train")
            return [hub_row(r) for r in self.hub_rows(self.spec.hub.config, hub_split)]
        path = self.data_dir / "tydiqa" / FILES[split]
        if not path.exists():
            if split == "dev":
                self.local("tydiqa", FILES[split])  # raises, naming the file
            return None
        return squad_rows(json.loads(path.read_text(encoding="utf-8")), str(path))

    def _dev_lang(self, lang: str) -> list[dict[str, Any]]:
        return [r for r in self.split_rows("dev") or [] if _lang(r["id"]) == lang]

    def exemplar(self, lang: str) -> tuple[dict[str, Any], int | None]:
        """The one-shot exemplar of ``lang`` and, when taken from dev, its index (left out of scoring)."""
        for r in self.split_rows("train") or []:
            if _lang(r["id"]) == lang:
                return r, None
        dev = self._dev_lang(lang)
        if not dev:
            raise DataError(f"tydiqa: no {lang} examples found")
        return dev[0], 0

    def all_examples(self, subtask: str) -> list[Example]:
        return [
            Example(subtask, i, {"context": r["context"], "question": r["question"]},
                    r["answers"][0] if r["answers"] else "", tuple(r["answers"]))
            for i, r in enumerate(self._dev_lang(subtask))
        ]

    def load(self, subtask: str) -> list[Example]:
        _, skip = self.exemplar(subtask)
        return [e for e in self.all_examples(subtask) if e.index != skip]
