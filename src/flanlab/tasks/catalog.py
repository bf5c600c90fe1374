"""The task catalog: tasks declared in YAML (shipped or your own) plus every BIG-bench JSON task.

The shipped catalog (``data/catalog.yaml``) holds the 9 Flan CoT datasets, GSM8K with CoT (its test
split held out) and, tagged held out, the benchmarks found in the data dir (MMLU subjects, BBH
subtasks, MGSM and TyDiQA languages; one task per subtask through ``benchmark``, read by the
benchmark's data owner in :mod:`flanlab.tasks.benchmark_data`, the reader evaluation uses). File paths are relative to the
data dir (``--data-dir`` / ``$FLANLAB_DATA_DIR``). BIG-bench tasks
come from the sdist in ``cache_dir("downloads")`` (fetched with pip when missing) through its cached
index, so building the catalog is cheap; examples are read only when a task is iterated.

A catalog file is a config of ``kind: task_catalog`` (schema :class:`TaskCatalog`); user catalogs
resolve relative paths against the file's folder.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from flanlab.core.config import SCHEMAS, ConfigError, Schema, load_yaml, validate
from flanlab.core.errors import UserError
from flanlab.core.paths import DATA_DIR_ENV
from flanlab.core.registry import Registry
from flanlab.tasks.preprocessors import PREPROCESSORS, rename_fields
from flanlab.tasks.sources import FileSource, HFSource, Source, SourceError
from flanlab.tasks.task import Task
from flanlab.tasks.template import builtin_family, load_family

__all__ = [
    "CatalogEntry",
    "TaskCatalog",
    "build_catalog",
    "catalog",
    "get_task",
    "list_tasks",
    "load_catalog_file",
    "task_row",
]


class HFSpec(Schema):
    path: str
    config: str | None = None
    splits: dict[str, str] = Field(default_factory=lambda: {"train": "train"})
    data_files: dict[str, str] | str | None = None
    revision: str | None = None


class CatalogEntry(Schema):
    """One task of a catalog file."""

    name: str
    source: str = "local"
    files: dict[str, str] | None = None
    hf: HFSpec | None = None
    format: Literal["jsonl", "json", "csv", "tsv", "parquet"] | None = None
    columns: list[str] | None = None
    unescape: bool = False
    preprocessors: list[str] = Field(default_factory=list)
    rename: dict[str, str] = Field(default_factory=dict, description="rename fields first: {old: new}")
    expand: dict[str, str] | None = Field(
        default=None, description="one task per data-dir file matching a pattern: {var: 'dir/{var}.csv'}")
    benchmark: str | None = Field(
        default=None, description="an evaluation benchmark (mmlu, bbh, gsm8k, mgsm, tydiqa): one task per "
                                  "subtask the data dir holds, read by flanlab.tasks.benchmark_data; "
                                  "'{subtask}' in name and language is replaced")
    family: str | None = Field(default=None, description="a template family (shipped name or YAML file)")
    task_type: Literal["multiple_choice", "generation", "cot"] = "generation"
    category: str = ""
    language: str = "en"
    options_field: str | None = None
    answer_field: str = "answer"
    heldout: list[str] = Field(default_factory=list)
    heldout_splits: dict[str, str] = Field(default_factory=dict)
    train_split: str = "train"
    flan_name: str | None = None
    flan_pattern: str | None = Field(
        default=None, description="render with this flan/v2 template list (a PATTERNS key, e.g. rte) of the "
                                  "catalog's flan_repo, instead of `family`; fields must be the ones it reads")
    description: str = ""

    @model_validator(mode="after")
    def _one_family(self) -> CatalogEntry:
        if bool(self.family) == bool(self.flan_pattern):
            raise ValueError("give exactly one of family (flanlab templates) and flan_pattern (flan/v2's)")
        if self.benchmark and (self.files or self.hf or self.expand):
            raise ValueError("a benchmark entry reads its rows through its benchmark; drop files, hf and expand")
        return self


class TaskCatalog(Schema):
    """A catalog file: ``kind: task_catalog``, a list of tasks and, for entries naming a
    ``flan_pattern``, the google-research/FLAN checkout to read it from (default ``$FLANLAB_FLAN_REPO``)."""

    kind: Literal["task_catalog"] = "task_catalog"
    flan_repo: str | None = None
    tasks: list[CatalogEntry]


if "task_catalog" not in SCHEMAS:
    SCHEMAS.register("task_catalog", TaskCatalog)


class _MissingData:
    """Stands in for the source of a task whose data dir is unset: iterating it says what to do."""

    def __init__(self, name: str, splits: Iterable[str]) -> None:
        self.name, self._splits = name, list(splits)

    def splits(self) -> list[str]:
        return self._splits

    def records(self, split: str):
        raise SourceError(f"{self.name}: no data dir: pass --data-dir DIR or set {DATA_DIR_ENV}")


def _flan_entry_family(entry: CatalogEntry, flan_repo: str | None, where: str):
    from flanlab.tasks.collection.collection import flan_repo_default
    from flanlab.tasks.collection.flan_render import FlanSpec, flan_family
    from flanlab.tasks.collection.flan_repo import load_flan_repo

    repo_path = flan_repo_default(flan_repo)
    if repo_path is None:
        raise ConfigError(f"{where}: task {entry.name!r}: flan_pattern {entry.flan_pattern!r} needs the catalog's "
                          "flan_repo (a google-research/FLAN checkout) or $FLANLAB_FLAN_REPO")
    spec = FlanSpec(load_flan_repo(repo_path), entry.flan_pattern, entry.flan_pattern,
                    options=entry.options_field is not None, cot=entry.task_type == "cot")
    return flan_family(spec, (), f"flan/v2 templates {entry.flan_pattern}")


def _entry_source(entry: CatalogEntry, root: Path | None, where: str) -> Source:
    if entry.hf is not None:
        return HFSource(entry.hf.path, entry.hf.config, entry.hf.splits, entry.hf.data_files, entry.hf.revision)
    if entry.files:
        if root is None:
            return _MissingData(f"task {entry.name!r}", entry.files)
        files = {split: Path(p) if Path(p).is_absolute() else root / p for split, p in entry.files.items()}
        return FileSource(files, entry.format, entry.columns, entry.unescape)
    raise ConfigError(f"{where}: task {entry.name!r}: expected 'files', 'hf' or 'benchmark'")


def _entry_task(entry: CatalogEntry, root: Path | None, where: str, family_root: Path | None,
                flan_repo: str | None = None, source: Source | None = None) -> Task:
    source = source or _entry_source(entry, root, where)
    try:
        pre = tuple(PREPROCESSORS.get(p) for p in entry.preprocessors)
    except KeyError as e:
        raise ConfigError(f"{where}: task {entry.name!r}: {e}") from None
    if entry.rename:
        pre = (rename_fields(dict(entry.rename)), *pre)
    if entry.flan_pattern:
        family = _flan_entry_family(entry, flan_repo, where)
    else:
        family_file = family_root / entry.family if family_root else None
        family = load_family(family_file) if family_file and family_file.suffix in (".yaml", ".yml") \
            else builtin_family(entry.family)
    tags = tuple(t for t in (entry.source, entry.task_type, entry.flan_name) if t)
    return Task(
        name=entry.name, source=source, family=family, preprocessors=pre, task_type=entry.task_type,
        category=entry.category, language=entry.language, options_field=entry.options_field,
        answer_field=entry.answer_field, heldout=tuple(entry.heldout), heldout_splits=dict(entry.heldout_splits),
        train_split=entry.train_split, source_kind=entry.source, description=entry.description, tags=tags,
    )


def load_catalog_file(path: str | Path, root: Path | None = None) -> list[Task]:
    """Tasks of a catalog YAML file; relative paths resolve against ``root`` (default: the file's
    folder). Errors name the file, line and key."""
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    spec = validate(TaskCatalog, load_yaml(path), source=str(path), text=text)
    return _tasks(spec, str(path), root if root is not None else path.parent, path.parent)


def _tasks(spec: TaskCatalog, where: str, root: Path | None, family_root: Path | None) -> list[Task]:
    names = [e.name for e in spec.tasks]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ConfigError(f"{where}: task {dupes[0]!r} is declared twice")
    tasks = []
    flan_repo = spec.flan_repo
    if flan_repo and family_root is not None and not Path(flan_repo).expanduser().is_absolute():
        flan_repo = str(family_root / flan_repo)  # relative to the catalog file, like its families
    for entry in spec.tasks:
        if entry.benchmark:
            for concrete, source in _benchmark_entries(entry, root, where):
                tasks.append(_entry_task(concrete, root, where, family_root, flan_repo, source))
            continue
        for concrete in _expand(entry, root, where):
            tasks.append(_entry_task(concrete, root, where, family_root, flan_repo))
    return tasks


def _benchmark_entries(entry: CatalogEntry, root: Path | None, where: str) -> list[tuple[CatalogEntry, Source]]:
    """One entry per subtask of the benchmark that the data dir holds (none without a data dir or
    with the benchmark's files absent), each with a source reading that subtask through the
    benchmark's data owner."""
    from flanlab.tasks.benchmark_data import BENCHMARK_DATA, BenchmarkSource, MissingDataError, get_data

    assert entry.benchmark is not None
    if entry.benchmark not in BENCHMARK_DATA:
        raise ConfigError(f"{where}: task {entry.name!r}: unknown benchmark {entry.benchmark!r}; "
                          f"known: {', '.join(BENCHMARK_DATA.names())}")
    if root is None:
        return []
    data = get_data(entry.benchmark, root)
    try:
        subtasks = data.present_subtasks()
    except MissingDataError:
        return []
    out: list[tuple[CatalogEntry, Source]] = []
    for sub in subtasks:
        concrete = entry.model_copy(update={"name": entry.name.replace("{subtask}", sub),
                                            "language": entry.language.replace("{subtask}", sub)})
        out.append((concrete, BenchmarkSource(data, sub)))
    return out


def _expand(entry: CatalogEntry, root: Path | None, where: str) -> list[CatalogEntry]:
    """One entry per data-dir file matching ``expand`` (none without a data dir), with ``{var}``
    replaced in the name, files and language."""
    if not entry.expand:
        return [entry]
    if len(entry.expand) != 1:
        raise ConfigError(f"{where}: task {entry.name!r}: 'expand' takes exactly one variable")
    if root is None:
        return []
    (var, pattern), = entry.expand.items()
    token = "{" + var + "}"
    if pattern.count(token) != 1:
        raise ConfigError(f"{where}: task {entry.name!r}: expand pattern {pattern!r} must contain {token} once")
    head, tail = pattern.split(token)
    values = sorted(str(p.relative_to(root))[len(head): len(str(p.relative_to(root))) - len(tail)]
                    for p in root.glob(head + "*" + tail))
    out = []
    for value in values:
        def sub(text: str, value: str = value) -> str:
            return text.replace(token, value)

        files = {k: sub(v) for k, v in (entry.files or {}).items()}
        out.append(entry.model_copy(update={"name": sub(entry.name), "files": files, "expand": None,
                                            "language": sub(entry.language)}))
    return out


def _shipped(root: Path | None) -> list[Task]:
    import yaml

    where = "flanlab/tasks/data/catalog.yaml"
    text = resources.files("flanlab.tasks").joinpath("data/catalog.yaml").read_text("utf-8")
    spec = validate(TaskCatalog, yaml.safe_load(text), source=where, text=text)
    return _tasks(spec, where, root, None)


@dataclass(frozen=True)
class _Key:
    data_dir: str | None
    bigbench: str | None
    flan_repo: str | None = None


_CACHE: dict[_Key, Registry[Task]] = {}


def _root(data_dir_: str | Path | None) -> Path | None:
    # The data dir as given (None: none); the CLI or config resolved any default from the environment.
    return Path(data_dir_).expanduser() if data_dir_ not in (None, "") else None


def _bigbench_tasks(location: str | Path | None, fetch: bool) -> list[Task]:
    from flanlab.tasks.bigbench import fetch_sdist, make_task, open_store

    path = Path(location) if location else fetch_sdist(download=fetch)
    if path is None:
        return []
    store = open_store(path)
    return [make_task(info, store) for info in store.index().values()]


def build_catalog(data_dir_: Path | None = None, *, bigbench: bool | str | Path = True,
                  fetch: bool = True, extra: Iterable[str | Path] = (),
                  flan_repo: str | Path | None = None) -> Registry[Task]:
    """A fresh registry: shipped tasks, BIG-bench (``bigbench``: True for the cached sdist, a path
    to a folder or tarball, False for none) and tasks of ``extra`` catalog files. ``flan_repo`` (a
    google-research/FLAN checkout, default ``$FLANLAB_FLAN_REPO``) renders the Flan 2022 collection
    with flan/v2's own templates and assembly."""
    root = _root(data_dir_)
    reg: Registry[Task] = Registry("task")
    tasks = _shipped(root)
    from flanlab.tasks.collection.collection import collection_tasks, flan_repo_default

    flan_repo = flan_repo_default(flan_repo)
    if flan_repo is not None:
        from flanlab.tasks.collection.cot import flan_cot_tasks

        tasks = flan_cot_tasks(tasks, flan_repo)
    tasks += collection_tasks(root, flan_repo=flan_repo)
    for file in extra:
        tasks += load_catalog_file(file)
    if bigbench:
        tasks += _bigbench_tasks(None if bigbench is True else bigbench, fetch)
    for task in tasks:
        try:
            reg.register(task.name, task)
        except KeyError as e:
            raise UserError(f"task {task.name!r} is defined twice ({e})") from None
    return reg


def catalog(data_dir_: Path | None = None, *, bigbench: bool | str | Path = True,
            fetch: bool = True, flan_repo: str | Path | None = None) -> Registry[Task]:
    """The catalog for a data dir (and FLAN checkout), built once per process (lazily) and cached."""
    from flanlab.tasks.collection.collection import flan_repo_default

    root = _root(data_dir_)
    flan = flan_repo_default(flan_repo)
    key = _Key(str(root) if root else None, None if bigbench is True else str(bigbench) if bigbench else "",
               None if flan is None else str(Path(flan).expanduser().resolve()))
    if key not in _CACHE:
        _CACHE[key] = build_catalog(root, bigbench=bigbench, fetch=fetch, flan_repo=flan)
    return _CACHE[key]


def get_task(name: str, data_dir_: Path | None = None, *, fetch: bool = True,
             flan_repo: str | Path | None = None) -> Task:
    """A task by name; BIG-bench (``bigbench.*``) is only indexed when such a name is asked for."""
    if not name.startswith("bigbench."):
        local = catalog(data_dir_, bigbench=False, flan_repo=flan_repo)
        if name in local:
            return local.get(name)
    return catalog(data_dir_, fetch=fetch, flan_repo=flan_repo).get(name)


def list_tasks(data_dir_: Path | None = None, *, source: str | None = None, tag: str | None = None,
               fetch: bool = True, flan_repo: str | Path | None = None) -> list[Task]:
    """Tasks filtered by source kind (``flan_cot``, ``gsm8k``, ``bigbench`` ...) and by tag (a
    held-out tag, a task type, a BIG-bench keyword, or ``heldout`` for any held-out task)."""
    want_bigbench = source in (None, "bigbench")
    reg = catalog(data_dir_, bigbench=want_bigbench, fetch=fetch, flan_repo=flan_repo)
    out = []
    for _, task in reg.items():
        if source and task.source_kind != source:
            continue
        if tag and not _has_tag(task, tag):
            continue
        out.append(task)
    return out


def _has_tag(task: Task, tag: str) -> bool:
    if tag == "heldout":
        return bool(task.heldout_tags())
    return tag in task.tags or tag in task.heldout_tags() or tag == task.task_type


def task_row(task: Task) -> dict[str, str | int]:
    """A ``tasks list`` row: name, source, type, number of templates, held-out tags."""
    held = list(task.heldout) + [f"{tag} ({split} split)" for split, tag in task.heldout_splits.items()]
    return {"name": task.name, "source": task.source_kind, "type": task.task_type,
            "templates": len(task.family.templates), "heldout": ", ".join(held) or "-"}
