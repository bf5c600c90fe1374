"""BIG-Bench Hard (Suzgun et al., 2022): 27 subtasks.

Local layout: ``bbh/tasks/NAME.json`` (``{"examples": [{"input", "target"}]}``) and the official
3-shot prompts ``bbh/cot-prompts/NAME.txt``. Hub: ``lukaemon/bbh`` (config = subtask; no prompts).
"""

from __future__ import annotations

import json

from flanlab.tasks.benchmark_data.base import BENCHMARK_DATA, BenchmarkData, DataError, Example

__all__ = ["BBHData"]


@BENCHMARK_DATA.decorator("bbh")
class BBHData(BenchmarkData):
    name = "bbh"

    def subtasks(self) -> list[str]:
        if self.data_dir is None:
            return list(self.spec.subtasks)
        return sorted(p.stem for p in self.local("bbh", "tasks").glob("*.json"))

    def load(self, subtask: str) -> list[Example]:
        if self.data_dir is None:
            rows = self.hub_rows(subtask, self.spec.hub.test_split)
            source = f"{self.spec.hub.path}/{subtask}"
        else:
            path = self.local("bbh", "tasks", f"{subtask}.json")
            source = str(path)
            data = json.loads(path.read_text(encoding="utf-8"))
            rows = data.get("examples") if isinstance(data, dict) else None
            if not isinstance(rows, list):
                raise DataError(f"{path}: expected {{'examples': [{{'input', 'target'}}, ...]}}")
        out = []
        for i, r in enumerate(rows):
            if not isinstance(r, dict) or "input" not in r or "target" not in r:
                raise DataError(f"{source}: example {i} lacks 'input' or 'target'")
            out.append(Example(subtask, i, {"input": r["input"]}, str(r["target"])))
        return out

    def prompt_file(self, subtask: str) -> tuple[str, str]:
        """The official ``cot-prompts/NAME.txt``: (its text, its path)."""
        if self.data_dir is None:
            raise DataError("bbh needs the official prompt files: pass --data-dir with bbh/cot-prompts/")
        path = self.local("bbh", "cot-prompts", f"{subtask}.txt")
        return path.read_text(encoding="utf-8"), str(path)
