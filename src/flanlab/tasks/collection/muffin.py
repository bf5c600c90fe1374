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
from flanlab.tasks.template import YAML_LOADER, TemplateFamily, parse_family

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
    data = yaml.load(_root().joinpath("datasets.yaml").read_text("utf-8"), Loader=YAML_LOADER)  # noqa: S506
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
    if flan_repo is not None:
        return _flan_muffin_task(ds, flan_repo, inverted=inverted, data_dir=data_dir, source=source,
                                 category=category)
    where = "local"
    if source is None:
        files = local_files(data_dir, ds.name)
        if files:
            source = FileSource(files)
        else:
            source, where = ds.hub_source(), "hub"
    family = muffin_family(ds.family, "inversion" if inverted else "standard")
    # Inversions generate an input from the answer: no options to show, so no *_opt formats.
    options = ds.mapping.has_options() and not inverted
    return _muffin_task(ds, inverted, mapped_source(source, ds.mapping), family, options, category,
                        f"Muffin {ds.name} ({ds.hub_path}" + (f"/{ds.hub_config}" if ds.hub_config else "") + ")",
                        ("flan2022", "muffin", where) + (("inverted",) if inverted else ()))


def _muffin_task(ds: MuffinDataset, inverted: bool, source: Any, family: Any, options: bool, category: str | None,
                 description: str, tags: tuple[str, ...]) -> Task:
    """The Task of a Muffin dataset (or its inversion), with our templates or flan/v2's. Its
    source_kind picks the Flan 2022 submixture (flan2021); where the data lives is a tag."""
    if not category:
        from flanlab.tasks.collection.manifest import load_manifest

        category = load_manifest().get(f"muffin/{ds.name}").category
    return Task(
        name=f"muffin/{ds.name}" + (":inverted" if inverted else ""),
        source=source,
        family=family,
        task_type="multiple_choice" if options else "generation",
        category=("Inverted " + category) if inverted else category,
        options_field="options" if options else None,
        answer_field="answer",
        source_kind="muffin",
        description=description,
        tags=tags,
    )


@dataclass(frozen=True)
class FlanFields:
    """How a Muffin dataset's hub rows become the fields flan/v2's templates read
    (``data/muffin/flan_fields.yaml``)."""

    pattern: str
    mapping: FieldMapping
    hub_config: str | None
    unavailable: Mapping[str, str]
    differences: tuple[str, ...]


@cache
def flan_fields() -> dict[str, FlanFields]:
    """Every Muffin dataset's flan/v2 field mapping, validated against ``datasets.yaml``."""
    where = f"flanlab/tasks/collection/{_DATA}/flan_fields.yaml"
    data = yaml.load(_root().joinpath("flan_fields.yaml").read_text("utf-8"), Loader=YAML_LOADER)  # noqa: S506
    raw = yaml.load(_root().joinpath("datasets.yaml").read_text("utf-8"), Loader=YAML_LOADER)["datasets"]  # noqa: S506
    if not isinstance(data, dict) or not isinstance(data.get("datasets"), dict):
        raise MappingError(f"{where}: expected a 'datasets' mapping")
    out = {}
    for name, item in data["datasets"].items():
        spot = f"{where}: datasets.{name}"
        if name not in raw:
            raise MappingError(f"{spot}: not a dataset of datasets.yaml")
        unknown = set(item) - {"pattern", "fields", "options", "hub_config", "unavailable", "differences"}
        if unknown or not isinstance(item.get("pattern"), str):
            raise MappingError(f"{spot}: expected 'pattern' and 'fields' (optional hub_config, unavailable, "
                               f"differences), got {sorted(item)}")
        base = {k: v for k, v in raw[name].items() if k in ("options", "answer", "skip")}
        if "options" in item:  # flan/v2 shapes the options itself (winogrande)
            base["options"] = item["options"]
        mapping = parse_mapping({**base, "fields": item.get("fields") or {}}, spot)
        out[name] = FlanFields(item["pattern"], mapping, item.get("hub_config"),
                               dict(item.get("unavailable") or {}), tuple(item.get("differences") or ()))
    missing = sorted(set(raw) - set(out))
    if missing:
        raise MappingError(f"{where}: no entry for dataset(s) {', '.join(missing)}")
    return out


def has_flan_inversions(name: str, flan_repo: str | Path) -> bool:
    """Whether flan/v2 has input-inversion templates for Muffin dataset ``name``."""
    from flanlab.tasks.collection.flan_render import FlanSpec
    from flanlab.tasks.collection.flan_repo import load_flan_repo

    spec = flan_fields()[name]
    return FlanSpec(load_flan_repo(flan_repo), spec.pattern, name, spec.mapping.has_options(),
                    unavailable=tuple(spec.unavailable)).has_inversions()


@cache
def _warn_unavailable(name: str, unavailable: tuple[tuple[str, str], ...] | None = None) -> None:
    # Once per dataset and process: the catalog builds every task.
    if unavailable:
        from flanlab.core.log import get_logger

        get_logger("tasks.flan").warning(
            "muffin/%s: flan/v2 templates reading %s are left out: %s", name,
            ", ".join("{" + k + "}" for k, _ in unavailable), "; ".join(v for _, v in unavailable))


def _flan_muffin_task(ds: MuffinDataset, flan_repo: str | Path, *, inverted: bool, data_dir: str | Path | None,
                      source: Source | None, category: str) -> Task:
    """A Muffin task rendered with flan/v2's templates and assembly (see :mod:`.flan_render`).

    ``muffin/NAME`` uses every template of ``PATTERNS`` (about one in ten is an input inversion, as
    in flan/v2); ``muffin/NAME:inverted`` only the inversions, for looking at them alone."""
    from flanlab.tasks.collection.flan_render import FlanSpec, flan_family
    from flanlab.tasks.collection.flan_repo import load_flan_repo

    spec = flan_fields()[ds.name]
    where = "local"
    if source is None:
        files = local_files(data_dir, ds.name)
        if files:
            source = FileSource(files)
        else:
            config = spec.hub_config or ds.hub_config
            source, where = HFSource(ds.hub_path, config, dict(ds.hub_splits)), "hub"
    repo = load_flan_repo(flan_repo)
    options = spec.mapping.has_options()
    flan = FlanSpec(repo, spec.pattern, ds.name, options, inverted=True if inverted else None,
                    unavailable=tuple(spec.unavailable))
    if inverted and not flan.has_inversions():
        raise UserError(f"muffin/{ds.name}:inverted: flan/v2 has no input-inversion template in "
                        f"PATTERNS[{spec.pattern!r}] ({repo.file('templates.py')}) that the data can fill"
                        + (f" (unavailable: {', '.join(spec.unavailable)})" if spec.unavailable else "")
                        + "; without a FLAN checkout "
                        "flanlab's own inversions are used")
    _warn_unavailable(ds.name, tuple(spec.unavailable.items()) or None)
    fields = tuple(spec.mapping.fields) + (("options",) if options else ()) + (
        ("answer",) if spec.mapping.answer is not None else ())
    family = flan_family(flan, fields, f"flan/v2 templates for {ds.name}")
    return _muffin_task(ds, inverted, mapped_source(source, spec.mapping), family, options, category,
                        f"Muffin {ds.name} ({ds.hub_path}), flan/v2 templates from {repo.root}",
                        ("flan2022", "muffin", where, "flan_repo") + (("inverted", "flan_variant") if inverted else ()))
