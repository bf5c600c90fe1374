"""Requests: every (benchmark, subtask, example, strategy) becomes one request to send."""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from flanlab.core.errors import UserError
from flanlab.core.log import get_logger
from flanlab.evaluation.benchmarks import (
    BENCHMARKS,
    Benchmark,
    Example,
    MissingDataError,
    get_benchmark,
    malformed_data,
)
from flanlab.evaluation.specs import StrategySpec, load_strategies
from flanlab.inference.prompt_format import PromptFormat

__all__ = ["EvalRequest", "apply_prompt_format", "build_requests", "resolve_strategies"]

log = get_logger(__name__)


@dataclass(frozen=True)
class EvalRequest:
    """One request: a generation prompt (``kind="generate"``) or a context with continuations."""

    benchmark: str
    subtask: str
    index: int
    strategy: str
    style: str
    kind: str
    prompt: str
    continuations: tuple[str, ...]
    stop: tuple[str, ...]
    max_new_tokens: int
    temperature: float
    top_p: float
    n: int
    seed: int

    @property
    def key(self) -> str:
        return f"{self.benchmark}/{self.subtask}/{self.index}/{self.strategy}"

    def to_json(self) -> dict[str, Any]:
        """The row written to ``requests.jsonl`` by ``--dry-run``."""
        row = asdict(self)
        if self.kind == "loglikelihood":
            row["context"] = row.pop("prompt")
            for k in ("stop", "max_new_tokens", "temperature", "top_p", "n"):
                row.pop(k)
        else:
            row.pop("continuations")
        row["stop"] = list(self.stop) if self.kind == "generate" else []
        return row


def resolve_strategies(names: Sequence[str], samples: int | None = None) -> list[StrategySpec]:
    """The named strategies plus their companions (self-consistency brings greedy CoT), in order."""
    known = load_strategies()
    out: list[StrategySpec] = []
    for name in names:
        if name not in known:
            from flanlab.core.registry import close_matches

            hint = close_matches(name, known)
            raise UserError(f"unknown strategy {name!r}" + (f"; did you mean {hint}?" if hint else "")
                            + f"; known: {', '.join(known)}")
        s = known[name]
        if samples is not None and s.samples > 1:
            s = s.model_copy(update={"samples": samples})
        for extra in ([known[s.companion]] if s.companion else []) + [s]:
            if extra.name not in [o.name for o in out]:
                out.append(extra)
    return out


def _select(bench: Benchmark, subtasks: Sequence[str] | None) -> list[str]:
    if not subtasks:
        return bench.default_subtasks()
    known = bench.subtasks()
    chosen = [s for s in subtasks if s in known]
    return chosen


def request_for(bench: Benchmark, example: Example, strategy: StrategySpec, seed: int = 0,
                max_new_tokens: int | None = None) -> EvalRequest:
    """Build the request of one example under one strategy."""
    style = bench.spec.styles[strategy.style]
    with malformed_data(bench.name, f"the {strategy.style} prompt of {example.subtask!r}", bench.data_dir):
        prompt = bench.prompt(example, strategy)
    ll = bench.uses_loglikelihood(strategy)
    return EvalRequest(
        benchmark=bench.name, subtask=example.subtask, index=example.index, strategy=strategy.name,
        style=strategy.style, kind="loglikelihood" if ll else "generate", prompt=prompt.text,
        continuations=prompt.continuations, stop=tuple(style.stop),
        max_new_tokens=max_new_tokens or style.max_new_tokens, temperature=strategy.temperature,
        top_p=strategy.top_p, n=strategy.samples, seed=request_seed(seed, bench.name, example),
    )


def apply_prompt_format(requests: Sequence[EvalRequest], fmt: PromptFormat | None,
                        tokenizer: Any = None) -> list[EvalRequest]:
    """The requests as a model finetuned under ``fmt`` reads them (the convention training joins
    inputs and targets with); ``None`` keeps the benchmark's prompts as written."""
    if fmt is None:
        return list(requests)
    return [replace(r, prompt=fmt.prompt(r.prompt, tokenizer),
                    continuations=tuple(fmt.continuation(c) for c in r.continuations)) for r in requests]


def request_seed(seed: int, benchmark: str, example: Example) -> int:
    """A per-example sampling seed: reproducible, but different examples draw different samples."""
    return (seed * 1_000_003 + zlib.crc32(f"{benchmark}/{example.subtask}/{example.index}".encode())) % (2**31)


def build_requests(
    benchmarks: Sequence[str],
    strategies: Sequence[StrategySpec],
    data_dir: Path | None,
    *,
    limit: int | None = None,
    subtasks: Sequence[str] | None = None,
    seed: int = 0,
    max_new_tokens: int | None = None,
    strict: bool = False,
    subtasks_field: str = "--subtasks",
) -> tuple[list[EvalRequest], dict[str, Benchmark], list[str]]:
    """All requests, the benchmark objects, and notes on skipped combinations.

    ``limit`` keeps the first N examples of each subtask; ``subtasks`` restricts every benchmark to
    those of its subtasks that are named (a benchmark with none named runs its defaults); a name no
    benchmark knows is an error. A benchmark whose local data is missing is skipped with a warning
    when others remain to run, unless ``strict``; alone, it is an error. ``subtasks_field`` names
    the subtasks' source in that error (a flag or a config field).
    """
    for name in benchmarks:
        if name not in BENCHMARKS:
            BENCHMARKS.get(name)  # raises with close matches
    reqs: list[EvalRequest] = []
    benches: dict[str, Benchmark] = {}
    notes: list[str] = []
    known: dict[str, list[str]] = {}
    for name in benchmarks:
        bench = get_benchmark(name, data_dir)
        try:
            with malformed_data(name, "its subtasks", data_dir):
                known[name] = bench.subtasks()
                names = _select(bench, subtasks) or bench.default_subtasks()
            own = []
            for strategy in strategies:
                if not bench.supports(strategy.style):
                    notes.append(f"{name}: no {strategy.style} prompt; strategy {strategy.name} skipped")
                    continue
                if strategy.mode == "loglikelihood" and not bench.uses_loglikelihood(strategy):
                    notes.append(f"{name}: strategy {strategy.name} needs options to score; skipped")
                    continue
                for sub in names:
                    examples = bench.examples(sub)
                    for ex in examples[:limit] if limit is not None else examples:
                        own.append(request_for(bench, ex, strategy, seed, max_new_tokens))
        except MissingDataError as e:
            if strict or len(benchmarks) == 1:
                raise
            note = f"{name} skipped: {e}"
            log.warning("%s", note)
            notes.append(note)
            continue
        benches[name] = bench
        reqs.extend(own)
    _check_subtasks(subtasks or [], known, subtasks_field)
    for n in notes:
        if " skipped: " not in n:
            log.info(n)
    return reqs, benches, notes


def _check_subtasks(named: Sequence[str], known: dict[str, list[str]], field: str) -> None:
    """Every named subtask must belong to one of the benchmarks run (a typo would otherwise run all)."""
    from flanlab.core.registry import close_matches

    everything = [s for subs in known.values() for s in subs]
    unknown = [s for s in named if s not in everything]
    if not unknown:
        return
    parts = []
    for s in unknown:
        hint = close_matches(s, everything)
        parts.append(f"{s!r}" + (f" (did you mean {hint}?)" if hint else ""))
    listed = "; ".join(f"{b}: {', '.join(subs[:8])}{', ...' if len(subs) > 8 else ''}" for b, subs in known.items())
    noun = "subtask" if len(parts) == 1 else "subtasks"
    raise UserError(f"{field}: unknown {noun} {', '.join(parts)}; known: {listed or 'none'}")
