"""The Flan 2022 collection manifest: 1,836 finetuning tasks by collection, with categories.

Shipped as ``data/flan2022_manifest.json`` (built from ``flan_collection_info.csv`` by
``scripts/build_flan2022_manifest.py``) and validated when loaded. Task names are
``<collection>/<name>``: ``muffin/anli_r1``, ``t0sf/cos_e_v1.11_i_think``,
``niv2/task001_quoref_question_generation``, ``cot/cot_gsm8k``.
"""

from __future__ import annotations

import fnmatch
import json
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from flanlab.core.errors import UserError

__all__ = [
    "COLLECTIONS",
    "LADDER",
    "CollectionTask",
    "Manifest",
    "ManifestError",
    "load_manifest",
]

COLLECTIONS = ("muffin", "t0sf", "niv2", "cot")
# The paper's task-count ladder (Chung et al. 2022, section 3): which collections each rung adds.
LADDER: dict[int, tuple[str, ...]] = {
    9: ("cot",),
    89: ("cot", "muffin"),
    282: ("cot", "muffin", "t0sf"),
    1836: ("cot", "muffin", "t0sf", "niv2"),
}
_SHIPPED = "data/flan2022_manifest.json"
_FIELDS = {"name": str, "collection": str, "submixture": str, "source": str, "dataset": str,
           "category": str, "languages": list}


class ManifestError(ValueError, UserError):
    """A malformed manifest: names the file, the task index and the field."""


@dataclass(frozen=True)
class CollectionTask:
    """One finetuning task of the collection."""

    name: str
    collection: str
    submixture: str
    source: str
    dataset: str
    category: str
    languages: tuple[str, ...] = ()
    variants: tuple[str, ...] = ()

    @property
    def short_name(self) -> str:
        """The name without its collection prefix (``anli_r1``)."""
        return self.name.split("/", 1)[1]


@dataclass(frozen=True)
class Manifest:
    """The tasks of a collection, the ones excluded (with reasons) and where they came from."""

    name: str
    tasks: tuple[CollectionTask, ...]
    excluded: tuple[dict[str, str], ...] = ()
    provenance: dict[str, Any] = field(default_factory=dict)
    path: str = "<memory>"

    def __len__(self) -> int:
        return len(self.tasks)

    def counts(self) -> dict[str, int]:
        """Tasks per collection, in the paper's order."""
        found = Counter(t.collection for t in self.tasks)
        return {c: found.get(c, 0) for c in COLLECTIONS}

    def categories(self) -> dict[str, int]:
        """Tasks per category, most frequent first."""
        return dict(Counter(t.category for t in self.tasks).most_common())

    def get(self, name: str) -> CollectionTask:
        for t in self.tasks:
            if t.name == name:
                return t
        from flanlab.core.registry import close_matches

        hint = close_matches(name, [t.name for t in self.tasks])
        raise UserError(f"no task {name!r} in collection {self.name}" + (f"; did you mean {hint}?" if hint else ""))

    def select(
        self,
        collections: Iterable[str] | None = None,
        categories: Iterable[str] | None = None,
        names: Iterable[str] | None = None,
        size: int | None = None,
    ) -> list[CollectionTask]:
        """Tasks filtered by collection, category (case-insensitive), name glob and ladder ``size``
        (9, 89, 282 or 1836)."""
        chosen = list(self.tasks)
        if size is not None:
            if size not in LADDER:
                raise UserError(f"task-count {size} is not a rung of the paper's ladder; expected one of "
                                f"{', '.join(map(str, LADDER))}")
            collections = set(LADDER[size]) & set(collections) if collections else LADDER[size]
        if collections is not None:
            wanted = set(collections)
            unknown = wanted - set(COLLECTIONS)
            if unknown:
                raise UserError(f"unknown collection {sorted(unknown)[0]!r}; expected one of {', '.join(COLLECTIONS)}")
            chosen = [t for t in chosen if t.collection in wanted]
        if categories is not None:
            cats = {c.lower() for c in categories}
            chosen = [t for t in chosen if t.category.lower() in cats]
        if names is not None:
            globs = list(names)
            chosen = [t for t in chosen if any(fnmatch.fnmatchcase(t.name, g) for g in globs)]
        return chosen


def _parse_task(item: Any, index: int, where: str) -> CollectionTask:
    spot = f"{where}: tasks[{index}]"
    if not isinstance(item, dict):
        raise ManifestError(f"{spot}: expected an object, got {type(item).__name__}")
    for key, kind in _FIELDS.items():
        if not isinstance(item.get(key), kind):
            raise ManifestError(f"{spot}: field {key!r}: expected {kind.__name__}, got {item.get(key)!r}")
    if item["collection"] not in COLLECTIONS:
        raise ManifestError(f"{spot}: field 'collection': expected one of {', '.join(COLLECTIONS)}, "
                            f"got {item['collection']!r}")
    if not item["name"].startswith(item["collection"] + "/"):
        raise ManifestError(f"{spot}: field 'name': expected '{item['collection']}/...', got {item['name']!r}")
    return CollectionTask(
        name=item["name"], collection=item["collection"], submixture=item["submixture"], source=item["source"],
        dataset=item["dataset"], category=item["category"], languages=tuple(item["languages"]),
        variants=tuple(item.get("variants", ())),
    )


def parse_manifest(data: Any, where: str = "<memory>") -> Manifest:
    """Validate a manifest object: every task well-formed, names unique, counts as declared."""
    if not isinstance(data, dict) or not isinstance(data.get("tasks"), list):
        raise ManifestError(f"{where}: expected an object with a 'tasks' list")
    tasks = tuple(_parse_task(item, i, where) for i, item in enumerate(data["tasks"]))
    seen: set[str] = set()
    for i, t in enumerate(tasks):
        if t.name in seen:
            raise ManifestError(f"{where}: tasks[{i}]: duplicate task name {t.name!r}")
        seen.add(t.name)
    manifest = Manifest(str(data.get("name", "collection")), tasks, tuple(data.get("excluded", ())),
                        dict(data.get("provenance", {})), where)
    declared = data.get("counts")
    if declared is not None:
        actual = {**manifest.counts(), "total": len(tasks)}
        if {k: declared.get(k) for k in actual} != actual:
            raise ManifestError(f"{where}: field 'counts': declares {declared} but the tasks give {actual}")
    return manifest


def load_manifest(path: str | Path | None = None) -> Manifest:
    """The shipped Flan 2022 manifest, or one from ``path``."""
    if path is None:
        return _shipped()
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ManifestError(f"{path}: manifest not found") from None
    except json.JSONDecodeError as e:
        raise ManifestError(f"{path}:{e.lineno}: invalid JSON ({e.msg})") from None
    return parse_manifest(data, str(path))


@lru_cache(maxsize=1)
def _shipped() -> Manifest:
    ref = resources.files("flanlab.tasks.collection").joinpath(_SHIPPED)
    return parse_manifest(json.loads(ref.read_text(encoding="utf-8")), f"flanlab/tasks/collection/{_SHIPPED}")


def names(tasks: Sequence[CollectionTask]) -> list[str]:
    return [t.name for t in tasks]
