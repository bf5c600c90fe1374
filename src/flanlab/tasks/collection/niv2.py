"""NIv2 tasks from a local checkout of allenai/natural-instructions.

A task file ``tasks/taskNNN_name.json`` holds ``Definition`` (a list of strings), ``Positive
Examples`` and ``Negative Examples`` (``input``, ``output``, ``explanation``) and ``Instances``
(``id``, ``input``, ``output``: a list of acceptable outputs). Each instance becomes an example
with the task's definition and positive examples; the Flan formats (definition only; definition +
2 positive examples, with or without explanations) are the templates of ``data/niv2/niv2.yaml``.
The checkout is found at ``--niv2-repo`` or ``DATA_DIR/natural-instructions``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from flanlab.core.errors import UserError
from flanlab.tasks.sources import SourceError, read_text_utf8
from flanlab.tasks.task import Task
from flanlab.tasks.template import TemplateFamily, parse_family

__all__ = ["NIV2_MODES", "NIv2Source", "find_niv2_repo", "niv2_family", "niv2_task", "read_niv2_task"]

# Flan's NIv2 layouts, by template id.
NIV2_MODES = {"definition": "niv2:definition", "definition_pos2": "niv2:definition_pos2",
              "definition_pos2_expl": "niv2:definition_pos2_expl"}


@cache
def _family() -> TemplateFamily:
    text = resources.files("flanlab.tasks.collection").joinpath("data/niv2/niv2.yaml").read_text("utf-8")
    return parse_family(text, "flanlab/tasks/collection/data/niv2/niv2.yaml")


def niv2_family(modes: Sequence[str] | None = None) -> TemplateFamily:
    """The NIv2 family, restricted to ``modes`` (keys of :data:`NIV2_MODES`) when given."""
    fam = _family()
    if modes is None:
        return fam
    unknown = [m for m in modes if m not in NIV2_MODES]
    if unknown:
        raise UserError(f"unknown NIv2 mode {unknown[0]!r}; expected one of {', '.join(NIV2_MODES)}")
    ids = {NIV2_MODES[m] for m in modes}
    return TemplateFamily(fam.name, tuple(t for t in fam.templates if t.id in ids), fam.fields, fam.path,
                          fam.description)


def _examples(items: Any, key: str, path: Path, need_explanation: bool) -> list[dict[str, str]]:
    if not isinstance(items, list):
        raise SourceError(f"{path}: '{key}': expected a list of examples")
    out = []
    for i, ex in enumerate(items):
        if not isinstance(ex, dict) or not isinstance(ex.get("input"), str) or not isinstance(ex.get("output"), str):
            raise SourceError(f"{path}: '{key}'[{i}]: expected an object with string 'input' and 'output'")
        expl = ex.get("explanation", "")
        if need_explanation and not isinstance(expl, str):
            raise SourceError(f"{path}: '{key}'[{i}].explanation: expected a string")
        out.append({"input": ex["input"], "output": ex["output"], "explanation": str(expl or "")})
    return out


def read_niv2_task(path: str | Path) -> dict[str, Any]:
    """A task file, validated: errors name the file and the key (and index)."""
    path = Path(path)
    try:
        data = json.loads(read_text_utf8(path))
    except json.JSONDecodeError as e:
        raise SourceError(f"{path}:{e.lineno}: malformed JSON ({e.msg})") from None
    if not isinstance(data, dict):
        raise SourceError(f"{path}: expected a JSON object (a natural-instructions task)")
    definition = data.get("Definition")
    if isinstance(definition, str):
        definition = [definition]
    if not isinstance(definition, list) or not definition or not all(isinstance(d, str) for d in definition):
        raise SourceError(f"{path}: 'Definition': expected a non-empty list of strings")
    positives = _examples(data.get("Positive Examples", []), "Positive Examples", path, True)
    negatives = _examples(data.get("Negative Examples", []), "Negative Examples", path, False)
    instances = data.get("Instances")
    if not isinstance(instances, list) or not instances:
        raise SourceError(f"{path}: 'Instances': expected a non-empty list")
    for i, inst in enumerate(instances):
        outputs = inst.get("output") if isinstance(inst, dict) else None
        if isinstance(outputs, str):
            inst["output"] = outputs = [outputs]
        if (not isinstance(inst, dict) or not isinstance(inst.get("input"), str) or not isinstance(outputs, list)
                or not outputs or not all(isinstance(o, str) for o in outputs)):
            raise SourceError(f"{path}: 'Instances'[{i}]: expected 'input' (string) and 'output' "
                              "(a non-empty list of strings)")
    return {"definition": " ".join(d.strip() for d in definition), "positives": positives,
            "negatives": negatives, "instances": instances, "source": data.get("Source", []),
            "categories": data.get("Categories", [])}


@dataclass
class NIv2Source:
    """The instances of one task file, as examples (split ``train``: Flan trains on all instances)."""

    path: Path
    name: str = ""

    def __post_init__(self) -> None:
        self.path = Path(self.path)
        self.name = self.name or str(self.path)

    def splits(self) -> list[str]:
        return ["train"]

    def records(self, split: str) -> Iterator[tuple[str, dict[str, Any]]]:
        if split != "train":
            raise SourceError(f"{self.path}: no split {split!r}; splits: train")
        task = read_niv2_task(self.path)
        for i, inst in enumerate(task["instances"]):
            yield f"{self.path}: Instances[{i}]", {
                "id": str(inst.get("id", i)), "definition": task["definition"], "input": inst["input"],
                # The first output is the target; the others are accepted answers.
                "output": inst["output"][0], "outputs": list(inst["output"]), "positives": task["positives"],
            }


@cache
def niv2_exemplars(flan_root: str | Path) -> dict[str, list[tuple[str, str]]]:
    """flan/v2's NIv2 x-shot exemplars (``flan/v2/niv2_few_shot_data/niv2_exemplars.jsonl-*``, rows
    ``{"task": ..., "sample": [{"input", "output"}, ...]}``) by task; empty when the checkout lacks them
    (the public google-research/FLAN repository does not ship them)."""
    folder = Path(flan_root) / "flan" / "v2" / "niv2_few_shot_data"
    out: dict[str, list[tuple[str, str]]] = {}
    for file in sorted(folder.glob("niv2_exemplars.jsonl-*")) if folder.is_dir() else []:
        for n, line in enumerate(read_text_utf8(file).splitlines(), 1):
            try:
                row = json.loads(line)
                out[str(row["task"]).split(".")[0]] = [(str(x["input"]), str(x["output"])) for x in row["sample"]]
            except (json.JSONDecodeError, KeyError, TypeError):
                raise SourceError(f"{file}:{n}: expected {{task, sample: [{{input, output}}]}}") from None
    return out


@cache
def _say_exemplar_source(flan_root: str, found: bool) -> None:
    from flanlab.core.log import get_logger

    if not found:  # once per process: the catalog builds every NIv2 task
        get_logger("tasks.niv2").warning(
            "NIv2 x-shot exemplars: %s/flan/v2/niv2_few_shot_data is not there (the public FLAN repository "
            "does not ship it); using each task's own positive examples instead", flan_root)


def find_niv2_repo(niv2_repo: str | Path | None = None, data_dir: str | Path | None = None) -> Path | None:
    """The ``tasks/`` folder of a natural-instructions checkout: ``niv2_repo``, else
    ``DATA_DIR/natural-instructions``, else ``DATA_DIR/niv2`` (None when none exists)."""
    for base in (niv2_repo, Path(data_dir) / "natural-instructions" if data_dir else None,
                 Path(data_dir) / "niv2" if data_dir else None):
        if base is None:
            continue
        base = Path(base)
        tasks = base if base.name == "tasks" else base / "tasks"
        if tasks.is_dir():
            return tasks
        if niv2_repo is not None and base == Path(niv2_repo):
            raise UserError(f"{base}: no tasks/ folder; --niv2-repo must point at a checkout of "
                            "allenai/natural-instructions")
    return None


def niv2_task(path: str | Path, *, modes: Sequence[str] | None = None, category: str = "",
              flan_repo: str | Path | None = None) -> Task:
    """The NIv2 task of one task file, in the Flan NIv2 layouts (``modes``; default: all three), or
    with ``flan_repo`` in flan/v2's NIv2 templates (:class:`~.flan_render.NIv2FlanSpec`)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: NIv2 task file not found")
    if flan_repo is not None:
        from flanlab.tasks.collection.flan_render import NIv2FlanSpec, flan_family
        from flanlab.tasks.collection.flan_repo import load_flan_repo

        repo = load_flan_repo(flan_repo)
        exemplars = niv2_exemplars(repo.root).get(path.stem)
        _say_exemplar_source(str(repo.root), exemplars is not None)
        spec = NIv2FlanSpec(repo, "natinst_v2", "tfds_natural_instructions", options=False,
                            exemplars=tuple(exemplars) if exemplars else None)
        source = "flan/v2 niv2_few_shot_data" if exemplars else "the task's positive examples"
        return Task(name=f"niv2/{path.stem}", source=NIv2Source(path), preprocessors=(NIv2FlanSpec.fields,),
                    family=flan_family(spec, ("definition", "input", "output"), "flan/v2 NIv2 templates"),
                    category=category, source_kind="niv2",
                    description=f"natural-instructions {path.stem}; flan/v2 templates; x-shot exemplars: {source}",
                    tags=("flan2022", "niv2", "local", "flan_repo"))
    return Task(name=f"niv2/{path.stem}", source=NIv2Source(path), family=niv2_family(modes),
                category=category, source_kind="niv2", description=f"natural-instructions {path.stem}",
                tags=("flan2022", "niv2", "local"))
