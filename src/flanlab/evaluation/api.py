"""The public entry point of evaluation: what ``flanlab eval`` does, callable from Python.

The CLI, the pipeline (``flanlab run``) and keep-best in training all go through :func:`evaluate`,
so one code path decides resume, caching and the files written.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from flanlab.core.errors import UserError
from flanlab.core.log import get_logger
from flanlab.core.runs import RunDir
from flanlab.evaluation.config import EvalConfig

if TYPE_CHECKING:
    from flanlab.evaluation.benchmarks import Benchmark
    from flanlab.evaluation.plan import EvalRequest
    from flanlab.evaluation.specs import StrategySpec

__all__ = ["check_resume", "evaluate", "plan"]

log = get_logger(__name__)


def check_resume(run: RunDir, cfg: EvalConfig) -> None:
    """A reused run folder must hold the same model and seed: its records are reused as they are."""
    import yaml

    if not run.config_file.exists():
        return
    old = yaml.safe_load(run.config_file.read_text(encoding="utf-8")) or {}
    before = ((old.get("model") or {}).get("name"), old.get("seed"))
    if before != (cfg.model.name, cfg.seed):
        raise UserError(f"{run.path}: holds an evaluation of model {before[0]!r} (seed {before[1]}); "
                        "pass another --run-name to evaluate a different model or seed")


def plan(cfg: EvalConfig) -> tuple[list[EvalRequest], dict[str, Benchmark], list[str], list[StrategySpec]]:
    """``(requests, benchmarks, notes, strategies)`` that ``cfg`` asks for; nothing is loaded."""
    from flanlab.core.paths import data_dir as resolve_data_dir
    from flanlab.evaluation.plan import build_requests, resolve_strategies

    strategies = resolve_strategies(cfg.strategies, cfg.samples)
    reqs, benches, notes = build_requests(cfg.benchmarks, strategies, resolve_data_dir(cfg.data_dir),
                                          limit=cfg.limit, subtasks=cfg.subtasks, seed=cfg.seed,
                                          max_new_tokens=cfg.max_new_tokens)
    return reqs, benches, notes, strategies


def evaluate(cfg: EvalConfig, run: RunDir) -> dict[str, Any]:
    """Evaluate ``cfg.model`` on ``cfg.benchmarks`` × ``cfg.strategies`` into ``run``.

    Writes ``config.yaml``, ``examples.jsonl`` (per example, appended as requests finish),
    ``results.json`` and ``results.md``, and returns the results. Rerunning into the same folder
    resumes: finished examples are read back and the SQLite request cache answers the rest.
    """
    from flanlab.core.seed import seed_everything
    from flanlab.evaluation.plan import apply_prompt_format
    from flanlab.evaluation.results import EXAMPLES_FILE, Results
    from flanlab.evaluation.runner import run_requests
    from flanlab.inference import load_lm

    check_resume(run, cfg)
    run.write_config(cfg)
    t0 = time.time()
    reqs, benches, notes, strategies = plan(cfg)
    seed_everything(cfg.seed)
    spec = cfg.model
    if spec.cache is None:
        # The request cache makes an interrupted run resume without recomputing anything.
        spec = spec.model_copy(update={"cache": str(run.file("requests.sqlite"))})
    results = Results.resume(cfg.model.name, benches, run.file(EXAMPLES_FILE))
    log.info("%d requests (%s × %s) for %s", len(reqs), ",".join(cfg.benchmarks),
             ",".join(s.name for s in strategies), spec.name)
    lm = load_lm(spec)
    t_load = time.time()
    reqs = apply_prompt_format(reqs, cfg.prompt_format, getattr(lm, "tokenizer", None))
    sent = run_requests(lm, reqs, benches, results, run.file(EXAMPLES_FILE))
    wanted = {r.key for r in reqs}
    results.records = {k: v for k, v in results.records.items() if k in wanted}
    return results.write(run, extra={"notes": notes, "requests": len(reqs), "sent": sent,
                                     "seconds": {"load": round(t_load - t0, 1),
                                                 "run": round(time.time() - t_load, 1)}})
