"""Build the Flan 2022 collection manifest from ``flan_collection_info.csv``.

The rules (what a row becomes, what is excluded and why) are data in ``data/manifest_rules.yaml``;
``scripts/build_flan2022_manifest.py`` runs :func:`build_manifest` and writes the shipped JSON, so
its provenance is reproducible.
"""

from __future__ import annotations

import ast
import csv
import hashlib
import io
import json
import re
from collections import Counter
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from flanlab.core.errors import UserError

__all__ = ["CSV_COLUMNS", "build_manifest", "dump_manifest", "load_rules"]

CSV_COLUMNS = ["Source", "Dataset", "Specific Task Category", "Generic Task Category", "Languages"]
# Categories that mark a Muffin row as the inversion (or the code/dialog counterpart) of a task.
_VARIANT_PREFIXES = ("Inverted ",)
_VARIANT_CATEGORIES = {"Code Error Generation", "Coding Instruction Generation", "Dialog Context Generation"}


def load_rules() -> dict[str, Any]:
    """The shipped derivation rules (``data/manifest_rules.yaml``)."""
    text = resources.files("flanlab.tasks.collection").joinpath("data/manifest_rules.yaml").read_text("utf-8")
    return yaml.safe_load(text)


def _languages(raw: str) -> list[str]:
    raw = raw.strip()
    if raw.startswith("["):
        try:
            value = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            value = None
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return value
    return [raw] if raw else []


def _read_rows(path: Path) -> tuple[list[tuple[int, dict[str, str]]], str]:
    data = path.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise UserError(f"{path}: not UTF-8 ({e.reason} at byte {e.start})") from None
    reader = csv.DictReader(io.StringIO(text, newline=""))
    if reader.fieldnames != CSV_COLUMNS:
        raise UserError(f"{path}:1: expected the header {','.join(CSV_COLUMNS)}, got {reader.fieldnames}")
    rows = []
    for row in reader:
        if any(row.get(c) in (None, "") for c in CSV_COLUMNS[:4]):
            raise UserError(f"{path}:{reader.line_num}: empty field in {row}")
        rows.append((reader.line_num, row))
    return rows, hashlib.sha256(data).hexdigest()


def _is_variant(category: str) -> bool:
    return category.startswith(_VARIANT_PREFIXES) or category in _VARIANT_CATEGORIES


def build_manifest(csv_path: str | Path, rules: dict[str, Any] | None = None) -> dict[str, Any]:
    """Turn the CSV into the manifest: one entry per finetuning task, plus the exclusions and the
    per-collection counts. Raises :class:`UserError` if the result disagrees with the paper's
    counts (so a changed CSV cannot silently ship)."""
    path = Path(csv_path)
    rules = rules or load_rules()
    rows, digest = _read_rows(path)
    sources = set(rules["collection"])
    tasks: dict[str, dict[str, Any]] = {}
    excluded: list[dict[str, str]] = []
    split_dupes = {k: list(v) for k, v in rules.get("muffin_split_duplicates", {}).items()}
    seen_main: Counter[str] = Counter()
    patterns = rules.get("niv2_exclude_patterns", {})

    for line, row in rows:
        source, dataset = row["Source"], row["Dataset"]
        specific, generic = row["Specific Task Category"], row["Generic Task Category"]
        if source not in sources:
            raise UserError(f"{path}:{line}: unknown Source {source!r}; expected one of {sorted(sources)}")
        collection = rules["collection"][source]
        entry_base = {"collection": collection, "submixture": rules["submixture"][source],
                      "source": source, "dataset": dataset, "languages": _languages(row["Languages"])}
        if collection == "niv2":
            name = specific  # the natural-instructions task id, e.g. task001_quoref_question_generation
            reason = rules["niv2_exclude"].get(name) or next(
                (why for pat, why in patterns.items() if pat in name), None)
            if reason:
                excluded.append({"name": f"niv2/{name}", "dataset": dataset, "reason": reason})
                continue
            entry = {**entry_base, "name": f"niv2/{name}", "category": generic}
        elif collection == "t0sf":
            name = specific  # the P3 subset name (dataset + promptsource prompt)
            entry = {**entry_base, "name": f"t0sf/{name}", "category": generic}
        else:
            # Muffin and CoT: several rows per dataset (the task and its variants).
            if _is_variant(specific) or (collection == "cot" and dataset in seen_main):
                key = f"{collection}/{dataset}"
                candidates = [k for k in tasks if k == key or k.startswith(key + "@")]
                # A variant row belongs to the earliest task of its dataset still missing one.
                target = next((k for k in candidates if specific not in tasks[k]["variants"]), None)
                if target is None:
                    raise UserError(f"{path}:{line}: variant {specific!r} of {dataset!r} has no task row before it")
                tasks[target]["variants"].append(specific)
                continue
            seen_main[dataset] += 1
            name = dataset
            if dataset in split_dupes:
                names = split_dupes[dataset]
                if seen_main[dataset] > len(names):
                    raise UserError(f"{path}:{line}: {dataset!r} listed more often than {names}")
                name = names[seen_main[dataset] - 1]
            elif seen_main[dataset] > 1:
                raise UserError(f"{path}:{line}: dataset {dataset!r} listed twice as a task")
            key = f"{collection}/{dataset}" + (f"@{seen_main[dataset]}" if dataset in split_dupes else "")
            entry = {**entry_base, "name": f"{collection}/{name}", "category": specific, "variants": []}
            tasks[key] = entry
            continue
        if entry["name"] in {t["name"] for t in tasks.values()}:
            raise UserError(f"{path}:{line}: task {entry['name']!r} listed twice")
        tasks[entry["name"]] = entry

    order = ("name", "collection", "submixture", "source", "dataset", "category", "languages", "variants")
    entries = sorted(({k: t[k] for k in order if k in t} for t in tasks.values()),
                     key=lambda t: (t["collection"], t["name"]))
    counts = Counter(t["collection"] for t in entries)
    summary = {c: counts.get(c, 0) for c in ("muffin", "t0sf", "niv2", "cot")}
    summary["total"] = len(entries)
    if summary != rules["paper_counts"]:
        raise UserError(f"{path}: derived counts {summary} differ from the paper's {rules['paper_counts']}; "
                        "check data/manifest_rules.yaml")
    _check_heldout(entries, rules)
    return {
        "name": "flan2022",
        "description": "The 1,836 finetuning tasks of Flan 2022 (Chung et al. 2022), by collection.",
        "provenance": {"csv": "flan_cot/flan_collection_info.csv", "csv_sha256": digest, "csv_rows": len(rows),
                       "rules": "flanlab/tasks/collection/data/manifest_rules.yaml",
                       "builder": "scripts/build_flan2022_manifest.py"},
        "counts": summary,
        "excluded": excluded,
        "tasks": entries,
    }


def _check_heldout(entries: list[dict[str, Any]], rules: dict[str, Any]) -> None:
    for bench, words in rules["heldout_sources"].items():
        pattern = re.compile(r"(^|[/_\W])(" + "|".join(map(re.escape, words)) + r")($|[_\W])", re.IGNORECASE)
        for t in entries:
            if pattern.search(t["dataset"]) or pattern.search(t["name"]):
                raise UserError(f"task {t['name']!r} (dataset {t['dataset']!r}) comes from held-out "
                                f"benchmark {bench}; add it to niv2_exclude in manifest_rules.yaml")


def dump_manifest(manifest: dict[str, Any]) -> str:
    """JSON with one task per line (diffs stay readable)."""
    head = {k: v for k, v in manifest.items() if k not in ("tasks", "excluded")}
    parts = [json.dumps(head, ensure_ascii=False, indent=1)[:-2] + ","]
    for key in ("excluded", "tasks"):
        items = ",\n".join("  " + json.dumps(x, ensure_ascii=False) for x in manifest[key])
        parts.append(f' "{key}": [\n{items}\n ]' + ("," if key == "excluded" else ""))
    return "\n".join(parts) + "\n}\n"
