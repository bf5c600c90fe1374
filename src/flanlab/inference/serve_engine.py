"""The model side of ``flanlab serve``: one worker thread owns the model and runs what concurrent
HTTP requests ask for as shared backend batches.

Requests are queued; the worker takes the first, keeps collecting while requests keep coming (a
window of ~20 ms after each, against requests that take hundreds to thousands), then runs every generation it holds as
one :meth:`HFLM.generate_tokens` call (prefix sharing and stop handling included), every
log-likelihood as one :meth:`HFLM.loglikelihood` call, and every token-scoring (``echo`` +
``logprobs``) as right-padded batches. Greedy outputs and seeded samples do not depend on what else
is in the batch (each sample has its own generator), so eight clients get what one client alone gets.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from flanlab.core.log import get_logger
from flanlab.inference.base import GenerateRequest, LoglikelihoodRequest

__all__ = ["Batcher", "Scored", "TextStream", "score_rows"]

log = get_logger(__name__)


@dataclass
class Scored:
    """Per-token log-probabilities of one row of token ids: ``logprobs[i]`` of token i given the
    tokens before it (``None`` for the first), ``top[i]`` the most likely ``(id, logprob)`` at that
    position, and ``next`` the most likely next tokens after the row (first: the greedy one)."""

    logprobs: list[float | None]
    top: list[list[tuple[int, float]] | None]
    next: list[tuple[int, float]]


def score_rows(lm: Any, rows: Sequence[list[int]], top: int, token_budget: int | None = None) -> list[Scored]:
    """:class:`Scored` for each row (causal models), in right-padded batches of at most
    ``token_budget`` tokens; the LM head runs once per row over its real tokens only."""
    import torch

    if lm.kind != "causal":
        raise ValueError("token log-probabilities need a decoder-only model")
    budget = token_budget or max(256, lm.token_budget // 2)
    order = sorted(range(len(rows)), key=lambda i: -len(rows[i]))
    batches: list[list[int]] = []
    for i in order:
        if batches and (len(batches[-1]) + 1) * len(rows[batches[-1][0]]) <= budget:
            batches[-1].append(i)
        else:
            batches.append([i])
    out: list[Scored | None] = [None] * len(rows)
    pad = lm.tokenizer.pad_token_id if lm.tokenizer.pad_token_id is not None else 0
    k = max(1, top)
    with torch.inference_mode():
        for batch in batches:
            width = len(rows[batch[0]])
            ids = torch.tensor([rows[i] + [pad] * (width - len(rows[i])) for i in batch], device=lm.device)
            mask = torch.tensor([[1] * len(rows[i]) + [0] * (width - len(rows[i])) for i in batch], device=lm.device)
            # Right padding: real tokens never attend to the pads after them, positions start at 0.
            hidden = lm.model.base_model(input_ids=ids, attention_mask=mask, use_cache=False).last_hidden_state
            for b, i in enumerate(batch):
                row = rows[i]
                logp = torch.log_softmax(lm._head(hidden[b, : len(row)]), dim=-1)
                values, index = logp.topk(k, dim=-1)
                picked = logp[torch.arange(len(row) - 1, device=logp.device), ids[b, 1: len(row)]].tolist()
                tops = [list(zip(index[p].tolist(), values[p].tolist(), strict=True)) for p in range(len(row))]
                out[i] = Scored([None, *picked], [None, *tops[:-1]], tops[-1])
    return out  # type: ignore[return-value]


class TextStream:
    """Turns one sample's token ids, as they come, into text deltas that never show a stop sequence.

    Stop strings can span tokens: text that could still become the start of a stop sequence is held
    back until the next token decides, and so is an incomplete UTF-8 character (``\\ufffd``). The
    deltas joined equal :meth:`Generator.finish_text` of the final ids."""

    def __init__(self, decode: Callable[[list[int]], str], stop: Sequence[str]) -> None:
        self.decode = decode
        self.stop = [s for s in stop if s]
        self.ids: list[int] = []
        self.sent = ""
        self.stopped = False

    def push(self, token: int) -> str:
        """Add a token; return the text that is now safe to send (may be empty)."""
        if self.stopped:
            return ""
        self.ids.append(token)
        text = self.decode(self.ids)
        cut = min((text.find(s) for s in self.stop if s in text), default=-1)
        if cut >= 0:
            self.stopped = True
            return self._emit(text[:cut])
        end = len(text.rstrip("\ufffd"))
        hold = 0
        for s in self.stop:
            for n in range(min(len(s) - 1, end), hold, -1):
                if text[end - n:end] == s[:n]:
                    hold = n
                    break
        return self._emit(text[: end - hold])

    def _emit(self, upto: str) -> str:
        if not upto.startswith(self.sent) or len(upto) <= len(self.sent):
            return ""
        delta = upto[len(self.sent):]
        self.sent = upto
        return delta

    def finish(self, final_text: str) -> str:
        """The rest of ``final_text`` (the complete answer) after what was sent."""
        if not final_text.startswith(self.sent):  # a tokenizer whose decoding is not prefix-stable
            log.warning("streamed text is not a prefix of the final text; sending the remainder")
        rest = final_text[len(self.sent):] if final_text.startswith(self.sent) else ""
        self.sent = final_text
        return rest


@dataclass
class _Job:
    kind: str  # "generate" | "loglikelihood" | "score"
    items: list[Any]
    future: Future = field(default_factory=Future)
    on_token: Callable[[int, int, int], None] | None = None
    top: int = 1


class Batcher:
    """A queue in front of the model; :meth:`start` runs the worker thread.

    ``window_s``: how long the worker keeps collecting after the latest request of a batch;
    ``max_items``: at most this many prompts / pairs per collected batch.
    """

    def __init__(self, lm: Any, *, window_s: float = 0.02, max_items: int = 512) -> None:
        self.lm = lm
        self.window_s = window_s
        self.max_items = max_items
        self._queue: queue.Queue[_Job | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self.batches: list[int] = []  # jobs per collected batch (recent), for tests and the benchmark

    # ------------------------------------------------------------ submitting (any thread)
    def generate(self, items: list[tuple[GenerateRequest, list[int]]],
                 on_token: Callable[[int, int, int], None] | None = None) -> Future:
        """Future of ``[[token ids per sample] per item]``; ``on_token(item, sample, id)`` as they come."""
        return self._put(_Job("generate", items, on_token=on_token))

    def loglikelihood(self, items: list[LoglikelihoodRequest]) -> Future:
        """Future of the HF backend's :class:`LoglikelihoodResult` per pair."""
        return self._put(_Job("loglikelihood", items))

    def score(self, rows: list[list[int]], top: int) -> Future:
        """Future of a :class:`Scored` per row of token ids."""
        return self._put(_Job("score", rows, top=top))

    def _put(self, job: _Job) -> Future:
        if self._thread is None or not self._thread.is_alive():
            raise RuntimeError("the batcher is not running")
        self._queue.put(job)
        return job.future

    # ------------------------------------------------------------ worker
    def start(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._loop, name="flanlab-serve-model", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 60.0) -> None:
        if self._thread is not None and self._thread.is_alive():
            self._queue.put(None)
            self._thread.join(timeout)

    def _collect(self, first: _Job) -> tuple[list[_Job], bool]:
        """``first`` and whatever arrives until ``window_s`` passes without a new request (at most
        ten windows in all). Extending on each arrival lets clients whose answers came back together
        but resubmit a few milliseconds apart meet in one batch, instead of alternating in two."""
        jobs, items = [first], len(first.items)
        start = time.monotonic()
        end = start + self.window_s
        while items < self.max_items:
            left = end - time.monotonic()
            try:
                job = self._queue.get(timeout=left) if left > 0 else self._queue.get_nowait()
            except queue.Empty:
                break
            if job is None:
                return jobs, True
            jobs.append(job)
            items += len(job.items)
            end = min(start + 10 * self.window_s, time.monotonic() + self.window_s)
        return jobs, False

    def _loop(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            jobs, stopping = self._collect(first)
            self.batches = [*self.batches[-999:], len(jobs)]
            for kind, run in (("score", self._run_score), ("loglikelihood", self._run_loglikelihood),
                              ("generate", self._run_generate)):
                group = [j for j in jobs if j.kind == kind and j.future.set_running_or_notify_cancel()]
                if not group:
                    continue
                self._run_isolated(run, group, kind)
            if stopping:
                return

    @staticmethod
    def _run_isolated(run: Callable[[list[_Job]], None], group: list[_Job], kind: str) -> None:
        """Run ``group`` as one batch; if it fails, rerun its unanswered requests one by one, so
        that one bad request (say, over the context length) fails alone."""
        try:
            run(group)
            return
        except Exception as e:
            left = [j for j in group if not j.future.done()]
            if len(left) <= 1:
                log.warning("%s request failed: %s", kind, e)
                for j in left:
                    j.future.set_exception(e)
                return
        for j in left:
            j.on_token = None  # a streamed request already saw the first attempt's tokens; the rest comes at the end
            try:
                run([j])
            except Exception as e:  # this client learns why; the worker goes on
                log.warning("%s request failed: %s", kind, e)
                if not j.future.done():
                    j.future.set_exception(e)

    def _run_score(self, jobs: list[_Job]) -> None:
        rows = [r for j in jobs for r in j.items]
        scored = score_rows(self.lm, rows, max(j.top for j in jobs))
        at = 0
        for j in jobs:
            j.future.set_result(scored[at: at + len(j.items)])
            at += len(j.items)

    def _run_loglikelihood(self, jobs: list[_Job]) -> None:
        results = self.lm.loglikelihood([r for j in jobs for r in j.items])
        at = 0
        for j in jobs:
            j.future.set_result(results[at: at + len(j.items)])
            at += len(j.items)

    def _run_generate(self, jobs: list[_Job]) -> None:
        owner: list[tuple[_Job, int]] = [(j, k) for j in jobs for k in range(len(j.items))]
        reqs = [j.items[k][0] for j, k in owner]
        ids = [j.items[k][1] for j, k in owner]
        results: dict[int, list[Any]] = {id(j): [None] * len(j.items) for j in jobs}
        missing = {id(j): len(j.items) for j in jobs}

        def on_token(idx: int, sample: int, token: int) -> None:
            job, k = owner[idx]
            if job.on_token is not None:
                job.on_token(k, sample, token)

        for idx, samples in self.lm.generate_tokens(reqs, ids, on_token):
            job, k = owner[idx]
            results[id(job)][k] = samples
            missing[id(job)] -= 1
            if missing[id(job)] == 0:  # answer a request as soon as its own prompts are done
                job.future.set_result(results[id(job)])
