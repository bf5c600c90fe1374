"""``flanlab tasks check-flan --flan-repo R``: every Flan 2022 task against a FLAN checkout.

For each of the manifest's tasks: the flan/v2 template list it maps to (``flan/v2/utils.py``'s
``t_name_to_flan_pattern_name``; T0-SF through ``constants_t0.T0_TRAIN_TASK_METADATA``), how many
templates load per format, whether its data is local, on the hub or missing, which renderer it uses
with the checkout (``flan/v2``: flan/v2's templates and assembly; ``flanlab``: ours) and how it
differs from flan/v2. A template list that cannot be read is a load failure (non-zero exit).
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Any

from flanlab.core.errors import UserError
from flanlab.tasks.collection.collection import availability
from flanlab.tasks.collection.cot import COT_KEYS
from flanlab.tasks.collection.flan_render import FlanSpec, NIv2FlanSpec
from flanlab.tasks.collection.flan_repo import FlanRepo, load_flan_repo, t0_task_types
from flanlab.tasks.collection.muffin import flan_fields, has_flan_inversions, muffin_datasets
from flanlab.tasks.collection.niv2 import niv2_exemplars

__all__ = ["check_flan", "summarize"]

_DIALOG = ("qrecc", "task_master", "wiki_dialog")
# flan/v2 utils.t_name_to_flan_pattern_name, for the Muffin names it rewrites.
_PATTERN_NAMES = {"arc_challenge": "arc", "arc_easy": "arc", "anli_r1": "anli", "anli_r2": "anli",
                  "anli_r3": "anli", "mnli_matched": "mnli", "mnli_mismatched": "mnli",
                  "trivia_qa_wiki_missing": "trivia_qa"}


def _pattern_key(short: str) -> str:
    if "para_crawl" in short:
        return "para_crawl"
    if "wmt16_translate" in short:
        return "wmt16_translate"
    if short.startswith(("dmcc_", "dr_repair")):  # the manifest drops flan/v2's "program_synthesis_"
        return "program_synthesis_" + short
    return _PATTERN_NAMES.get(short, short)


def _counts(spec: FlanSpec) -> dict[str, int]:
    return dict(Counter(f for t in spec.templates() for f in t.formats))


def _row(task: Any, key: str, renderer: str, data: str, detail: str) -> dict[str, Any]:
    return {"name": task.name, "collection": task.collection, "submixture": task.submixture, "flan_key": key,
            "renderer": renderer, "data": data, "data_detail": detail, "formats": {}, "inverted": None,
            "status": "ok", "differences": []}


def check_flan(flan_repo: str | Path, data_dir: str | Path | None = None,
               niv2_repo: str | Path | None = None) -> list[dict[str, Any]]:
    """One row per Flan 2022 task (see the module docstring); nothing is downloaded."""
    repo = load_flan_repo(flan_repo)
    t0_types = t0_task_types(str(repo.root))
    fields = flan_fields()
    rows = []
    for av in availability(data_dir, niv2_repo=niv2_repo):
        t = av.task
        short = t.short_name
        renderer = "flanlab"
        if t.collection == "muffin" and short in _DIALOG:
            key = short
            renderer = "flan/v2"
        elif t.collection == "muffin":
            key = fields[short].pattern if short in fields else _pattern_key(short)
            renderer = "flan/v2" if short in fields else "flanlab"
        elif t.collection == "t0sf":
            key = t0_types.get(short, "")
            renderer = "flan/v2"
        elif t.collection == "niv2":
            key = "natinst_v2"
            renderer = "flan/v2"
        else:
            ours = "cot_" + short.removeprefix("cot_").removeprefix("stream_")
            key = COT_KEYS.get(ours, ("", ""))[0]
            renderer = "flan/v2" if key else "flanlab"
        row = _row(t, key, renderer, av.status, av.detail)
        try:
            _fill(row, repo, t, short, key, flan_repo)
        except UserError as e:
            row["status"] = "error"
            row["differences"].append(str(e).splitlines()[0])
        rows.append(row)
    return rows


def _fill(row: dict[str, Any], repo: FlanRepo, t: Any, short: str, key: str, flan_repo: str | Path) -> None:
    diffs = row["differences"]
    if not key:
        raise UserError(f"{t.name}: no flan/v2 template list is known for this task")
    if t.collection == "muffin" and short in _DIALOG:
        row["formats"] = _counts(FlanSpec(repo, key, key, options=False, dialog=True))
        inv = f"{key}_input_inversion"
        row["inverted"] = len(FlanSpec(repo, inv, inv, options=False, dialog=True).templates())
        diffs.append("turns come from our dialog adapters (wiki_dialog, qrecc, taskmaster shapes), not "
                     "flan/v2's TFDS preprocessors")
        return
    if t.collection == "muffin":
        fields = flan_fields().get(short)
        spec = FlanSpec(repo, key, short, options=bool(fields and fields.mapping.has_options()),
                        unavailable=tuple(fields.unavailable) if fields else ())
        row["formats"] = _counts(spec)
        if fields is None:
            diffs.append("no hub mapping in tasks/collection/data/muffin/datasets.yaml: no data to render")
            return
        row["inverted"] = has_flan_inversions(short, flan_repo) or "none in flan/v2"
        for name, why in fields.unavailable.items():
            diffs.append(f"templates reading {{{name}}} left out: {why}")
        diffs.extend(fields.differences)
        if short in muffin_datasets() and fields.hub_config:
            diffs.append(f"rows from hub config {fields.hub_config!r}")
        return
    if t.collection == "t0sf":
        spec = FlanSpec(repo, key, key, options=key == "t0_multiple_choice_separated_options")
        row["formats"] = _counts(spec)
        return
    if t.collection == "niv2":
        row["formats"] = _counts(NIv2FlanSpec(repo, key, "tfds_natural_instructions", options=False))
        if not niv2_exemplars(repo.root):
            diffs.append("x-shot exemplars from the task's positive examples: flan/v2/niv2_few_shot_data is "
                         "not in the checkout")
        return
    spec = FlanSpec(repo, key, key, options=False, cot=True)
    inv = COT_KEYS["cot_" + short.removeprefix("cot_").removeprefix("stream_")][1]
    row["formats"] = _counts(spec)
    row["inverted"] = len(FlanSpec(repo, inv, inv, options=False, cot=True).templates())
    if re.match(r"stream_(creak|ecqa|esnli|qasc|sensemaking)$", short):
        diffs.append(f"the manifest calls it {short}; flan/v2's task is {key}")


def summarize(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Totals per collection: tasks, template lists loaded, load errors, renderer, data status."""
    out = []
    for coll in dict.fromkeys(r["collection"] for r in rows):
        rs = [r for r in rows if r["collection"] == coll]
        data = Counter(r["data"] for r in rs)
        out.append({"collection": coll, "tasks": len(rs),
                    "templates loaded": sum(r["status"] == "ok" for r in rs),
                    "load errors": sum(r["status"] == "error" for r in rs),
                    "rendered by flan/v2": sum(r["renderer"] == "flan/v2" for r in rs),
                    "data local/hub/missing": f"{data['local']}/{data['hub']}/{data['missing']}",
                    "with differences": sum(bool(r["differences"]) for r in rs)})
    return out
