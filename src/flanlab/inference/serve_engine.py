"""The model side of ``flanlab serve``: one worker thread owns the model and runs what concurrent
HTTP requests ask for as shared backend batches.

Generation is batched continuously (decoder-only models with plain dynamic KV caches): a request
that arrives while others decode is prefilled at the next step boundary and its rows join the
running batch (its cache left-padded into the batch's); a row that stops leaves at once and its
request is answered as soon as its last row is done, so nobody waits for a whole batch. Scoring
(log-likelihoods, ``echo`` + ``logprobs``) runs between decoding steps. Models whose caches cannot be
merged (sliding-window layers, T5) fall back to collected batches: the worker takes the first request,
keeps collecting while requests keep coming (a window of ~20 ms after each) and runs every generation
it holds as one :meth:`HFLM.generate_tokens` call.

Greedy outputs and seeded samples do not depend on what else is in the batch (each sample has its
own generator), so eight clients get what one client alone gets.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import CancelledError, Future
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
    with lm.inference():
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
    cancelled: bool = False  # its client went away: its rows leave at the next step
    # Continuous generation: token ids per sample per item, filled as rows finish; rows still decoding.
    samples: list[list[list[int] | None]] = field(default_factory=list)
    rows_left: int = 0


@dataclass
class _Row:
    """One decoding sequence of the running batch: sample ``sample`` of item ``item`` of ``job``."""

    job: _Job
    item: int
    sample: int
    req: GenerateRequest
    gen: Any  # the sample's own torch.Generator (None when greedy)
    tokens: list[int] = field(default_factory=list)


def _draws(req: GenerateRequest) -> int:
    """Rows a request decodes: its n samples, or one for greedy (copied n times, as the backend does)."""
    return req.n if req.temperature > 0 else 1


class Batcher:
    """A queue in front of the model; :meth:`start` runs the worker thread.

    ``window_s``: how long the worker, when idle, keeps collecting after the latest request;
    ``max_items``: at most this many prompts / pairs per collected group; ``continuous``: let
    generation requests join a running batch (where the model's caches allow it).
    """

    def __init__(self, lm: Any, *, window_s: float = 0.02, max_items: int = 512, continuous: bool = True) -> None:
        self.lm = lm
        self.window_s = window_s
        self.max_items = max_items
        self.continuous = continuous
        self._joinable: bool | None = None  # decided on the first generation request
        self._queue: queue.Queue[_Job | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._live: dict[int, _Job] = {}  # id(future) -> generation job, until answered (for cancel)
        self.batches: list[int] = []  # requests per collected group (recent), for tests and the benchmark
        self.steps: list[int] = []  # requests in each continuous decoding step (recent), likewise
        self.step_total = 0  # continuous decoding steps run so far
        # The running decoding batch: its rows, KV cache + mask + positions, and next-token logits.
        self._rows: list[_Row] = []
        self._state: dict[str, Any] | None = None
        self._logits: Any = None
        self._waiting: list[_Job] = []  # generation requests not admitted yet (the batch is full)
        self._stop_tokens: set[int] | None = None

    # ------------------------------------------------------------ submitting (any thread)
    def generate(self, items: list[tuple[GenerateRequest, list[int]]],
                 on_token: Callable[[int, int, int], None] | None = None) -> Future:
        """Future of ``[[token ids per sample] per item]``; ``on_token(item, sample, id)`` as they come."""
        job = _Job("generate", items, on_token=on_token)
        self._live[id(job.future)] = job
        job.future.add_done_callback(lambda f: self._live.pop(id(f), None))
        return self._put(job)

    def loglikelihood(self, items: list[LoglikelihoodRequest]) -> Future:
        """Future of the HF backend's :class:`LoglikelihoodResult` per pair."""
        return self._put(_Job("loglikelihood", items))

    def score(self, rows: list[list[int]], top: int) -> Future:
        """Future of a :class:`Scored` per row of token ids."""
        return self._put(_Job("score", rows, top=top))

    def cancel(self, future: Future) -> None:
        """Give up a generation request (its client went away): not started, it never runs;
        decoding, its rows leave the batch at the next step and ``future`` fails with
        :class:`CancelledError`. The other requests of the batch go on."""
        if future.cancel():
            return
        job = self._live.get(id(future))
        if job is not None:
            job.cancelled = True

    def idle(self) -> bool:
        """Whether nothing is queued, waiting or decoding."""
        return not self._rows and not self._waiting and self._queue.empty()

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
        """Finish what was submitted, then stop the worker."""
        if self._thread is not None and self._thread.is_alive():
            self._queue.put(None)
            self._thread.join(timeout)

    def _collect(self, first: _Job) -> tuple[list[_Job], bool]:
        """``first`` and whatever arrives until ``window_s`` passes without a new request (at most
        ten windows in all). Extending on each arrival lets clients whose answers came back together
        but resubmit a few milliseconds apart meet in one batch, instead of alternating in two."""
        return self._take([first], self.window_s)

    def _drain(self) -> tuple[list[_Job], bool]:
        """What is queued now, without waiting (between decoding steps)."""
        return self._take([], 0.0)

    def _take(self, jobs: list[_Job], window_s: float) -> tuple[list[_Job], bool]:
        """``jobs`` plus queued jobs up to ``max_items``, waiting while requests keep arriving within
        ``window_s`` of each other (0: only what is queued now); True once the stop marker is seen."""
        items = sum(len(job.items) for job in jobs)
        start = time.monotonic()
        end = start + window_s
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
            end = min(start + 10 * window_s, time.monotonic() + window_s)
        return jobs, False

    def _loop(self) -> None:
        stopping = False
        while True:
            busy = bool(self._rows or self._waiting)
            if not busy and stopping:
                return
            if busy or stopping:
                jobs, stop = self._drain()
            else:
                first = self._queue.get()
                if first is None:
                    return
                jobs, stop = self._collect(first)
            stopping = stopping or stop
            if jobs:
                self.batches = [*self.batches[-999:], len(jobs)]
            for kind, run in (("score", self._run_score), ("loglikelihood", self._run_loglikelihood)):
                group = [j for j in jobs if j.kind == kind and j.future.set_running_or_notify_cancel()]
                if group:
                    self._run_isolated(run, group, kind)
            group = [j for j in jobs if j.kind == "generate" and j.future.set_running_or_notify_cancel()]
            if group and self._can_join():
                self._waiting += group
            elif group:
                self._run_isolated(self._run_generate, group, "generate")
            if self._waiting:
                self._admit()
            if self._rows:
                self._step()

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
        """Collected batches (models that cannot join a running batch): one backend call."""
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

    # ------------------------------------------------------------ continuous generation
    def _can_join(self) -> bool:
        """Whether new rows can join a running batch: a decoder-only model whose KV cache is made
        of plain dynamic layers (:func:`~flanlab.inference.kv.mergeable`), probed once."""
        if not self.continuous:
            return False
        if self._joinable is None:
            self._joinable = False
            if self.lm.kind == "causal":
                import torch

                from flanlab.inference.kv import mergeable, output_cache

                try:
                    with self.lm.inference():
                        tok = self.lm.tokenizer.eos_token_id or 0
                        out = self.lm.model(input_ids=torch.tensor([[tok]], device=self.lm.device), use_cache=True)
                    self._joinable = mergeable([output_cache(out)])
                except Exception as e:  # an unusual model: collected batches still work
                    log.warning("continuous batching off: %s: %s", type(e).__name__, e)
            log.info("generation requests %s", "join running batches" if self._joinable else
                     "run in collected batches (this model's KV cache cannot be merged)")
        return self._joinable

    def _cap(self) -> int:
        """Most rows decoding at once: the backend's batch size, or its ``max_rows`` with "auto"."""
        size = self.lm.batch_size
        return max(1, size) if isinstance(size, int) else self.lm.generator.max_rows

    def _admit(self) -> None:
        """Prefill waiting requests (first come first) while the batch has room, and join them."""
        rows = len(self._rows)
        take: list[_Job] = []
        while self._waiting:
            job = self._waiting[0]
            if job.cancelled:
                self._waiting.pop(0)
                self._fail(job, CancelledError("the client went away"))
                continue
            need = sum(_draws(req) for req, _ in job.items)
            if (rows or take) and rows + need > self._cap():
                break
            take.append(self._waiting.pop(0))
            rows += need
        if not take:
            return
        try:
            self._join(take)
            return
        except Exception as e:
            if len(take) == 1:
                log.warning("generate request failed: %s", e)
                self._fail(take[0], e)
                return
        for job in take:  # one bad request fails alone
            try:
                self._join([job])
            except Exception as e:
                log.warning("generate request failed: %s", e)
                self._fail(job, e)

    def _prompt(self, req: GenerateRequest, given: list[int] | None) -> list[int]:
        """The ids the model reads, truncated as :meth:`Generator.tokens` truncates them."""
        if req.n < 1 or req.max_new_tokens < 0:
            raise ValueError(f"generate: n must be >= 1 and max_new_tokens >= 0, got {req.n}, {req.max_new_tokens}")
        ids = list(given) if given is not None else self.lm.special_prefix + self.lm.encode(req.prompt)
        keep = max(1, self.lm.max_length - req.max_new_tokens)
        return ids[-keep:] or [self.lm.tokenizer.eos_token_id]

    def _join(self, jobs: list[_Job]) -> None:
        """Prefill ``jobs``' prompts (shared prefixes once, as the backend does) and add their rows
        to the running batch: the caches are merged left-padded, the pads masked out. Nothing
        changes unless every prompt was prefilled."""
        import torch

        from flanlab.inference.generation import sample_seed
        from flanlab.inference.kv import merge_caches, mergeable

        gen = self.lm.generator
        self.lm._fresh_prefixes()
        entries: list[tuple[_Job, int]] = []
        prompts: list[list[int]] = []
        empty: list[tuple[_Job, int]] = []  # max_new_tokens 0: answered without decoding
        for job in jobs:
            for k, (req, given) in enumerate(job.items):
                ids = self._prompt(req, given)
                if req.max_new_tokens == 0:
                    empty.append((job, k))
                else:
                    entries.append((job, k))
                    prompts.append(ids)
        reqs = [job.items[k][0] for job, k in entries]
        parts = []  # (entry index per row, sample per row, state, logits)
        with self.lm.inference():
            for prefix_len, members in (gen.groups(prompts) if prompts else []):
                members = sorted(members, key=lambda i: -len(prompts[i]))
                prefix = self.lm.prefix_state(tuple(prompts[members[0]][:prefix_len]))[1] if prefix_len else None
                # Prefill batches that minimise padded tokens plus a per-pass overhead (the scoring
                # planner's cut): prompts of chat clients differ a lot in length, and a batch padded
                # to its longest prompt spent more on pads than the joiners' own tokens.
                for part in self.lm._batches(members, {i: len(prompts[i]) - prefix_len for i in members}):
                    state, logits = gen._prefill([reqs[i] for i in part], [prompts[i] for i in part], prefix_len,
                                                 prefix)
                    # One row per sample: the prompt's cache is indexed into rows, not recomputed.
                    sel = [(b, s) for b, i in enumerate(part) for s in range(_draws(reqs[i]))]
                    if len(sel) != len(part):
                        idx = torch.tensor([b for b, _ in sel], device=self.lm.device)
                        gen._select(state, idx)
                        logits = logits.index_select(0, idx)
                    parts.append(([part[b] for b, _ in sel], [s for _, s in sel], state, logits))
            if parts and not mergeable([p[2]["cache"] for p in parts]):
                raise RuntimeError("this model's KV cache cannot be merged into a running batch")
            new_rows = [_Row(entries[i][0], entries[i][1], s, reqs[i],
                             torch.Generator(device="cpu").manual_seed(sample_seed(reqs[i].seed, s))
                             if reqs[i].temperature > 0 else None)
                        for p in parts for i, s in zip(p[0], p[1], strict=True)]
            if parts:
                old = [(self._state, self._logits)] if self._state is not None else []
                states = [st for st, _ in old] + [p[2] for p in parts]
                # Room for the longest remaining generation: steps write in place until the next join.
                room = max(r.req.max_new_tokens - len(r.tokens) for r in [*self._rows, *new_rows])
                cache, pads = merge_caches([st["cache"] for st in states], room)
                masks = [torch.cat([st["mask"].new_zeros(st["mask"].shape[0], pad), st["mask"]], dim=1)
                         for st, pad in zip(states, pads, strict=True)]
                state = {"cache": cache, "mask": torch.cat(masks), "pos": torch.cat([st["pos"] for st in states])}
                logits = torch.cat([lg for _, lg in old] + [p[3] for p in parts])
        # Committed: every prompt was prefilled.
        for job in jobs:
            job.samples = [[None] * _draws(req) for req, _ in job.items]
            job.rows_left = sum(_draws(req) for req, _ in job.items)
        if parts:
            self._state, self._logits = state, logits
            self._rows += new_rows
        for job, k in empty:
            for s in range(_draws(job.items[k][0])):
                self._done(_Row(job, k, s, job.items[k][0], None))

    def _step(self) -> None:
        """Pick each row's next token, let finished and cancelled rows leave (answering their
        requests), then run one decoding step for the rest."""
        import torch

        gen = self.lm.generator
        if self._stop_tokens is None:
            self._stop_tokens = gen._stop_ids()
        self.steps.append(len({id(r.job) for r in self._rows}))
        if len(self.steps) > 20000:
            del self.steps[:10000]
        self.step_total += 1
        try:
            with self.lm.inference():
                keep, chosen = [], []
                for a, row in enumerate(self._rows):
                    if row.job.cancelled or row.job.future.done():
                        self._fail(row.job, CancelledError("the client went away"))
                        continue
                    tok = gen._pick(self._logits[a], row.req, row.gen)
                    if tok in self._stop_tokens:
                        self._done(row)
                        continue
                    row.tokens.append(tok)
                    if row.job.on_token is not None:
                        try:
                            row.job.on_token(row.item, row.sample, tok)
                        except Exception as e:  # a listener's failure is its own; decoding goes on
                            log.warning("token callback failed: %s", e)
                    if len(row.tokens) >= row.req.max_new_tokens or gen._hit_stop(row.tokens, row.req.stop):
                        self._done(row)
                        continue
                    keep.append(a)
                    chosen.append(tok)
                if not keep:
                    self._rows, self._state, self._logits = [], None, None
                    return
                if len(keep) < len(self._rows):
                    gen._select(self._state, torch.tensor(keep, device=self.lm.device))
                    self._trim()
                self._rows = [self._rows[a] for a in keep]
                self._logits = gen._step(self._state, torch.tensor([[t] for t in chosen], device=self.lm.device))
        except Exception as e:  # the batch is lost; its requests learn why, the worker goes on
            log.warning("generation step failed for %d requests: %s", len({id(r.job) for r in self._rows}), e)
            for row in self._rows:
                self._fail(row.job, e)
            self._rows, self._state, self._logits = [], None, None

    def _trim(self) -> None:
        """Drop leading cache columns no remaining row attends to (they belonged to rows that
        left), so that under steady traffic the batch's length stays that of its longest context."""
        mask = self._state["mask"]
        live = mask.any(dim=0)
        first = int(live.int().argmax().item()) if bool(live.any()) else 0
        if first > 0:
            self._state["mask"] = mask[:, first:]
            for layer in self._state["cache"].layers:
                layer.drop_front(first)

    def _done(self, row: _Row) -> None:
        """``row`` finished: record its tokens; answer its request when its last row is done."""
        job = row.job
        job.samples[row.item][row.sample] = row.tokens
        job.rows_left -= 1
        if job.rows_left == 0 and not job.future.done():
            job.future.set_result([samples * req.n if _draws(req) == 1 else samples
                                   for samples, (req, _) in zip(job.samples, job.items, strict=True)])

    @staticmethod
    def _fail(job: _Job, e: BaseException) -> None:
        if not job.future.done():
            job.future.set_exception(e)
