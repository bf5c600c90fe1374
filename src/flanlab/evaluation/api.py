"""The public entry point of evaluation: what ``flanlab eval`` does, callable from Python.

The CLI, the pipeline (``flanlab run``) and keep-best in training all go through :func:`evaluate`,
so one code path decides resume, caching and the files written.
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

from flanlab.core.log import get_logger
from flanlab.core.runs import RunDir
from flanlab.evaluation.config import EvalConfig

if TYPE_CHECKING:
    from flanlab.evaluation.benchmarks import Benchmark
    from flanlab.evaluation.plan import EvalRequest
    from flanlab.evaluation.specs import StrategySpec

__all__ = ["check_resume", "clear_results", "evaluate", "plan"]

log = get_logger(__name__)


def check_resume(run: RunDir, cfg: EvalConfig) -> None:
    """A reused run folder must record the same result-changing settings: its records are reused as
    they are, so any other setting would leave results the folder's config does not describe."""
    from flanlab.core.runs import check_same_settings
    from flanlab.evaluation.config import NOT_RESULT_CHANGING

    check_same_settings(run, cfg, ignore=NOT_RESULT_CHANGING, what="evaluation")


def clear_results(run: RunDir, cfg: EvalConfig) -> None:
    """``--no-resume``: drop the records, results and (in-folder) request cache of an earlier run."""
    from flanlab.evaluation.results import EXAMPLES_FILE

    names = [EXAMPLES_FILE, "results.json", "results.md", "config.yaml"]
    if cfg.model.cache is None:
        names += ["requests.sqlite", "requests.sqlite-wal", "requests.sqlite-shm"]
    for name in names:
        (run.path / name).unlink(missing_ok=True)
    # An earlier data-parallel run's per-process records and caches, which a later run would merge.
    patterns = ["examples.rank*.jsonl"] + (["requests.rank*.sqlite*"] if cfg.model.cache is None else [])
    for pattern in patterns:
        for path in run.path.glob(pattern):
            path.unlink(missing_ok=True)


def plan(cfg: EvalConfig) -> tuple[list[EvalRequest], dict[str, Benchmark], list[str], list[StrategySpec]]:
    """``(requests, benchmarks, notes, strategies)`` that ``cfg`` asks for; nothing is loaded."""
    from flanlab.evaluation.plan import build_requests, resolve_strategies

    strategies = resolve_strategies(cfg.strategies, cfg.samples)
    reqs, benches, notes = build_requests(cfg.benchmarks, strategies, cfg.data_dir,
                                          limit=cfg.limit, subtasks=cfg.subtasks, seed=cfg.seed,
                                          max_new_tokens=cfg.max_new_tokens, strict=cfg.strict)
    return reqs, benches, notes, strategies


def evaluate(cfg: EvalConfig, run: RunDir, planned: tuple | None = None) -> dict[str, Any]:
    """Evaluate ``cfg.model`` on ``cfg.benchmarks`` × ``cfg.strategies`` into ``run``.

    Writes ``config.yaml``, ``examples.jsonl`` (per example, appended as requests finish),
    ``results.json`` and ``results.md``, and returns the results. Rerunning into the same folder
    resumes: finished examples are read back and the SQLite request cache answers the rest.
    The folder's recorded settings are checked and the plan is built (``planned``: one already
    built by :func:`plan`) before anything is written.
    """
    from flanlab.core.seed import seed_everything
    from flanlab.evaluation.parallel import merge_rank_files, processes, rank_file
    from flanlab.evaluation.plan import apply_prompt_format
    from flanlab.evaluation.results import EXAMPLES_FILE, Results
    from flanlab.evaluation.runner import run_requests
    from flanlab.inference import load_lm

    procs = processes()
    check_resume(run, cfg)
    t0 = time.time()
    reqs, benches, notes, strategies = planned or plan(cfg)
    examples = run.file(EXAMPLES_FILE)
    if procs.main:
        run.write_config(cfg)
        # Records an interrupted data-parallel run left in rank files count as done.
        merge_rank_files(run.path, examples, [r.key for r in reqs])
    procs.barrier()
    seed_everything(cfg.seed)
    spec = cfg.model
    if spec.cache is None:
        # The request cache makes an interrupted run resume without recomputing anything (one
        # SQLite file per process: they write at the same time).
        name = "requests.sqlite" if procs.world == 1 else f"requests.rank{procs.rank}.sqlite"
        spec = spec.model_copy(update={"cache": str(run.file(name))})
    spec = spec.model_copy(update={"device": procs.device(spec.device)})
    results = Results.resume(cfg.model.name, benches, examples)
    todo = [r for r in reqs if r.key not in results.records]
    mine = todo[procs.rank::procs.world]
    log.info("%d requests (%s × %s) for %s%s", len(reqs), ",".join(cfg.benchmarks),
             ",".join(s.name for s in strategies), spec.name,
             f"; {len(mine)} of the {len(todo)} pending on process {procs.rank} of {procs.world}"
             if procs.world > 1 else "")
    lm = load_lm(spec)
    t_load = time.time()
    mine = apply_prompt_format(mine, cfg.prompt_format, getattr(lm, "tokenizer", None))
    sent = run_requests(lm, mine, benches, results, examples if procs.world == 1 else rank_file(run.path, procs.rank))
    procs.barrier()
    if procs.world > 1:
        if not procs.main:
            procs.barrier()  # the main process merges and writes the results
            return json.loads(run.file("results.json").read_text(encoding="utf-8"))
        results.add(merge_rank_files(run.path, examples, [r.key for r in reqs]))
        sent = len(todo)
    wanted = {r.key for r in reqs}
    results.records = {k: v for k, v in results.records.items() if k in wanted}
    data = results.write(run, extra={"notes": notes, "requests": len(reqs), "sent": sent,
                                     "seconds": {"load": round(t_load - t0, 1),
                                                 "run": round(time.time() - t_load, 1)}})
    procs.barrier()
    return data
