"""MGSM (Shi et al., 2022): GSM8K translated into 10 languages, plus English.

Local layout: ``mgsm/mgsm_LANG.tsv`` (``question<TAB>answer``, no header) and
``mgsm/exemplars.json`` (``MGSM_EXEMPLARS[lang]["1".."8"]`` with ``q``, ``a``;
``EXEMPLAR_NUMBER_ANSWERS``). Hub: ``juletxara/mgsm`` (config = language; exemplars: its train split).
"""

from __future__ import annotations

import csv
import json
from typing import Any

from flanlab.tasks.benchmark_data.base import BENCHMARK_DATA, BenchmarkData, DataError, Example

__all__ = ["MGSMData"]


@BENCHMARK_DATA.decorator("mgsm")
class MGSMData(BenchmarkData):
    name = "mgsm"

    def subtasks(self) -> list[str]:
        """The languages (with a local data dir: those with an ``mgsm_LANG.tsv``)."""
        if self.data_dir is None:
            return list(self.spec.subtasks)
        langs = [lang for lang in self.spec.subtasks if (self.data_dir / "mgsm" / f"mgsm_{lang}.tsv").exists()]
        if not langs:
            self.local("mgsm", "mgsm_en.tsv")  # raises, naming the folder expected
        return langs

    def load(self, subtask: str) -> list[Example]:
        if self.data_dir is None:
            rows = [{"question": r["question"], "answer": str(r["answer_number"])}
                    for r in self.hub_rows(subtask, self.spec.hub.test_split)]
        else:
            path = self.local("mgsm", f"mgsm_{subtask}.tsv")
            rows = []
            with open(path, encoding="utf-8", newline="") as f:
                for line, rec in enumerate(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE), 1):
                    if len(rec) != 2:
                        raise DataError(f"{path}:{line}: expected question<TAB>answer, got {len(rec)} fields")
                    rows.append({"question": rec[0], "answer": rec[1]})
        return [Example(subtask, i, {"question": r["question"]}, r["answer"].strip()) for i, r in enumerate(rows)]

    def _exemplar_file(self) -> dict[str, Any]:
        def read() -> dict[str, Any]:
            path = self.local("mgsm", "exemplars.json")
            data = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(data, dict) or "MGSM_EXEMPLARS" not in data or "EXEMPLAR_NUMBER_ANSWERS" not in data:
                raise DataError(f"{path}: expected keys MGSM_EXEMPLARS and EXEMPLAR_NUMBER_ANSWERS")
            return data
        return self.memo("exemplar_file", read)

    def exemplars(self, lang: str) -> list[dict[str, str]]:
        """The 8 CoT exemplars of ``lang``: ``q`` and ``a`` (with their language's prefixes) and ``answer``."""
        def read() -> list[dict[str, str]]:
            if self.data_dir is None:
                rows = self.hub_rows(lang, self.spec.hub.dev_split or "train")
                return [{"q": r["question"], "a": r["answer"], "answer": str(r["answer_number"])} for r in rows]
            data = self._exemplar_file()
            by_lang = data["MGSM_EXEMPLARS"].get(lang)
            if by_lang is None:
                raise DataError(f"mgsm/exemplars.json has no exemplars for language {lang!r}")
            numbers = data["EXEMPLAR_NUMBER_ANSWERS"]
            return [{"q": by_lang[str(i)]["q"], "a": by_lang[str(i)]["a"], "answer": str(numbers[i - 1])}
                    for i in range(1, len(numbers) + 1)]
        return self.memo(f"exemplars:{lang}", read)
