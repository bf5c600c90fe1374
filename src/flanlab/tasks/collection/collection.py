"""The Flan 2022 collection as tasks: what can be built here, and where each task's data is.

:func:`collection_tasks` gives the catalog every collection task that has a source (Muffin mapped
datasets and their inversions, dialog, T0-SF from P3, NIv2 task files of a local checkout); the CoT
tasks are the task catalog's own (``cot_*``). :func:`availability` says for every one of the
1,836 manifest tasks whether its data is local, on the hub, or missing, and why.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from flanlab.core.errors import UserError
from flanlab.tasks.collection.dialog import HUB as DIALOG_HUB
from flanlab.tasks.collection.dialog import dialog_task
from flanlab.tasks.collection.manifest import CollectionTask, Manifest, load_manifest
from flanlab.tasks.collection.muffin import has_flan_inversions, local_files, muffin_datasets, muffin_task
from flanlab.tasks.collection.niv2 import find_niv2_repo, niv2_family, niv2_task
from flanlab.tasks.collection.t0 import P3_HUB, p3_files, t0_task
from flanlab.tasks.sources import SourceError
from flanlab.tasks.task import Task

__all__ = ["COLLECTION_NAMES", "FLAN_REPO_ENV", "flan_repo_default", "NIV2_REPO_ENV", "Availability", "availability", "collection_tasks", "cot_file"]

NIV2_REPO_ENV = "FLANLAB_NIV2_REPO"
# A google-research/FLAN checkout whose flan/v2/templates.py replaces our Muffin templates.
FLAN_REPO_ENV = "FLANLAB_FLAN_REPO"
COLLECTION_NAMES = ("flan2022",)
_DIALOG = ("qrecc", "task_master", "wiki_dialog")


@dataclass(frozen=True)
class Availability:
    """Where one manifest task's data is: ``local``, ``hub`` or ``missing``, with the detail."""

    task: CollectionTask
    status: str
    detail: str

    def row(self) -> dict[str, str]:
        t = self.task
        return {"name": t.name, "collection": t.collection, "submixture": t.submixture, "category": t.category,
                "data": self.status, "detail": self.detail}


def _niv2_repo(niv2_repo: str | Path | None, data_dir: str | Path | None) -> Path | None:
    return find_niv2_repo(niv2_repo or os.environ.get(NIV2_REPO_ENV) or None, data_dir)


def cot_file(name: str, data_dir: str | Path | None) -> Path | None:
    """The local Flan CoT TSV of a manifest CoT task (``cot/stream_aqua`` → ``flan_cot/aqua_train.tsv``)."""
    if data_dir is None:
        return None
    short = name.removeprefix("cot/").removeprefix("stream_").removeprefix("cot_")
    return Path(data_dir) / "flan_cot" / f"{short}_train.tsv"


def flan_repo_default(flan_repo: str | Path | None = None) -> str | None:
    """The FLAN checkout to use: ``flan_repo`` if given, else ``$FLANLAB_FLAN_REPO`` (read, never
    written), else None (flanlab's own templates)."""
    found = flan_repo or os.environ.get(FLAN_REPO_ENV) or None
    return None if found is None else str(found)


def _check(name: str) -> None:
    if name not in COLLECTION_NAMES:
        raise UserError(f"unknown collection {name!r}; known: {', '.join(COLLECTION_NAMES)}")


def availability(data_dir: str | Path | None = None, *, niv2_repo: str | Path | None = None,
                 collection: str = "flan2022", manifest: Manifest | None = None) -> list[Availability]:
    """Every manifest task with its data status (no data is read; only files are looked for)."""
    _check(collection)
    manifest = manifest or load_manifest()
    mapped = muffin_datasets()
    tasks_dir = _niv2_repo(niv2_repo, data_dir)
    out = []
    for t in manifest.tasks:
        short = t.short_name
        if t.collection == "muffin" and short in _DIALOG:
            if local_files(data_dir, short):
                status, detail = "local", f"muffin/{short}/ in the data dir"
            elif short in DIALOG_HUB:
                status, detail = "hub", DIALOG_HUB[short][0]
            else:
                status, detail = "missing", (f"published outside the hub; put {short} rows (its own shape) in "
                                             f"DATA_DIR/muffin/{short}/train.jsonl")
        elif t.collection == "muffin":
            if short not in mapped:
                status, detail = "missing", "no hub mapping yet in tasks/collection/data/muffin/datasets.yaml"
            elif local_files(data_dir, short):
                status, detail = "local", f"muffin/{short}/ in the data dir"
            else:
                ds = mapped[short]
                status, detail = "hub", ds.hub_path + (f" ({ds.hub_config})" if ds.hub_config else "")
        elif t.collection == "t0sf":
            if p3_files(data_dir, short):
                status, detail = "local", f"p3/{short}/ in the data dir"
            else:
                status, detail = "hub", f"{P3_HUB} subset {short}"
        elif t.collection == "niv2":
            if tasks_dir is None:
                status, detail = "missing", ("needs a natural-instructions checkout (--niv2-repo, "
                                             f"${NIV2_REPO_ENV} or DATA_DIR/natural-instructions)")
            elif (tasks_dir / f"{short}.json").is_file():
                status, detail = "local", str(tasks_dir / f"{short}.json")
            else:
                status, detail = "missing", f"{short}.json not in {tasks_dir}"
        else:
            path = cot_file(t.name, data_dir or ".")
            if data_dir is not None and path is not None and path.is_file():
                status, detail = "local", f"flan_cot/{path.name}"
            else:
                status, detail = "missing", (f"no flan_cot/{path.name if path else '?'} in the data dir "
                                             "(TSV: question<TAB>answer<TAB>chain_of_thought)")
        out.append(Availability(t, status, detail))
    return out


def collection_tasks(data_dir: str | Path | None = None, *, niv2_repo: str | Path | None = None,
                     flan_repo: str | Path | None = None) -> list[Task]:
    """The collection's buildable tasks (sources are lazy: nothing is read or downloaded here).
    ``flan_repo`` (a google-research/FLAN checkout; see :func:`flan_repo_default`) renders Muffin
    with flan/v2's own templates and assembly."""
    manifest = load_manifest()
    tasks: list[Task] = []
    for t in manifest.select(collections=["muffin"]):
        short = t.short_name
        if short in _DIALOG:
            if local_files(data_dir, short) or short in DIALOG_HUB:
                for inverted in (False, True):
                    tasks.append(dialog_task(short, data_dir=data_dir, inverted=inverted, category=t.category,
                                             flan_repo=flan_repo))
        elif short in muffin_datasets():
            # With a FLAN checkout, muffin/NAME holds flan/v2's inversions among its templates (as
            # flan/v2 does); muffin/NAME:inverted is then a view of those alone, tagged flan_variant
            # so that mixture globs leave it out. A template that cannot be read is an error.
            variants = [False, True] if flan_repo is None or has_flan_inversions(short, flan_repo) else [False]
            for inverted in variants:
                tasks.append(muffin_task(short, data_dir=data_dir, inverted=inverted, category=t.category,
                                         flan_repo=flan_repo))
    for t in manifest.select(collections=["t0sf"]):
        tasks.append(t0_task(t.short_name, data_dir=data_dir, category=t.category, flan_repo=flan_repo))
    tasks_dir = _niv2_repo(niv2_repo, data_dir)
    for t in manifest.select(collections=["niv2"]):
        path = tasks_dir / f"{t.short_name}.json" if tasks_dir is not None else None
        if path is not None and path.is_file():
            tasks.append(niv2_task(path, category=t.category, flan_repo=flan_repo))
        else:
            # Known to the catalog (plans, globs) but without data: iterating it says what is missing.
            why = (f"{t.short_name}.json not in {tasks_dir}" if tasks_dir is not None else
                   f"no natural-instructions checkout (--niv2-repo, ${NIV2_REPO_ENV} or DATA_DIR/natural-instructions)")
            tasks.append(Task(name=t.name, source=_Missing(t.name, why), family=niv2_family(), category=t.category,
                              source_kind="niv2", description=f"natural-instructions {t.short_name}",
                              tags=("flan2022", "niv2", "missing")))
    return tasks


@dataclass
class _Missing:
    """The source of a task whose data is not here: any read raises a SourceError saying why."""

    name: str
    why: str

    def splits(self) -> list[str]:
        return ["train"]

    def records(self, split: str):
        raise SourceError(f"{self.name}: {self.why}")
