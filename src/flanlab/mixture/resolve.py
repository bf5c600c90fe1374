"""From a mixture config to a :class:`Mixture` of sized streams, with the held-out guard."""

from __future__ import annotations

from pathlib import Path

from flanlab.core.config import load_config
from flanlab.core.errors import UserError
from flanlab.mixture.config import MemberConfig, MixtureConfig
from flanlab.mixture.mixture import Mixture, Stream, SubMixture
from flanlab.mixture.rates import canonical_submixture
from flanlab.mixture.sources import count_source

__all__ = ["HeldOutError", "is_heldout", "resolve_mixture"]


class HeldOutError(UserError):
    """A mixture names a task that is a source of an evaluation benchmark."""


def is_heldout(tags: tuple[str, ...] | list[str]) -> bool:
    """Tagged ``heldout`` or ``heldout:<benchmark>``."""
    return any(t == "heldout" or t.startswith("heldout:") for t in tags)


def _file_streams(member: MemberConfig, config: MixtureConfig, base: Path, where: str) -> list[Stream]:
    path = Path(member.file)
    if not path.is_absolute():
        path = base / path
    if not path.is_file():
        raise UserError(f"{where}.file: {path} not found (paths are relative to the config's folder)")
    name = member.name or path.name.split(".")[0]
    fmt = (member.formats or ["raw"])[0]
    if member.formats and len(member.formats) > 1:
        raise UserError(f"{where}.formats: a file member holds one format of pre-rendered examples, "
                        f"got {member.formats}")
    spec = {"type": "file", "path": str(path.resolve()), "task": name, "format": fmt}
    return [Stream(task=name, format=fmt, submixture=canonical_submixture(member.submixture or "custom"),
                   size=count_source(spec), category=member.category or "", weight=member.weight,
                   cap=member.cap, tags=tuple(member.tags), source=spec)]


def _task_streams(member: MemberConfig, config: MixtureConfig, where: str, data_dir: Path | None,
                  allowed: frozenset[str], workers: int) -> list[Stream]:
    from flanlab.mixture import catalog

    infos = catalog.expand(member.task, member.exclude, where, config.split, data_dir, allowed, workers,
                           config.flan_repo)
    streams = []
    for info in infos:
        formats = member.formats or config.formats or list(info.formats)
        usable = [f for f in formats if f in info.formats]
        # A glob takes the formats each task has; a task named alone must have all it is asked for.
        is_glob = any(c in member.task for c in "*?[")
        if member.formats and len(usable) < len(member.formats) and not is_glob:
            missing = sorted(set(member.formats) - set(info.formats))
            raise UserError(f"{where}.formats: task {info.name!r} has no format(s) {missing}; "
                            f"it has {list(info.formats)}")
        if not usable:
            continue
        size = info.size if info.size is not None else catalog.count_task(info.name, config.split, data_dir,
                                                                           config.flan_repo)
        sub = canonical_submixture(member.submixture or info.submixture)
        for fmt in usable:
            spec = {"type": "task", "task": info.name, "format": fmt, "split": config.split,
                    "data_dir": str(data_dir) if data_dir else None, "flan_repo": config.flan_repo}
            streams.append(Stream(task=info.name, format=fmt, submixture=sub, size=size,
                                  category=member.category or info.category, weight=member.weight,
                                  cap=member.cap, tags=tuple(info.tags) + tuple(member.tags), source=spec))
    return streams


def resolve_mixture(config: MixtureConfig, path: str | Path | None = None, data_dir: Path | None = None,
                    allow: frozenset[str] = frozenset(), _seen: tuple[str, ...] = (), workers: int = 1) -> Mixture:
    """Resolve every member of ``config`` (read from ``path``) into sized streams and sub-mixtures.

    Raises :class:`HeldOutError` naming every held-out task not listed in ``allow_heldout``.
    """
    base = Path(path).resolve().parent if path else Path.cwd()
    source = str(path or "<config>")
    allowed = allow | set(config.allow_heldout)
    members: list[Stream | SubMixture] = []
    group_rates: dict[str, float] = {}
    for i, member in enumerate(config.members):
        where = f"{source}: members.{i}"
        if member.mixture:
            sub_path = Path(member.mixture)
            sub_path = sub_path if sub_path.is_absolute() else base / sub_path
            key = str(sub_path.resolve())
            if key in _seen:
                raise UserError(f"{where}.mixture: {sub_path} includes itself")
            sub_config = load_config(sub_path, schema=MixtureConfig)
            if sub_config.flan_repo is None and config.flan_repo is not None:
                sub_config = sub_config.model_copy(update={"flan_repo": config.flan_repo})
            sub = resolve_mixture(sub_config, sub_path, data_dir, frozenset(allowed), (*_seen, key), workers)
            members.append(SubMixture(sub, member.rate))
            continue
        streams = (_file_streams(member, config, base, where) if member.file
                   else _task_streams(member, config, where, data_dir, frozenset(allowed), workers))
        if member.rate is not None:
            for st in streams:
                group_rates[st.submixture] = member.rate
        members.extend(streams)
    refused = sorted({st.task for st in members if isinstance(st, Stream) and is_heldout(st.tags)
                      and st.task not in allowed})
    if refused:
        why = {st.task: ",".join(t for t in st.tags if t.startswith("heldout")) for st in members
               if isinstance(st, Stream) and st.task in refused}
        listed = ", ".join(f"{t!r} ({why[t]})" for t in refused)
        raise HeldOutError(f"{source}: held-out task(s) refused: {listed}; they are sources of evaluation "
                           "benchmarks. List each by name under allow_heldout to use it anyway.")
    return Mixture(name=config.name, members=members, rule=config.rule, temperature=config.temperature,
                   submixture_rates=({canonical_submixture(k): v for k, v in config.submixture_rates.items()}
                                     if isinstance(config.submixture_rates, dict) else config.submixture_rates),
                   caps={canonical_submixture(k): v for k, v in config.caps.items()},
                   default_cap=config.default_cap, group_rates=group_rates)
