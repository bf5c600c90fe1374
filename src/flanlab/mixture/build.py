"""Build a mixture folder: render every stream, assemble shards, write the manifest last.

Layout of ``--out DIR``::

    shard-00000-of-00004.jsonl ...   the examples (fields: inputs, targets, task, template_id,
                                     format, submixture), each shard written atomically
    manifest.json                    written last and atomically: only a finished run has one
    .work/                           while running: plan, rendered streams, per-shard records

Phase 1 renders each stream (one task in one format): its selected examples, seeded by (seed,
stream) only. All streams of a task (of a few small tasks: see ``_groups``) are rendered by one
job into one file, ``.work/streams/task-N.jsonl`` (N: its first stream), with their metadata in
``task-N.json`` (not a file pair per stream: creating files is most of a small stream's cost).
Phase 2 assembles each shard from its precomputed share of every stream. Both phases are split into independent jobs, so 1 or 8 workers write the same bytes,
and finished jobs are skipped when an interrupted run is rerun.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import random
import shutil
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from flanlab.core.config import dump_config
from flanlab.core.errors import UserError
from flanlab.core.io import atomic_open, atomic_write_json, atomic_write_text
from flanlab.core.log import get_logger, progress
from flanlab.core.memory import release_freed_memory
from flanlab.mixture.config import MixtureConfig
from flanlab.mixture.lengths import LengthStats, word_count
from flanlab.mixture.mixture import Mixture, Stream
from flanlab.mixture.rates import largest_remainder, proportional_weight
from flanlab.mixture.schedule import (
    derive_seed,
    select_mask,
    shard_composition,
    shard_order,
    shard_sizes,
    shuffle_buffer,
    stream_plan,
)
from flanlab.mixture.shards import MANIFEST, shard_name, write_shard
from flanlab.mixture.sources import iter_source, source_identity
from flanlab.mixture.spill import RowSpill

__all__ = ["BuildResult", "build_mixture", "plan_mixture"]

FORMAT_VERSION = 2  # 2: zstd shards compressed as a stream (other bytes than the one-shot frames of 1)
WORK = ".work"
RUN_FILES = {"log.txt", "config.yaml"}  # what the CLI keeps beside the shards
SHUFFLE_BUFFER = 4096
BUFFER_BYTES = 4 << 20  # memory of the texts a stream's shuffle buffer holds; more waits on disk (RowSpill)
TOKEN_BATCH = 256
GROUP_MIN, GROUP_SHARE = 1000, 256  # a render job's least examples: GROUP_MIN, or 1/GROUP_SHARE of the build
MAX_REFILLS = 8  # rounds of replacement draws for examples the few-shot budget drops
log = get_logger("mixture.build")


@dataclass
class Plan:
    """Everything decided before rendering: streams, shares, quotas and the shard composition."""

    mixture: Mixture
    streams: list[Stream]
    shares: list[float]
    quotas: list[int]
    sizes: list[int]
    composition: np.ndarray  # shards × streams
    examples: int


class _StreamBook:
    """What the main process keeps of each rendered stream's metadata as it arrives (its metadata
    file keeps all of it): where its chunk of each shard starts and how many few-shot examples were
    replaced, with its CPU seconds and budget calls added up and its length histograms merged into
    its task's and the mixture's. Every stream's metadata kept as it came (histograms with text
    keys, an offset list per shard) took memory that grew with the build: 2.5 MB as JSON for the
    2,544 streams of a 200k BIG-bench build, several times that as Python objects."""

    def __init__(self, streams: list[Stream]) -> None:
        self.streams = streams
        self.offsets: dict[int, np.ndarray] = {}
        self.replaced: dict[int, int] = {}
        self.cpu: Counter[str] = Counter()
        self.budget_calls = 0
        self.task_lengths: dict[str, dict[str, LengthStats]] = {}
        self.all_lengths: dict[str, LengthStats] = {}

    def __len__(self) -> int:
        return len(self.offsets)

    def add(self, meta: dict[str, Any]) -> None:
        i = meta["index"]
        self.offsets[i] = np.asarray(meta["offsets"], dtype=np.int64)
        if meta.get("replaced"):
            self.replaced[i] = meta["replaced"]
        self.cpu.update(meta.get("cpu", {}))
        self.budget_calls += meta.get("budget_calls", 0)
        task = self.task_lengths.setdefault(self.streams[i].task, {})
        for name, hist in meta["lengths"].items():
            stats = LengthStats.from_json(hist)
            task.setdefault(name, LengthStats()).merge(stats)
            self.all_lengths.setdefault(name, LengthStats()).merge(stats)


@dataclass
class BuildResult:
    out: Path
    manifest: dict[str, Any]
    resumed_streams: int = 0
    resumed_shards: int = 0
    already_complete: bool = False


def default_examples(mixture: Mixture, streams: list[Stream]) -> int:
    """One capped pass: every stream contributes up to its cap (all of it under fixed weights)."""
    if mixture.rule == "fixed":
        return sum(s.size for s in streams)
    return int(sum(proportional_weight(s.size, mixture.cap_of(s)) for s in streams))


def plan_mixture(mixture: Mixture, examples: int | None, shard_size: int, seed: int) -> Plan:
    """Shares, integer quotas (largest remainder) and the per-shard composition."""
    pairs = [(s, w) for s, w in mixture.shares() if s.size > 0]
    if not pairs:
        raise UserError(f"mixture {mixture.name!r}: no stream has any examples")
    streams = [s for s, _ in pairs]
    shares = [w for _, w in pairs]
    total = examples if examples is not None else default_examples(mixture, streams)
    if total <= 0:
        raise UserError(f"mixture {mixture.name!r}: nothing to sample (examples={total})")
    quotas = largest_remainder(total, shares)
    sizes = shard_sizes(total, shard_size)
    return Plan(mixture, streams, shares, quotas, sizes, shard_composition(quotas, sizes, seed), total)


def _fingerprint(config: MixtureConfig, plan: Plan, tokenizer: str | None) -> str:
    ident = {
        "version": FORMAT_VERSION,
        "config": config.model_dump(mode="json"),
        "examples": plan.examples,
        "tokenizer": tokenizer,
        "streams": [[s.key, s.submixture, s.size, q, source_identity(s.source)]
                    for s, q in zip(plan.streams, plan.quotas, strict=True)],
    }
    return hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()


# ---------------------------------------------------------------- phase 1: streams (in workers)

_TOKENIZERS: dict[str, Any] = {}


def resolve_tokenizer(name: str) -> str:
    """Where tokenizer ``name`` loads from: a folder, a model cached by ``flanlab models`` under
    that name (e.g. ``smollm2-135m``, what the shipped Flan 2022 configs name), else a hub id."""
    from flanlab.core.paths import cache_dir

    path = Path(name).expanduser()
    if path.is_dir():
        return str(path.resolve())
    cached = cache_dir("models") / name
    if (cached / "tokenizer.json").is_file() or (cached / "tokenizer_config.json").is_file():
        return str(cached)
    return name


class _Backend:
    """A ``tokenizer.json`` loaded with the ``tokenizers`` library alone, answering what
    :class:`~flanlab.tasks.budget.HFCounter` asks of a fast Hugging Face tokenizer (ids and offsets
    without special tokens)."""

    is_fast = True

    def __init__(self, backend: Any) -> None:
        self.backend_tokenizer = backend

    def __call__(self, text: str, add_special_tokens: bool = True, return_offsets_mapping: bool = False):
        enc = self.backend_tokenizer.encode(text, add_special_tokens=add_special_tokens)
        out: dict[str, Any] = {"input_ids": enc.ids}
        if return_offsets_mapping:
            out["offset_mapping"] = enc.offsets
        return out


def _backend_spec(backend: Any) -> dict[str, Any]:
    spec = json.loads(backend.to_str())
    spec.pop("truncation", None)  # call settings, not what a text becomes
    spec.pop("padding", None)
    return spec


def _light_tokenizer(where: str) -> _Backend | None:
    """The folder's ``tokenizer.json`` through ``tokenizers`` alone (0.1 CPU-s instead of ~3 for
    transformers and torch in every worker), used only when ``AutoTokenizer`` was once seen to load
    exactly the same tokenizer from these files (that verdict is cached, keyed by the files' digest
    and the transformers version); None otherwise."""
    folder = Path(where)
    file = folder / "tokenizer.json"
    if not file.is_file():
        return None
    from importlib.metadata import version

    from tokenizers import Tokenizer

    from flanlab.core.paths import cache_dir

    h = hashlib.sha256(version("transformers").encode())
    for p in sorted(folder.iterdir()):
        if p.is_file() and (p.name.startswith("tokenizer") or p.name in ("special_tokens_map.json",
                                                                           "added_tokens.json", "config.json")):
            h.update(p.name.encode() + b"\0" + p.read_bytes())
    key = h.hexdigest()
    verdicts_file = cache_dir("mixture") / "tokenizer-verdicts.json"
    verdicts = _read_json(verdicts_file) or {}
    try:
        backend = Tokenizer.from_file(str(file))
    except Exception:  # noqa: BLE001 - transformers then loads it, or names what is wrong
        return None
    if key not in verdicts:
        from transformers import AutoTokenizer

        full = AutoTokenizer.from_pretrained(where, trust_remote_code=False)
        same = bool(getattr(full, "is_fast", False)) and _backend_spec(full.backend_tokenizer) == _backend_spec(backend)
        verdicts = {**(_read_json(verdicts_file) or {}), key: same}
        try:
            atomic_write_json(verdicts_file, verdicts, indent=None)
        except OSError as e:  # a read-only cache only costs the next run another check
            log.debug("could not cache the tokenizer check: %s", e)
    return _Backend(backend) if verdicts[key] else None


def _drop_tokenizers() -> None:
    """Free the token counters, whose caches hold tens of MB, and return the freed heap to the OS:
    shard assembly needs neither, and its memory would otherwise sit on rendering's high-water mark."""
    _TOKENIZERS.clear()
    release_freed_memory()


def _tokenizer(name: str | None):
    if name is None:
        return None
    if name not in _TOKENIZERS:
        where = resolve_tokenizer(name)
        try:
            tok = _light_tokenizer(where)
            if tok is None:
                from transformers import AutoTokenizer

                tok = AutoTokenizer.from_pretrained(where, trust_remote_code=False)
        except (OSError, ValueError) as e:
            raise UserError(f"tokenizer {name!r} (counts the token budgets): could not load it from {where} "
                            f"({str(e).splitlines()[0]}); cache it with `flanlab models`, or pass --tokenizer "
                            "a tokenizer folder") from None
        from flanlab.tasks.budget import make_counter

        # One counter per tokenizer: its bound-first checks are what make budgets cheap.
        _TOKENIZERS[name] = make_counter(tok)
    return _TOKENIZERS[name]


def _refill_keep(size: int, short: int, tried: bytearray | None, rng: random.Random) -> bytearray:
    """``short`` replacement indices: drawn from those this pass did not select, else (a pass that
    took every example) from the whole stream."""
    untried = [i for i in range(size) if not tried[i]] if tried is not None else []
    pool = untried if len(untried) >= short else range(size)
    keep = bytearray(size)
    for i in rng.sample(pool, short):
        keep[i] = 1
    return keep


def _stream_examples(job: dict[str, Any], spill_dir: Path):
    """The selected (rendered) examples of one stream, in their final order (rows past the shuffle
    buffer's memory bound wait in a temporary file in ``spill_dir``)."""
    key, size, quota, seed = job["key"], job["size"], job["quota"], job["seed"]
    select_rng = random.Random(derive_seed(seed, "select", key))

    tok = _tokenizer(job["tokenizer"])
    job.setdefault("replaced", 0)

    def passes():
        for epoch, take in stream_plan(size, quota):
            render_seed = derive_seed(seed, "render", key, epoch) % 2**31
            # A partial pass marks its examples up front (1 byte each) so the rest are never rendered.
            keep = None if take == size else select_mask(size, take, select_rng)
            n = 0
            for row in iter_source(job["source"], render_seed, keep, tok):
                n += 1
                yield row
            if n > take or (n < take and job["source"]["type"] != "task"):
                raise UserError(f"task {job['task']!r} ({job['format']}): yielded {n} examples where "
                                f"{take} were planned from its count of {size} (did its data change?)")
            # flan/v2 drops a few-shot example when no exemplar fits the budget. The plan counted it,
            # so replacements are drawn (seeded by the stream alone: same bytes for any worker count)
            # from the examples this pass left out, else re-rendered with a fresh seed.
            tried = keep  # every index this pass has rendered (None: all of them)
            for refill in range(1, MAX_REFILLS + 1):
                if n == take:
                    break
                short = take - n
                job["replaced"] += short
                keep = _refill_keep(size, short, tried, select_rng)
                if tried is not None:
                    tried = bytearray(x | y for x, y in zip(tried, keep, strict=True))
                refill_seed = derive_seed(seed, "refill", key, epoch, refill) % 2**31
                for row in iter_source(job["source"], refill_seed, keep, tok):
                    n += 1
                    yield row
            if n != take:
                raise UserError(f"task {job['task']!r} ({job['format']}): only {n} of {take} planned examples "
                                f"fit the few-shot token budget after {MAX_REFILLS} rounds of replacements; "
                                "leave this format out of the mixture for this task")

    spill = RowSpill(spill_dir, BUFFER_BYTES)
    try:
        rng = random.Random(derive_seed(seed, "shuffle", key))
        yield from map(spill.take, shuffle_buffer(map(spill.put, passes()), SHUFFLE_BUFFER, rng))
    finally:
        spill.close()


def _token_lengths(tok: Any, texts: list[str]) -> list[int]:
    if hasattr(tok, "counts"):  # HFCounter: cached pre-token counts, else one batched tokenizer call
        return tok.counts(texts)
    backend = getattr(tok, "_backend", None)
    if backend is not None:  # one Rust call for the batch, no Python objects per token
        return [len(e.ids) for e in backend.encode_batch(texts, add_special_tokens=False)]
    return [tok.count(t) for t in texts]


def render_stream(job: dict[str, Any], f: Any, base: int, spill_dir: Path) -> dict[str, Any]:
    """Render one stream into the open task file ``f`` from byte ``base`` on; its metadata.

    The metadata holds the byte offset (in the task file) where each shard's chunk starts, the length histograms
    (token lengths of every ``token_stats_every``-th example: tokenizing every example would cost
    more than rendering it) and the CPU seconds of each stage (for the benchmark; not in the manifest).
    """
    start = time.process_time()
    boundaries = np.cumsum(job["chunks"]).tolist()  # lines written when shard k's chunk ends
    offsets = [base]
    tok = _tokenizer(job["tokenizer"])
    every = job.get("token_stats_every", 1)
    seconds0 = getattr(tok, "seconds", 0.0)
    cpu = {"setup": 0.0, "render": 0.0, "budget_tokenize": 0.0, "stats_tokenize": 0.0, "write": 0.0}
    calls0 = getattr(tok, "calls", 0)
    stats = {name: LengthStats() for name in ("input_words", "target_words")}
    if tok is not None:
        stats.update(input_tokens=LengthStats(), target_tokens=LengthStats())
    templates: Counter[str] = Counter()
    # Each line is what json.dumps(row dict, ensure_ascii=False) writes, built from json's own string
    # encoder with the constant fields' text made once per stream (and template) instead of per row.
    quote = json.encoder.encode_basestring
    tails: dict[str, str] = {}
    tail_rest = (f', "format": {quote(job["format"])}, "submixture": {quote(job["submixture"])}}}\n')
    task_field = f', "task": {quote(job["task"])}, "template_id": '
    written = 0
    pos = base
    batch: list[Any] = []

    def flush(f) -> None:
        nonlocal written, pos
        t0 = time.process_time()
        if tok is not None:
            sample = batch[(-written) % every::every]  # the rows whose stream index is a multiple of `every`
            for field, texts in (("input", [r.inputs for r in sample]), ("target", [r.targets for r in sample])):
                stats[f"{field}_tokens"].add_many(_token_lengths(tok, texts))
        t1 = time.process_time()
        cpu["stats_tokenize"] += t1 - t0
        lines = []
        for row in batch:
            tail = tails.get(row.template_id)
            if tail is None:
                tail = tails[row.template_id] = f"{task_field}{quote(row.template_id)}{tail_rest}"
            lines.append(f'{{"inputs": {quote(row.inputs)}, "targets": {quote(row.targets)}{tail}'.encode())
        stats["input_words"].add_many([word_count(r.inputs) for r in batch])
        stats["target_words"].add_many([word_count(r.targets) for r in batch])
        templates.update([r.template_id for r in batch])
        for line in lines:
            pos += len(line)
            written += 1
            if written == next_boundary[0]:
                mark()
        f.write(b"".join(lines))
        batch.clear()
        cpu["write"] += time.process_time() - t1

    def mark() -> None:
        # Record where each shard's chunk starts; empty chunks start where the next one does.
        while len(offsets) <= len(boundaries) and written == boundaries[len(offsets) - 1]:
            offsets.append(pos)
        next_boundary[0] = boundaries[len(offsets) - 1] if len(offsets) <= len(boundaries) else -1

    next_boundary = [-1]  # the line count at which mark() has something to record

    mark()
    cpu["setup"] = time.process_time() - start
    t = time.process_time()
    for row in _stream_examples(job, spill_dir):
        batch.append(row)
        if len(batch) >= TOKEN_BATCH:
            cpu["render"] += time.process_time() - t
            flush(f)
            t = time.process_time()
    cpu["render"] += time.process_time() - t
    flush(f)
    if written != job["quota"]:
        raise RuntimeError(f"stream {job['key']}: wrote {written} examples, planned {job['quota']}")
    # Budget checks run inside rendering; their tokenizer calls are timed apart (see HFCounter).
    budget = getattr(tok, "seconds", 0.0) - seconds0
    cpu["budget_tokenize"] = budget
    cpu["render"] -= budget
    meta = {"index": job["index"], "key": job["key"], "examples": written, "bytes": pos - base,
            "offsets": offsets[: len(boundaries)], "templates": dict(sorted(templates.items())),
            "lengths": {k: v.to_json() for k, v in stats.items()}, "replaced": job.get("replaced", 0),
            "cpu": cpu, "budget_calls": getattr(tok, "calls", 0) - calls0}
    return meta


def _groups(tasks: list[list[dict[str, Any]]], examples: int) -> list[list[dict[str, Any]]]:
    """The streams of consecutive small tasks put together, so that each render job (one file pair)
    has at least ``max(GROUP_MIN, examples // GROUP_SHARE)`` examples, or is one task: creating and
    syncing files cost a small task more than rendering it (984 BIG-bench tasks). Decided by the plan
    alone, so a resumed build finds the same jobs."""
    least = max(GROUP_MIN, examples // GROUP_SHARE)
    out: list[list[dict[str, Any]]] = []
    size = least
    for streams in tasks:
        if size >= least:
            out.append([])
            size = 0
        out[-1].extend(streams)
        size += sum(j["quota"] for j in streams)
    return out


def render_task(job: dict[str, Any]) -> dict[str, Any]:
    """Render every stream (format) of one task, or of a group of small tasks (:func:`_groups`), one
    after the other, into one file (atomically), then write their metadata (one file: its presence
    marks the job done for a resumed build)."""
    metas: list[dict[str, Any]] = []
    with atomic_open(job["path"], "wb", encoding=None) as f:
        base = 0
        for stream in job["streams"]:
            metas.append(render_stream(stream, f, base, Path(job["path"]).parent))
            base += metas[-1]["bytes"]
    atomic_write_json(Path(job["meta"]), {"streams": [m["index"] for m in metas], "metas": metas}, indent=None)
    release_freed_memory()  # the heap pages this job's texts freed: resident memory would creep up job by job
    return {"metas": metas}


# ---------------------------------------------------------------- phase 2: shards (in workers)


def assemble_shard(job: dict[str, Any]) -> dict[str, Any]:
    """Read shard k's chunk of every stream, order it by the shard's seeded permutation, write it."""
    start = time.process_time()
    if _TOKENIZERS:  # the first shard of a worker that rendered
        _drop_tokenizers()
    counts = np.zeros(job["streams"], dtype=np.int64)
    chunks: dict[int, list[bytes]] = {}
    for i, count, offset, path in job["parts"]:
        counts[i] = count
        with open(path, "rb") as f:
            f.seek(offset)
            lines = [f.readline() for _ in range(count)]
        if len(lines) != count or not all(line.endswith(b"\n") for line in lines):
            raise RuntimeError(f"{path}: fewer lines than planned; rebuild with --overwrite")
        chunks[i] = lines[::-1]  # popped from the end in order
    lines = [chunks[i].pop() for i in shard_order(counts, job["seed"], job["index"]).tolist()]
    meta = write_shard(Path(job["path"]), lines, job["format"])
    meta = {**meta, "cpu": round(time.process_time() - start, 6)}
    atomic_write_json(Path(job["meta"]), meta, indent=None)
    return meta


# ---------------------------------------------------------------- orchestration


class _Workers:
    """The build's worker processes, started on first use and kept for both phases: starting one
    costs its imports and set-up (~0.5 CPU-s), so the shard phase reuses the render phase's."""

    def __init__(self, n: int) -> None:
        self.n = n
        self._pool: ProcessPoolExecutor | None = None

    def pool(self) -> ProcessPoolExecutor:
        if self._pool is None:
            import multiprocessing as mp

            # spawn, not fork: workers may load tokenizers/torch, which do not survive a fork safely.
            self._pool = ProcessPoolExecutor(max_workers=self.n, mp_context=mp.get_context("spawn"))
        return self._pool

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None


def _run_jobs(fn, jobs: list[dict[str, Any]], workers: _Workers, description: str, weight: str) -> Iterator[dict]:
    """Each job's result as it finishes (the caller keeps what it needs of it, not all of them)."""
    if not jobs:
        return
    with progress() as bar:
        task = bar.add_task(description, total=sum(j[weight] for j in jobs))
        # One job runs in this process (a one-shard build assembles here: no worker to start).
        if workers.n <= 1 or len(jobs) == 1:
            for job in jobs:
                yield fn(job)
                bar.advance(task, job[weight])
            return
        pool = workers.pool()
        futures = {pool.submit(fn, job): job for job in jobs}
        for fut in as_completed(futures):
            yield fut.result()
            bar.advance(task, futures[fut][weight])


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None  # absent or torn: treated as not done


def _remove_stale_temps(out: Path) -> None:
    """Remove the temporary siblings (``.shard-*.tmp``, ``.manifest.json.*.tmp``) that a killed run's
    atomic writes left behind. Called only by the folder's one live writer (see the lock)."""
    for p in [*out.glob(".shard-*.tmp"), *out.glob(f".{MANIFEST}.*.tmp")]:
        with contextlib.suppress(FileNotFoundError):
            p.unlink()


def _clean(out: Path) -> None:
    """Remove what a mix run writes (shards, manifest, .work), leaving anything else alone."""
    for p in out.glob("shard-*"):
        p.unlink()
    with contextlib.suppress(FileNotFoundError):
        (out / MANIFEST).unlink()
    _remove_stale_temps(out)
    shutil.rmtree(out / WORK, ignore_errors=True)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _prepare_out(out: Path, fingerprint: str, overwrite: bool) -> str:
    """Decide between 'done', 'resume' and 'fresh' for ``out``; clean it when rebuilding."""
    work = out / WORK
    manifest = _read_json(out / MANIFEST) if (out / MANIFEST).exists() else None
    state = _read_json(work / "plan.json")
    lock = _read_json(work / "lock.json")
    if lock and lock.get("pid") != os.getpid() and _pid_alive(int(lock.get("pid", 0))):
        raise UserError(f"{out}: another `flanlab mix` (pid {lock['pid']}) is writing this folder")
    if manifest is not None and not overwrite:
        if manifest.get("fingerprint") == fingerprint:
            broken = [sh["file"] for sh in manifest.get("shards", []) if not (out / sh["file"]).is_file()
                      or (out / sh["file"]).stat().st_size != sh["bytes"]]
            if not broken:
                return "done"
            log.warning("%s: shard(s) %s missing or changed since the build; rebuilding", out, ", ".join(broken[:3]))
            _clean(out)
            return "fresh"
        raise UserError(f"{out}: holds a finished mixture of a different config, seed or size; "
                        "pass --overwrite to rebuild it, or choose another --out")
    if state is not None and state.get("fingerprint") == fingerprint and not overwrite:
        return "resume"
    if state is not None and not overwrite:
        log.warning("%s: an interrupted run of a different config was there; rebuilding", out)
    elif (state is None and manifest is None and out.exists() and not overwrite
          and any(p.name not in RUN_FILES for p in out.iterdir())):
        raise UserError(f"{out}: folder exists and is not a mixture folder; choose an empty --out "
                        "or pass --overwrite")
    _clean(out)
    return "fresh"


def build_mixture(config: MixtureConfig, out: str | Path, *, config_path: str | Path | None = None,
                  workers: int = 1, examples: int | None = None, tokenizer: str | None = None,
                  overwrite: bool = False, data_dir: Path | None = None) -> BuildResult:
    """Resolve, plan and write the mixture ``config`` into ``out`` (see the module docstring);
    ``data_dir``: the task data folder (None: none; the caller resolves any default)."""
    from flanlab.mixture.resolve import resolve_mixture

    out = Path(out)
    examples = examples if examples is not None else config.examples
    tokenizer = tokenizer or config.tokenizer
    root = Path(data_dir).expanduser() if data_dir is not None else None
    from flanlab.tasks.collection.collection import flan_repo_default

    # The FLAN checkout (config, else $FLANLAB_FLAN_REPO) as an absolute path: workers and the
    # manifest see the same one.
    flan = flan_repo_default(config.flan_repo)
    config = config.model_copy(update={"flan_repo": str(Path(flan).expanduser().resolve()) if flan else None})
    cpu0 = time.process_time()
    mixture = resolve_mixture(config, config_path, root.resolve() if root else None, workers=workers)
    plan = plan_mixture(mixture, examples, config.shard_size, config.seed)
    config = config.model_copy(update={"examples": plan.examples, "tokenizer": tokenizer})
    fingerprint = _fingerprint(config, plan, tokenizer)
    if tokenizer:
        log.info("token budgets (inputs 2048, targets 512, exemplars plus query 1920) counted with tokenizer "
                 "%s (%s); token-length statistics from every %d-th example", tokenizer,
                 resolve_tokenizer(tokenizer), config.token_stats_every)
    else:
        log.warning("no tokenizer (config key `tokenizer`, or --tokenizer): flan/v2's token budgets are NOT "
                    "applied and few-shot examples keep all their exemplars")
    mode = _prepare_out(out, fingerprint, overwrite)
    if mode == "done":
        log.info("%s: already complete (manifest matches this config)", out)
        return BuildResult(out, _read_json(out / MANIFEST) or {}, already_complete=True)
    work = out / WORK
    atomic_write_text(out / "config.yaml", dump_config(config))
    (work / "streams").mkdir(parents=True, exist_ok=True)
    (work / "shards").mkdir(parents=True, exist_ok=True)
    atomic_write_json(work / "lock.json", {"pid": os.getpid()})
    atomic_write_json(work / "plan.json", {"fingerprint": fingerprint, "examples": plan.examples,
                                           "streams": [s.key for s in plan.streams]})

    startup = time.process_time() - cpu0
    # Phase 1: streams. One job per task (or group of small tasks) renders all its formats from one
    # load of its examples into one file; big jobs go first so that the workers finish together.
    book = _StreamBook(plan.streams)
    files: dict[int, str] = {}  # stream -> the task file holding it
    by_task: dict[str, list[dict[str, Any]]] = {}
    for i, (stream, quota) in enumerate(zip(plan.streams, plan.quotas, strict=True)):
        if quota == 0:
            continue
        by_task.setdefault(stream.task, []).append(
            {"index": i, "key": stream.key, "task": stream.task, "format": stream.format,
             "submixture": stream.submixture, "source": stream.source, "size": stream.size,
             "quota": quota, "seed": config.seed, "chunks": plan.composition[:, i].tolist(),
             "tokenizer": tokenizer, "token_stats_every": config.token_stats_every})
    task_jobs = []
    for js in _groups(list(by_task.values()), plan.examples):
        name = f"task-{js[0]['index']:05d}"
        path, meta_path = work / "streams" / f"{name}.jsonl", work / "streams" / f"{name}.json"
        for j in js:
            files[j["index"]] = str(path)
        done = _read_json(meta_path)
        if done is not None and done.get("streams") == [j["index"] for j in js] and path.is_file():
            for m in done["metas"]:
                book.add(m)
            continue
        task_jobs.append({"streams": js, "quota": sum(j["quota"] for j in js), "path": str(path),
                          "meta": str(meta_path)})
    resumed_streams = len(book)
    task_jobs.sort(key=lambda t: -t["quota"])
    # No more processes than the larger phase has jobs.
    pool = _Workers(min(workers, max(len(task_jobs), len(plan.sizes))))
    try:
        shard_metas, resumed_shards = _build_phases(task_jobs, book, files, plan, config, out, work, pool,
                                                    mixture.name)
    finally:
        pool.close()
    count = len(plan.sizes)

    _log_stage_cpu(startup, book, [shard_metas[k] for k in range(count)])
    # Timings vary run to run: they stay out of the manifest (deterministic).
    manifest = _manifest(config, plan, book, [{k: v for k, v in shard_metas[i].items() if k != "cpu"}
                                                for i in range(count)], fingerprint)
    atomic_write_json(out / MANIFEST, manifest)
    _remove_stale_temps(out)
    shutil.rmtree(work, ignore_errors=True)
    return BuildResult(out, manifest, resumed_streams, resumed_shards)


def _build_phases(task_jobs: list[dict[str, Any]], book: _StreamBook, files: dict[int, str], plan: Plan,
                  config: MixtureConfig, out: Path, work: Path, workers: _Workers,
                  name: str) -> tuple[dict[int, dict[str, Any]], int]:
    """Phase 1 (render the jobs not done yet, filling ``book``) and phase 2 (assemble the shards not
    done yet); the shards' metadata and how many were resumed."""
    for batch in _run_jobs(render_task, task_jobs, workers, f"render {name}", "quota"):
        for meta in batch["metas"]:
            book.add(meta)
    _drop_tokenizers()  # with one worker this process rendered

    # Phase 2: shards.
    shard_metas: dict[int, dict[str, Any]] = {}
    jobs = []
    count = len(plan.sizes)
    for k, size in enumerate(plan.sizes):
        path = out / shard_name(k, count, config.output_format)
        meta_path = work / "shards" / f"{k:05d}.json"
        meta = _read_json(meta_path)
        if meta is not None and path.is_file() and path.stat().st_size == meta["bytes"]:
            shard_metas[k] = meta
            continue
        row = plan.composition[k]
        parts = [(i, int(row[i]), int(book.offsets[i][k]), files[i])
                 for i in np.flatnonzero(row).tolist()]
        jobs.append({"index": k, "examples": size, "parts": parts, "streams": len(plan.streams),
                     "seed": config.seed, "format": config.output_format, "path": str(path),
                     "meta": str(meta_path)})
    resumed_shards = len(shard_metas)
    for meta in _run_jobs(assemble_shard, jobs, workers, "write shards", "examples"):
        shard_metas[int(meta["file"].split("-")[1])] = meta
    return shard_metas, resumed_shards


def _log_stage_cpu(startup: float, book: _StreamBook, shards: list[dict[str, Any]]) -> None:
    """One ``stage cpu`` log line (JSON): CPU seconds of each build stage summed over the processes
    that ran it (resumed streams count what their first run measured). The benchmark reads it."""
    stages: Counter[str] = Counter({"startup": startup})
    stages.update(book.cpu)
    for meta in shards:
        stages["assemble_shards"] += meta.get("cpu", 0.0)
    calls = book.budget_calls
    log.info("stage cpu: %s", json.dumps({**{k: round(v, 3) for k, v in stages.items()}, "budget_calls": calls}))


def _niv2_exemplar_source(flan_repo: str | None) -> str:
    """Where NIv2 x-shot exemplars come from in this build (flan/v2's files are not public)."""
    if not flan_repo:
        return "the task's positive examples (flanlab's NIv2 templates)"
    from flanlab.tasks.collection.niv2 import niv2_exemplars

    return ("flan/v2 niv2_few_shot_data" if niv2_exemplars(flan_repo)
            else "the task's positive examples (flan/v2/niv2_few_shot_data is not in the checkout)")


def _manifest(config: MixtureConfig, plan: Plan, book: _StreamBook,
              shards: list[dict[str, Any]], fingerprint: str) -> dict[str, Any]:
    """Counts, shares, length statistics and shard hashes. Deterministic: no times, no worker count."""
    total = plan.examples
    tasks: dict[str, dict[str, Any]] = {}
    subs: dict[str, dict[str, Any]] = {}
    for i, (stream, share, quota) in enumerate(zip(plan.streams, plan.shares, plan.quotas, strict=True)):
        t = tasks.setdefault(stream.task, {"submixture": stream.submixture, "category": stream.category,
                                           "available": stream.size, "examples": 0, "target_share": 0.0,
                                           "formats": {}})
        t["examples"] += quota
        t["target_share"] += share
        t["formats"][stream.format] = quota
        if book.replaced.get(i):
            # Few-shot examples flan/v2 drops (no exemplar fits the budget), replaced by other draws.
            t["dropped_unfit"] = t.get("dropped_unfit", 0) + book.replaced[i]
        s = subs.setdefault(stream.submixture, {"examples": 0, "target_share": 0.0, "tasks": 0})
        s["examples"] += quota
        s["target_share"] += share
    for name, t in tasks.items():
        t["share"] = round(t["examples"] / total, 8)
        t["target_share"] = round(t["target_share"], 8)
        t["epochs"] = round(t["examples"] / max(1, t["available"] * len(t["formats"])), 4)
        t["lengths"] = {k: v.summary() for k, v in book.task_lengths.get(name, {}).items()}
        subs[t["submixture"]]["tasks"] += 1
    for s in subs.values():
        s["share"] = round(s["examples"] / total, 8)
        s["target_share"] = round(s["target_share"], 8)
    return {
        "format_version": FORMAT_VERSION,
        "name": config.name,
        "seed": config.seed,
        "examples": total,
        "fingerprint": fingerprint,
        "output_format": config.output_format,
        "fields": ["inputs", "targets", "task", "template_id", "format", "submixture"],
        "tokenizer": config.tokenizer,
        # Token budgets (inputs 2048, targets 512, exemplars plus query 1920) apply with a tokenizer.
        "budgets": "flan (tokenizer)" if config.tokenizer else "none (no tokenizer)",
        "templates": f"flan/v2 from {config.flan_repo}" if config.flan_repo else "flanlab",
        "niv2_exemplars": _niv2_exemplar_source(config.flan_repo),
        "allow_heldout": config.allow_heldout,
        "submixtures": dict(sorted(subs.items(), key=lambda kv: -kv[1]["examples"])),
        "tasks": dict(sorted(tasks.items())),
        "lengths": {k: v.summary() for k, v in sorted(book.all_lengths.items())},
        "shards": shards,
        "config": config.model_dump(mode="json"),
    }
