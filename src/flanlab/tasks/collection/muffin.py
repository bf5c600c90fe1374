"""Muffin (Flan 2021) tasks: hub dataset mappings and our own Flan-style template families.

``data/muffin/datasets.yaml`` maps each dataset to its hub location and to the fields of a family
in ``data/muffin/families/``. A task reads local files when they exist
(``DATA_DIR/muffin/NAME/{train,validation,test}.{jsonl,json,parquet,csv}``, rows in the hub's
schema) and the hub otherwise. Each dataset gives two tasks, as in the Flan collection: the task
(``muffin/NAME``, standard templates) and its input inversion (``muffin/NAME:inverted``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from flanlab.core.errors import UserError
from flanlab.tasks.collection.mapping import FieldMapping, MappingError, mapped_source, parse_mapping
from flanlab.tasks.sources import FILE_FORMATS, FileSource, HFSource, Source
from flanlab.tasks.task import Task
from flanlab.tasks.template import TemplateFamily, parse_family

__all__ = [
    "MuffinDataset",
    "local_files",
    "muffin_dataset",
    "muffin_datasets",
    "muffin_family",
    "muffin_task",
]

_DATA = "data/muffin"
SPLITS = ("train", "validation", "test")


@dataclass(frozen=True)
class MuffinDataset:
    """One Muffin dataset: its template family, hub location and field mapping."""

    name: str
    family: str
    hub_path: str
    hub_config: str | None
    hub_splits: Mapping[str, str]
    mapping: FieldMapping

    def hub_source(self) -> HFSource:
        return HFSource(self.hub_path, self.hub_config, dict(self.hub_splits))


def _root():
    return resources.files("flanlab.tasks.collection").joinpath(_DATA)


def _parse_dataset(name: str, item: Any, where: str) -> MuffinDataset:
    if not isinstance(item, dict):
        raise MappingError(f"{where}: expected a mapping")
    unknown = set(item) - {"family", "hub", "fields", "options", "answer", "skip"}
    if unknown:
        raise MappingError(f"{where}: unknown key {sorted(unknown)[0]!r}")
    hub = item.get("hub")
    if not isinstance(hub, dict) or not isinstance(hub.get("path"), str) or not isinstance(hub.get("splits"), dict):
        raise MappingError(f"{where}.hub: expected {{path: ..., splits: {{train: ...}}}}")
    if "train" not in hub["splits"]:
        raise MappingError(f"{where}.hub.splits: needs a 'train' split")
    family = item.get("family")
    if not isinstance(family, str) or not _root().joinpath(f"families/{family}.yaml").is_file():
        raise MappingError(f"{where}.family: no template family {family!r} in {_DATA}/families/")
    config = hub.get("config")
    return MuffinDataset(name, family, hub["path"], None if config is None else str(config),
                         {str(k): str(v) for k, v in hub["splits"].items()}, parse_mapping(item, where))


@cache
def muffin_datasets() -> dict[str, MuffinDataset]:
    """Every mapped Muffin dataset, validated (names are the manifest's, without ``muffin/``)."""
    where = f"flanlab/tasks/collection/{_DATA}/datasets.yaml"
    data = yaml.safe_load(_root().joinpath("datasets.yaml").read_text("utf-8"))
    if not isinstance(data, dict) or not isinstance(data.get("datasets"), dict):
        raise MappingError(f"{where}: expected a 'datasets' mapping")
    return {name: _parse_dataset(name, item, f"{where}: datasets.{name}") for name, item in data["datasets"].items()}


def muffin_dataset(name: str) -> MuffinDataset:
    """One dataset by manifest name (``anli_r1`` or ``muffin/anli_r1``)."""
    short = name.removeprefix("muffin/").removesuffix(":inverted")
    found = muffin_datasets()
    if short not in found:
        from flanlab.core.registry import close_matches

        hint = close_matches(short, found)
        raise UserError(f"no Muffin mapping for {name!r}" + (f"; did you mean {hint}?" if hint else "")
                        + f" ({len(found)} datasets are mapped in {_DATA}/datasets.yaml)")
    return found[short]


@cache
def muffin_family(family: str, kind: str | None = None) -> TemplateFamily:
    """A Muffin template family; ``kind`` keeps only ``standard`` or ``inversion`` templates."""
    path = f"flanlab/tasks/collection/{_DATA}/families/{family}.yaml"
    fam = parse_family(_root().joinpath(f"families/{family}.yaml").read_text("utf-8"), path)
    if kind is None:
        return fam
    keep = tuple(t for t in fam.templates if t.kind == kind)
    if not keep:
        raise UserError(f"{path}: no {kind} templates")
    return TemplateFamily(fam.name + (":inverted" if kind == "inversion" else ""), keep, fam.fields, fam.path,
                          fam.description)


def local_files(data_dir: str | Path | None, name: str) -> dict[str, Path]:
    """Local split files of a Muffin dataset under ``DATA_DIR/muffin/NAME/`` (empty if none)."""
    if data_dir is None:
        return {}
    folder = Path(data_dir) / "muffin" / name.removeprefix("muffin/")
    found: dict[str, Path] = {}
    for split in SPLITS:
        for ext in FILE_FORMATS:
            p = folder / f"{split}.{ext}"
            if p.is_file():
                found[split] = p
                break
    return found


def muffin_task(name: str, *, inverted: bool = False, data_dir: str | Path | None = None,
                source: Source | None = None, category: str = "",
                flan_repo: str | Path | None = None) -> Task:
    """The Muffin task ``name``: local files under ``data_dir`` if present, else the hub; ``source``
    (rows in the hub's schema) overrides both. With ``flan_repo`` (a google-research/FLAN checkout)
    the templates are Flan's own, read from its ``flan/v2/templates.py`` at run time."""
    ds = muffin_dataset(name)
    where = "local"
    if source is None:
        files = local_files(data_dir, ds.name)
        if files:
            source = FileSource(files)
        else:
            source, where = ds.hub_source(), "hub"
    if flan_repo is not None:
        from flanlab.tasks.collection.flan_repo import flan_family

        fields = tuple(ds.mapping.fields) + (("options",) if ds.mapping.has_options() else ()) + (
            ("answer",) if ds.mapping.answer is not None else ())
        family = flan_family(flan_repo, ds.name, ds.family, fields, inverted)
    else:
        family = muffin_family(ds.family, "inversion" if inverted else "standard")
    # Inversions generate an input from the answer: no options to show, so no *_opt formats.
    options = ds.mapping.has_options() and not inverted
    if not category:
        from flanlab.tasks.collection.manifest import load_manifest

        category = load_manifest().get(f"muffin/{ds.name}").category
    return Task(
        name=f"muffin/{ds.name}" + (":inverted" if inverted else ""),
        source=mapped_source(source, ds.mapping),
        family=family,
        task_type="multiple_choice" if options else "generation",
        category=("Inverted " + category) if inverted else category,
        options_field="options" if options else None,
        answer_field="answer",
        # source_kind picks the Flan 2022 submixture (flan2021); where the data lives is a tag.
        source_kind="muffin",
        description=f"Muffin {ds.name} ({ds.hub_path}" + (f"/{ds.hub_config}" if ds.hub_config else "") + ")",
        tags=("flan2022", "muffin", where) + (("inverted",) if inverted else ()),
    )
