"""The base of the benchmark data owners: local layout or hub rows, one :class:`Example` list.

A :class:`BenchmarkData` subclass reads one benchmark's files, either from a local folder in the
layout of ``../shared/data`` or from the hub (``datasets.load_dataset`` with the path, config and
splits of ``data/benchmarks.yaml``); hub rows are converted to the local row layout first, so both
give the same examples.
"""

from __future__ import annotations

import csv
import json
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from flanlab.core.errors import UserError
from flanlab.core.registry import Registry

__all__ = ["BENCHMARK_DATA", "BenchmarkData", "BenchmarkSource", "DataError", "Example", "HubSpec", "MissingDataError",
           "data_spec", "get_data", "malformed_data"]

_SPEC_FILE = "flanlab/tasks/data/benchmarks.yaml"


class DataError(UserError, ValueError):
    """Benchmark data missing or malformed; the message names the file (and line) and what was expected."""


class MissingDataError(DataError):
    """A file or folder of a benchmark is not in the data dir (a run of several benchmarks skips it)."""

    def __init__(self, message: str, path: Path) -> None:
        super().__init__(message)
        self.path = path


@dataclass(frozen=True)
class Example:
    """One test item: ``index`` is its position in the subtask's own file order."""

    subtask: str
    index: int
    fields: dict[str, Any]
    target: str
    golds: tuple[str, ...] = ()


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class HubSpec(_Model):
    path: str
    config: str | None = None
    test_split: str = "test"
    dev_split: str | None = None


class DataSpec(_Model):
    """One entry of ``data/benchmarks.yaml``."""

    hub: HubSpec
    get: str = ""
    subtasks: list[str] = []
    default_subtasks: list[str] = []


@lru_cache(maxsize=1)
def _specs() -> dict[str, DataSpec]:
    text = resources.files("flanlab.tasks").joinpath("data/benchmarks.yaml").read_text("utf-8")
    raw = yaml.safe_load(text)
    if not isinstance(raw, dict):
        raise DataError(f"{_SPEC_FILE}: expected a mapping benchmark -> {{hub, get, subtasks}}")
    out = {}
    for name, body in raw.items():
        try:
            out[name] = DataSpec.model_validate(body)
        except ValidationError as e:
            first = e.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise DataError(f"{_SPEC_FILE}: key {name}.{where}: {first['msg']}") from None
    return out


def data_spec(name: str) -> DataSpec:
    """The hub location and download hint of benchmark ``name``."""
    try:
        return _specs()[name]
    except KeyError:
        raise DataError(f"{_SPEC_FILE}: no entry for benchmark {name!r}") from None


@contextmanager
def malformed_data(bench: str, what: str, data_dir: Path | None) -> Iterator[None]:
    """Turn a failure deep in a reader (wrong encoding, bad JSON, a row of the wrong shape) into a
    :class:`DataError` naming the benchmark, what was being read and the data dir."""
    try:
        yield
    except UserError:
        raise
    except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, AttributeError, IndexError,
            ValueError, csv.Error) as e:
        where = data_dir if data_dir is not None else "the hub"
        raise DataError(f"{bench}: malformed data for {what} in {where}: {type(e).__name__}: {e} "
                        "(expected the layout of ../shared/data, UTF-8)") from None


class BenchmarkData(ABC):
    """The files of one benchmark, read from ``data_dir`` (None: the hub)."""

    name: str = ""

    def __init__(self, data_dir: Path | None) -> None:
        self.data_dir = Path(data_dir) if data_dir is not None else None
        self.spec = data_spec(self.name)
        self._cache: dict[str, list[Example]] = {}
        self._memo: dict[str, Any] = {}

    def memo(self, key: str, make: Any) -> Any:
        """``make()`` once per key (files are read once per instance)."""
        if key not in self._memo:
            self._memo[key] = make()
        return self._memo[key]

    # -- where the rows are ---------------------------------------------------------------------
    def local(self, *parts: str) -> Path:
        """A path under the data dir; a missing file is a :class:`MissingDataError` naming it."""
        assert self.data_dir is not None
        path = self.data_dir.joinpath(*parts)
        if not path.exists():
            get = f"; get it from {self.spec.get.replace('DATA', str(self.data_dir))}" if self.spec.get else ""
            raise MissingDataError(f"{self.name}: {path} not found (expected the layout of ../shared/data{get})",
                                   path)
        return path

    def hub_rows(self, config: str | None, split: str) -> list[dict[str, Any]]:
        """The rows of the hub dataset (``config``, ``split``) as plain dicts."""
        try:
            import datasets
        except ImportError as e:  # pragma: no cover - datasets is a dependency
            raise DataError(f"reading {self.name} from the hub needs the datasets package ({e})") from None
        try:
            ds = datasets.load_dataset(self.spec.hub.path, config, split=split)
        except Exception as e:
            raise DataError(
                f"{self.name}: cannot load {self.spec.hub.path} ({config or 'default'}, {split}) from the hub: "
                f"{e}; pass --data-dir with a local copy instead") from None
        return [dict(r) for r in ds]

    # -- what there is ------------------------------------------------------------------------
    @abstractmethod
    def subtasks(self) -> list[str]:
        """The benchmark's subtasks (subjects, languages, ...), in a stable order."""

    def default_subtasks(self) -> list[str]:
        """The subtasks a run scores when none are named."""
        return self.subtasks()

    def present_subtasks(self) -> list[str]:
        """The subtasks that have examples here (every one, except where a file holds only some)."""
        return self.subtasks()

    def splits(self) -> list[str]:
        """The splits a held-out catalog task of this benchmark has: ``test`` (the scored examples)
        and, where the benchmark has one, its exemplar split."""
        return ["test"]

    @abstractmethod
    def load(self, subtask: str) -> list[Example]:
        """Read one subtask's scored examples, in file order."""

    def examples(self, subtask: str) -> list[Example]:
        """The subtask's scored examples, in file order (cached)."""
        if subtask not in self._cache:
            if subtask not in self.subtasks():
                raise DataError(f"{self.name}: unknown subtask {subtask!r}; known: {', '.join(self.subtasks())}")
            with malformed_data(self.name, f"subtask {subtask!r}", self.data_dir):
                self._cache[subtask] = self.load(subtask)
        return self._cache[subtask]

    def all_examples(self, subtask: str) -> list[Example]:
        """Every example of the evaluation file for ``subtask``, including any that a prompt uses as
        its exemplar and so is not scored (what a contamination check looks for)."""
        return self.examples(subtask)

    def split_examples(self, subtask: str, split: str) -> list[Example]:
        """The examples of ``split`` (``test``: the scored ones)."""
        if split != "test":
            raise DataError(f"{self.name}: no split {split!r}; splits: {', '.join(self.splits())}")
        return self.examples(subtask)

    # -- the same rows, as other stages see them ----------------------------------------------------
    def record(self, example: Example) -> dict[str, Any]:
        """The example as a catalog task's row: its fields plus ``answer`` (the target)."""
        return {**example.fields, "answer": example.target}

    def text(self, example: Example) -> str:
        """The example's text that a contamination check looks for in training data."""
        return " ".join(str(v) for v in example.fields.values())


class BenchmarkSource:
    """A catalog task's source over one subtask of a benchmark: the data owner's examples of each
    split as rows (:meth:`BenchmarkData.record`), so that the held-out guard of mixtures and the
    catalog see exactly the examples evaluation scores."""

    def __init__(self, data: BenchmarkData, subtask: str) -> None:
        self.data, self.subtask = data, subtask
        self.name = f"{data.name}/{subtask}"

    def splits(self) -> list[str]:
        return self.data.splits()

    def records(self, split: str) -> Iterator[tuple[str, dict[str, Any]]]:
        with malformed_data(self.data.name, f"subtask {self.subtask!r}", self.data.data_dir):
            examples = self.data.split_examples(self.subtask, split)
            for ex in examples:
                yield f"{self.name} ({split}) example {ex.index}", self.data.record(ex)


BENCHMARK_DATA: Registry[type[BenchmarkData]] = Registry("benchmark data")


def get_data(name: str, data_dir: Path | None) -> BenchmarkData:
    """The data owner of benchmark ``name`` reading ``data_dir`` (None: the hub)."""
    return BENCHMARK_DATA.get(name)(data_dir)
