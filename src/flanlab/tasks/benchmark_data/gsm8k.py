"""GSM8K (Cobbe et al., 2021): grade-school math, the answer after ``####``.

Local layout: ``gsm8k/test.jsonl`` (``{"question", "answer": "steps ... #### N"}``). Hub:
``openai/gsm8k`` config ``main``.
"""

from __future__ import annotations

import json

from flanlab.tasks.benchmark_data.base import BENCHMARK_DATA, BenchmarkData, DataError, Example

__all__ = ["GSM8KData"]


@BENCHMARK_DATA.decorator("gsm8k")
class GSM8KData(BenchmarkData):
    name = "gsm8k"

    def subtasks(self) -> list[str]:
        return list(self.spec.subtasks)

    def load(self, subtask: str) -> list[Example]:
        if self.data_dir is None:
            rows = self.hub_rows(self.spec.hub.config, self.spec.hub.test_split)
            source = self.spec.hub.path
        else:
            path = self.local("gsm8k", "test.jsonl")
            source = str(path)
            rows = []
            # Lines end at \n only (str.splitlines() also splits inside strings, at U+2028 and the like).
            for line, text in enumerate(path.read_text(encoding="utf-8").split("\n"), 1):
                if text.strip():
                    try:
                        rows.append(json.loads(text))
                    except json.JSONDecodeError as e:
                        raise DataError(f"{path}:{line}: invalid JSON ({e.msg})") from None
        out = []
        for i, r in enumerate(rows):
            answer = str(r.get("answer", ""))
            if "####" not in answer:
                raise DataError(f"{source}: row {i + 1}: answer does not end with '#### N'")
            target = answer.rsplit("####", 1)[1].strip().replace(",", "")
            out.append(Example(subtask, i, {"question": r["question"]}, target))
        return out
