"""Dialog tasks: next-turn prediction from conversations in the shapes of the Flan dialog data.

Shapes (rows of JSONL/JSON/Parquet files, or of a hub dataset):

* ``wiki_dialog``: ``{"pid", "title", "passage", "utterances": [str], "author_num": [int]}``;
  one example per turn after the first (the context is every earlier turn);
* ``qrecc``: ``{"Context": [str], "Question", "Answer", ...}``; the context plus the question
  predict the answer (rows without an answer are skipped);
* ``taskmaster``: ``{"conversation_id", "utterances": [{"speaker", "text"}]}``; one example per
  ASSISTANT turn.

Point a task at your own data with :func:`dialog_task` (any file in one of these shapes).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from flanlab.core.errors import UserError
from flanlab.tasks.collection.mapping import ExpandSource
from flanlab.tasks.collection.muffin import local_files
from flanlab.tasks.sources import FileSource, HFSource, Source, SourceError
from flanlab.tasks.task import Task
from flanlab.tasks.template import TemplateFamily, parse_family

__all__ = ["DIALOG_SHAPES", "HUB", "dialog_family", "dialog_task", "dialog_turns"]

Turn = tuple[str, str]  # (speaker, text)
# Where the manifest's dialog datasets live on the hub; wiki_dialog and Taskmaster are published
# outside it (TFDS, GitHub), so they need local files.
HUB: dict[str, tuple[str, str | None, dict[str, str]]] = {
    "qrecc": ("svakulenk0/qrecc", None, {"train": "train", "test": "test"}),
}
_DEFAULT_SHAPE = {"qrecc": "qrecc", "task_master": "taskmaster", "wiki_dialog": "wiki_dialog"}


def _render(turns: Sequence[Turn]) -> str:
    return "\n".join(f"{s}: {t}" for s, t in turns)


def _example(title: str, background: str, history: Sequence[Turn], nxt: Turn) -> dict[str, Any]:
    # `turns` and `answer` are the fields of flan/v2's dialog preprocessors (for --flan-repo).
    return {"title": title, "background": background, "dialog": _render(history), "next_turn": nxt[1],
            "speaker": nxt[0], "turns": [t for _, t in history], "answer": nxt[1]}


def _wiki_dialog(where: str, row: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    utterances = row["utterances"]
    authors = row.get("author_num") or [i % 2 for i in range(len(utterances))]
    if not isinstance(utterances, list) or len(authors) != len(utterances):
        raise SourceError(f"{where}: 'utterances' and 'author_num' must be lists of the same length")
    turns = [("A" if int(a) == 0 else "B", str(u).strip()) for a, u in zip(authors, utterances, strict=True)]
    for i in range(1, len(turns)):
        yield f"{where} turn {i}", _example(str(row.get("title", "")), str(row.get("passage", "")), turns[:i], turns[i])


def _qrecc(where: str, row: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    context = row["Context"]
    if not isinstance(context, list):
        raise SourceError(f"{where}: 'Context' must be a list of the earlier turns")
    answer = str(row["Answer"] or "").strip()
    if not answer:
        return
    turns = [("A" if i % 2 == 0 else "B", str(t)) for i, t in enumerate(context)]
    turns.append(("A" if len(context) % 2 == 0 else "B", str(row["Question"])))
    nxt = ("B" if turns[-1][0] == "A" else "A", answer)
    yield where, _example("", "", turns, nxt)


def _taskmaster(where: str, row: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    utterances = row["utterances"]
    if not isinstance(utterances, list):
        raise SourceError(f"{where}: 'utterances' must be a list of {{speaker, text}}")
    turns = [(str(u["speaker"]).upper(), str(u["text"]).strip()) for u in utterances]
    for i in range(1, len(turns)):
        if turns[i][0] == "ASSISTANT":
            yield f"{where} turn {i}", _example(str(row.get("instruction_id", "")), "", turns[:i], turns[i])


DIALOG_SHAPES = {"wiki_dialog": _wiki_dialog, "qrecc": _qrecc, "taskmaster": _taskmaster}


def dialog_turns(shape: str, row: dict[str, Any], where: str = "<row>") -> list[dict[str, Any]]:
    """The examples one row of ``shape`` gives."""
    if shape not in DIALOG_SHAPES:
        raise UserError(f"unknown dialog shape {shape!r}; expected one of {', '.join(DIALOG_SHAPES)}")
    return [ex for _, ex in DIALOG_SHAPES[shape](where, row)]


@cache
def dialog_family(kind: str = "standard") -> TemplateFamily:
    text = resources.files("flanlab.tasks.collection").joinpath("data/dialog/dialog.yaml").read_text("utf-8")
    fam = parse_family(text, "flanlab/tasks/collection/data/dialog/dialog.yaml")
    keep = tuple(t for t in fam.templates if t.kind == kind)
    return TemplateFamily(fam.name + (":inverted" if kind == "inversion" else ""), keep, fam.fields, fam.path,
                          fam.description)


def dialog_task(name: str, *, shape: str | None = None, files: dict[str, str | Path] | None = None,
                source: Source | None = None, data_dir: str | Path | None = None, inverted: bool = False,
                category: str = "", flan_repo: str | Path | None = None) -> Task:
    """A dialog task: ``files`` / ``source`` (rows in ``shape``), else ``DATA_DIR/muffin/NAME/`` files,
    else the hub where the dataset is published there. With ``flan_repo`` the templates are flan/v2's
    (``predict_next_turn_dialog`` and its input inversions, the Dialog-II submixture)."""
    short = name.removeprefix("muffin/").removesuffix(":inverted")
    shape = shape or _DEFAULT_SHAPE.get(short)
    if shape not in DIALOG_SHAPES:
        raise UserError(f"dialog task {name!r}: give shape= one of {', '.join(DIALOG_SHAPES)}")
    where = "local"
    if source is None:
        found = {k: Path(v) for k, v in files.items()} if files else local_files(data_dir, short)
        if found:
            source = FileSource(found)
        elif short in HUB:
            path, config, splits = HUB[short]
            source, where = HFSource(path, config, splits), "hub"
        else:
            raise UserError(f"dialog task {name!r}: no local files under DATA_DIR/muffin/{short}/ and no hub copy; "
                            f"pass files= in the {shape} shape")
    if flan_repo is not None:
        from flanlab.tasks.collection.flan_render import FlanSpec, flan_family
        from flanlab.tasks.collection.flan_repo import load_flan_repo

        key = short + ("_input_inversion" if inverted else "")
        spec = FlanSpec(load_flan_repo(flan_repo), key, key, options=False, dialog=True)
        return Task(name=f"muffin/{short}" + (":inverted" if inverted else ""),
                    source=ExpandSource(source, DIALOG_SHAPES[shape]),
                    family=flan_family(spec, ("turns", "answer"), f"flan/v2 templates {key}"),
                    category=("Dialog Context Generation" if inverted else category),
                    source_kind="dialog_ii" if inverted else "dialog",
                    description=f"dialog {short} ({shape} shape), flan/v2 templates",
                    tags=("flan2022", "dialog", where, "flan_repo") + (("inverted",) if inverted else ()))
    return Task(name=f"muffin/{short}" + (":inverted" if inverted else ""),
                source=ExpandSource(source, DIALOG_SHAPES[shape]),
                family=dialog_family("inversion" if inverted else "standard"),
                category=("Dialog Context Generation" if inverted else category),
                source_kind="dialog", description=f"dialog {short} ({shape} shape)",
                tags=("flan2022", "dialog", where) + (("inverted",) if inverted else ()))
