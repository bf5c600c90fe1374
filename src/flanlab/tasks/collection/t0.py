"""T0-SF tasks: pre-rendered ``bigscience/P3`` subsets, or promptsource templates rendered here.

A T0-SF task is one promptsource prompt applied to one dataset (P3 names them
``{dataset}_{subset}_{prompt name}``, e.g. ``cos_e_v1.11_i_think``). Two ways to get its examples:

* P3 rows (``inputs_pretokenized`` / ``targets_pretokenized``) from the hub subset or local files
  ``DATA_DIR/p3/NAME/{train,validation,test}.{jsonl,parquet,...}``;
* a promptsource template YAML file from a local checkout of bigscience/promptsource, rendered in
  a Jinja2 sandbox (StrictUndefined) over the dataset's raw rows: the ``jinja`` text is split on
  ``|||`` into inputs and targets, ``answer_choices`` likewise into a list, as promptsource does.
"""

from __future__ import annotations

import hashlib
import random
import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import jinja2
import yaml
from jinja2.sandbox import SandboxedEnvironment

from flanlab.core.errors import UserError
from flanlab.tasks.collection.mapping import ExpandSource
from flanlab.tasks.collection.muffin import SPLITS
from flanlab.tasks.sources import FILE_FORMATS, FileSource, HFSource, Source, SourceError
from flanlab.tasks.task import Task
from flanlab.tasks.template import TemplateFamily, parse_family

__all__ = [
    "P3_HUB",
    "PromptTemplate",
    "load_promptsource_file",
    "p3_files",
    "p3_name",
    "promptsource_task",
    "t0_family",
    "t0_task",
]

P3_HUB = "bigscience/P3"
SEPARATOR = "|||"


class PromptsourceError(ValueError, UserError):
    """A promptsource file that does not parse, or a template that fails on a row."""


@cache
def t0_family() -> TemplateFamily:
    path = "flanlab/tasks/collection/data/t0/prerendered.yaml"
    text = resources.files("flanlab.tasks.collection").joinpath("data/t0/prerendered.yaml").read_text("utf-8")
    return parse_family(text, path)


def p3_name(dataset: str, subset: str | None, prompt: str) -> str:
    """The P3 subset name of a prompt: runs of characters other than letters, digits, ``_`` and
    ``.`` become one ``_`` (``race``, ``high``, ``Select the best answer (generate span)`` →
    ``race_high_Select_the_best_answer_generate_span_``)."""
    parts = [dataset] + ([subset] if subset else []) + [prompt]
    return re.sub(r"[^\w.]+", "_", "_".join(parts))


def p3_files(data_dir: str | Path | None, name: str) -> dict[str, Path]:
    """Local P3 files of subset ``name`` under ``DATA_DIR/p3/NAME/`` (empty if none)."""
    if data_dir is None:
        return {}
    folder = Path(data_dir) / "p3" / name.removeprefix("t0sf/")
    found: dict[str, Path] = {}
    for split in SPLITS:
        for ext in FILE_FORMATS:
            if (folder / f"{split}.{ext}").is_file():
                found[split] = folder / f"{split}.{ext}"
                break
    return found


def _p3_rows(where: str, row: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    inputs, targets = row["inputs_pretokenized"], row["targets_pretokenized"]
    if not isinstance(inputs, str) or not isinstance(targets, str):
        raise SourceError(f"{where}: inputs_pretokenized / targets_pretokenized must be strings")
    # P3 targets carry a leading space (T5 tokenization); the pair is otherwise used as is.
    yield where, {"inputs": inputs.strip(), "targets": targets.strip()}


def t0_task(name: str, *, data_dir: str | Path | None = None, source: Source | None = None,
            category: str = "", flan_repo: str | Path | None = None) -> Task:
    """The T0-SF task ``name`` from P3 rows: ``source`` if given, else local files, else the hub.
    With ``flan_repo`` (a google-research/FLAN checkout) the prompt is wrapped as flan/v2 wraps it
    (see :func:`_flan_t0_task`)."""
    short = name.removeprefix("t0sf/")
    where = "local"
    if source is None:
        files = p3_files(data_dir, short)
        if files:
            source = FileSource(files)
        else:
            source, where = HFSource(P3_HUB, short, {"train": "train", "validation": "validation"}), "hub"
    if flan_repo is not None:
        return _flan_t0_task(short, source, where, category, flan_repo)
    return Task(name=f"t0sf/{short}", source=ExpandSource(source, _p3_rows), family=t0_family(),
                category=category, source_kind="t0", description=f"T0-SF prompt {short} (P3)",
                tags=("flan2022", "t0sf", where))


def _flan_t0_rows(multiple_choice: bool):
    """flan/v2's ``preprocessors.t0``: the P3 input with newlines as spaces (``question``), the
    target without newlines (``answer``), and for multiple choice the answer choices the same way."""

    def rows(where: str, row: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
        inputs, targets = row["inputs_pretokenized"], row["targets_pretokenized"]
        if not isinstance(inputs, str) or not isinstance(targets, str):
            raise SourceError(f"{where}: inputs_pretokenized / targets_pretokenized must be strings")
        ex: dict[str, Any] = {"question": inputs.replace("\n", " ").strip(),
                              "answer": targets.replace("\n", "").strip()}
        if multiple_choice:
            choices = row.get("answer_choices")
            if not isinstance(choices, list) or len(choices) < 2:
                raise SourceError(f"{where}: a multiple-choice T0 task needs 'answer_choices' (a list)")
            ex["options"] = [str(c).replace("\n", "").strip() for c in choices]
            if ex["answer"] not in ex["options"]:
                raise SourceError(f"{where}: the target {ex['answer']!r} is not among the answer choices")
        yield where, ex

    return rows


def _flan_t0_task(short: str, source: Source, where: str, category: str, flan_repo: str | Path) -> Task:
    """A T0-SF task in flan/v2's T0 templates: its task type (``constants_t0``) picks the list
    (``t0_question_answer``, ``t0_multiple_choice``, ``t0_multiple_choice_separated_options``);
    only the last shows the answer choices (``{options_}``, randomized zero-shot)."""
    from flanlab.tasks.collection.flan_render import FlanSpec, flan_family
    from flanlab.tasks.collection.flan_repo import load_flan_repo, t0_task_types

    repo = load_flan_repo(flan_repo)
    kind = t0_task_types(str(repo.root)).get(short)
    if kind is None:
        raise UserError(f"t0sf/{short}: not in T0_TRAIN_TASK_METADATA of {repo.file('constants_t0.py')}")
    mc = kind != "t0_question_answer"
    shows = kind == "t0_multiple_choice_separated_options"
    fields = ("question", "answer") + (("options",) if mc else ())
    family = flan_family(FlanSpec(repo, kind, kind, options=shows), fields, f"flan/v2 {kind} templates")
    return Task(name=f"t0sf/{short}", source=ExpandSource(source, _flan_t0_rows(mc)), family=family,
                task_type="multiple_choice" if shows else "generation", category=category, source_kind="t0",
                options_field="options" if shows else None, answer_field="answer",
                description=f"T0-SF prompt {short} (P3) in flan/v2's {kind} templates",
                tags=("flan2022", "t0sf", where, "flan_repo"))


# -- promptsource ------------------------------------------------------------------------------

class _Loader(yaml.SafeLoader):
    """SafeLoader that reads promptsource's ``!Template`` / ``!TemplateMetadata`` tags as mappings
    (nothing is constructed but plain data)."""


def _mapping(loader: yaml.SafeLoader, node: yaml.Node) -> dict[str, Any]:
    return loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]


_Loader.add_constructor("!Template", _mapping)
_Loader.add_constructor("!TemplateMetadata", _mapping)


def _choice(values: Any) -> Any:
    # promptsource's `choice` filter picks at random; here the pick is a function of the values, so
    # the same row always renders the same way (rendering must be reproducible).
    values = list(values)
    if not values:
        raise PromptsourceError("choice filter on an empty list")
    seed = hashlib.sha256(repr(values).encode("utf-8")).digest()
    return random.Random(seed).choice(values)


_ENV = SandboxedEnvironment(undefined=jinja2.StrictUndefined, autoescape=False, keep_trailing_newline=True)
_ENV.filters["choice"] = _choice
_ENV.globals.update(zip=zip, enumerate=enumerate)


@cache
def _compile(text: str) -> jinja2.Template:
    return _ENV.from_string(text)


@dataclass(frozen=True)
class PromptTemplate:
    """One promptsource template."""

    id: str
    name: str
    jinja: str
    answer_choices: str | None
    dataset: str
    subset: str | None
    original_task: bool = False
    choices_in_prompt: bool = False

    @property
    def p3_name(self) -> str:
        return p3_name(self.dataset, self.subset, self.name)

    def apply(self, row: dict[str, Any]) -> tuple[str, str] | None:
        """``(inputs, targets)`` for ``row``, or None when the template yields no target (promptsource
        skips such rows)."""
        ctx = dict(row)
        try:
            if self.answer_choices:
                rendered = _compile(self.answer_choices).render(ctx)
                ctx["answer_choices"] = [c.strip() for c in rendered.split(SEPARATOR)]
            text = _compile(self.jinja).render(ctx)
        except jinja2.UndefinedError as e:
            raise PromptsourceError(f"template {self.name!r}: {e.message}") from None
        except jinja2.exceptions.SecurityError as e:
            raise PromptsourceError(f"template {self.name!r} tried an unsafe operation: {e}") from None
        except jinja2.TemplateSyntaxError as e:
            raise PromptsourceError(f"template {self.name!r}: syntax error at line {e.lineno}: {e.message}") from None
        parts = [p.strip() for p in text.split(SEPARATOR)]
        if len(parts) < 2 or not parts[0] or not parts[1]:
            return None
        return parts[0], parts[1]


def load_promptsource_file(path: str | Path) -> list[PromptTemplate]:
    """The templates of a promptsource ``templates.yaml`` (``dataset``, ``subset``, ``templates``)."""
    path = Path(path)
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_Loader)  # noqa: S506 (SafeLoader subclass)
    except FileNotFoundError:
        raise PromptsourceError(f"{path}: not found") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        raise PromptsourceError(f"{path}:{mark.line + 1 if mark else '?'}: invalid YAML: "
                                f"{getattr(e, 'problem', e)}") from None
    if not isinstance(data, dict) or not isinstance(data.get("templates"), dict) or "dataset" not in data:
        raise PromptsourceError(f"{path}: expected 'dataset', optional 'subset' and a 'templates' mapping")
    out = []
    for key, t in data["templates"].items():
        if not isinstance(t, dict) or not isinstance(t.get("jinja"), str) or not isinstance(t.get("name"), str):
            raise PromptsourceError(f"{path}: templates.{key}: expected a !Template with 'name' and 'jinja'")
        try:
            _ENV.parse(t["jinja"])
        except jinja2.TemplateSyntaxError as e:
            raise PromptsourceError(f"{path}: templates.{key} ({t['name']}): syntax error at template line "
                                    f"{e.lineno}: {e.message}") from None
        meta = t.get("metadata") or {}
        out.append(PromptTemplate(str(t.get("id", key)), t["name"], t["jinja"], t.get("answer_choices"),
                                  str(data["dataset"]), data.get("subset"), bool(meta.get("original_task")),
                                  bool(meta.get("choices_in_prompt"))))
    return out


def promptsource_task(template: PromptTemplate, rows: Source, category: str = "") -> Task:
    """A T0-SF task: ``rows`` (the dataset's raw rows) rendered through a promptsource template."""

    def apply(where: str, row: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
        try:
            pair = template.apply(row)
        except PromptsourceError as e:
            raise SourceError(f"{where}: {e}") from None
        if pair is not None:
            yield where, {"inputs": pair[0], "targets": pair[1]}

    return Task(name=f"t0sf/{template.p3_name}", source=ExpandSource(rows, apply), family=t0_family(),
                category=category, source_kind="t0",
                description=f"promptsource {template.dataset}/{template.subset or '-'}: {template.name}",
                tags=("flan2022", "t0sf", "promptsource"))
