"""Stage calls the pipeline makes through the stages' public Python APIs."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from flanlab.core.log import get_logger
from flanlab.core.runs import RunDir

__all__ = ["run_eval"]

log = get_logger(__name__)


def run_eval(config: dict[str, Any], out: Path, source: Path | None = None) -> dict[str, Any]:
    """Evaluate as an eval config says into ``out`` (results.json, examples.jsonl, results.md), as
    ``flanlab eval --config`` does; per-example records make an interrupted evaluation resume."""
    from flanlab.core.paths import data_dir as resolve_data_dir
    from flanlab.core.seed import seed_everything
    from flanlab.evaluation.config import EvalConfig
    from flanlab.evaluation.plan import build_requests, resolve_strategies
    from flanlab.evaluation.results import EXAMPLES_FILE, Results
    from flanlab.evaluation.runner import run_requests
    from flanlab.inference import load_lm

    cfg = EvalConfig.model_validate(config)
    run = RunDir.create(str(out))
    run.write_config(cfg)
    t0 = time.time()
    strategies = resolve_strategies(cfg.strategies, cfg.samples)
    reqs, benches, notes = build_requests(cfg.benchmarks, strategies, resolve_data_dir(cfg.data_dir),
                                          limit=cfg.limit, subtasks=cfg.subtasks, seed=cfg.seed,
                                          max_new_tokens=cfg.max_new_tokens)
    seed_everything(cfg.seed)
    spec = cfg.model
    if spec.cache is None:
        spec = spec.model_copy(update={"cache": str(run.file("requests.sqlite"))})
    results = Results.resume(cfg.model.name, benches, run.file(EXAMPLES_FILE))
    log.info("%d requests (%s × %s) for %s", len(reqs), ",".join(cfg.benchmarks),
             ",".join(s.name for s in strategies), spec.name)
    lm = load_lm(spec)
    t_load = time.time()
    sent = run_requests(lm, reqs, benches, results, run.file(EXAMPLES_FILE))
    wanted = {r.key for r in reqs}
    results.records = {k: v for k, v in results.records.items() if k in wanted}
    return results.write(run, extra={"notes": notes, "requests": len(reqs), "sent": sent,
                                     "seconds": {"load": round(t_load - t0, 1),
                                                 "run": round(time.time() - t_load, 1)}})
