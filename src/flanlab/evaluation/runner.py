"""Send requests to an LM in chunks, score them, append per-example records (resumable)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from flanlab.core.io import append_jsonl
from flanlab.core.log import get_logger, progress
from flanlab.evaluation.benchmarks import Benchmark, Example
from flanlab.evaluation.plan import EvalRequest
from flanlab.evaluation.results import Results, score_example
from flanlab.inference.base import LM, GenerateRequest, LoglikelihoodRequest

__all__ = ["run_requests"]

log = get_logger(__name__)


def run_requests(
    lm: LM,
    requests: Sequence[EvalRequest],
    benches: dict[str, Benchmark],
    results: Results,
    examples_path: Path,
    *,
    chunk: int = 64,
    generate_chunk: int = 16,
) -> int:
    """Run the requests not yet in ``results``; each chunk's records are appended to
    ``examples_path`` as soon as it is scored, so an interrupted run resumes where it stopped.
    Returns the number of requests sent."""
    todo = [r for r in requests if r.key not in results.records]
    if len(todo) < len(requests):
        log.info("resuming: %d of %d requests already scored", len(requests) - len(todo), len(requests))
    lookup: dict[tuple[str, str, int], Example] = {}
    for r in todo:
        k = (r.benchmark, r.subtask, r.index)
        if k not in lookup:
            lookup[k] = next(e for e in benches[r.benchmark].examples(r.subtask) if e.index == r.index)
    # Keep each benchmark/strategy's requests together: chunks then share few-shot prefixes.
    with progress() as bar:
        task = bar.add_task("evaluating", total=len(todo))
        for part in _chunks(todo, chunk, generate_chunk):
            ll = [r for r in part if r.kind == "loglikelihood"]
            gen = [r for r in part if r.kind == "generate"]
            records = []
            if ll:
                flat = [LoglikelihoodRequest(r.prompt, c) for r in ll for c in r.continuations]
                scores = lm.loglikelihood(flat)
                pos = 0
                for r in ll:
                    lp = [s.logprob for s in scores[pos:pos + len(r.continuations)]]
                    pos += len(r.continuations)
                    records.append(score_example(benches[r.benchmark], lookup[(r.benchmark, r.subtask, r.index)],
                                                 r, logprobs=lp))
            if gen:
                outs = lm.generate([
                    GenerateRequest(prompt=r.prompt, stop=r.stop, max_new_tokens=r.max_new_tokens,
                                    temperature=r.temperature, top_p=r.top_p, n=r.n, seed=r.seed)
                    for r in gen
                ])
                for r, o in zip(gen, outs, strict=True):
                    records.append(score_example(benches[r.benchmark], lookup[(r.benchmark, r.subtask, r.index)],
                                                 r, outputs=o))
            append_jsonl(examples_path, records)
            results.add(records)
            bar.advance(task, len(part))
    return len(todo)


def _chunks(todo: Sequence[EvalRequest], ll_size: int, gen_size: int) -> list[list[EvalRequest]]:
    """Consecutive chunks, smaller where requests generate: a chunk is the unit that an interruption
    loses (before the request cache), and generation is the slow kind."""
    out: list[list[EvalRequest]] = []
    for r in todo:
        limit = gen_size if r.kind == "generate" else ll_size
        if out and len(out[-1]) < limit and out[-1][0].kind == r.kind:
            out[-1].append(r)
        else:
            out.append([r])
    return out
