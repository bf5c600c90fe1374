"""The Hugging Face backend: log-likelihoods and generation for causal and seq2seq (T5) models.

Where Flan evaluation spends its time, and what this backend does about it:

- few-shot prompts share long exemplar prefixes: rows are grouped by shared token prefix
  (:mod:`flanlab.inference.planning`), the prefix runs once and each batch reuses its KV cache,
  attending to the one kept copy (:mod:`flanlab.inference.prefix_attention`) rather than a copy per row,
  when scoring and when generating (the rows' cache then holds only their own tokens);
- all options of a question are scored from one row, and logits are computed only at the
  positions that score a continuation (the LM head over the full vocabulary is the costly part
  of a small model);
- self-consistency encodes a prompt once and draws its n samples from views of its cache;
- each sequence stops at its own stop sequence and leaves the batch when it does;
- on the CPU, float32 linear layers run on oneDNN-packed weights
  (:mod:`flanlab.inference.packed_linear`), about twice MKL's rate on the AMD cores we measured.
"""

from __future__ import annotations

import hashlib
import json
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from typing import Any

from flanlab.core.log import get_logger, progress
from flanlab.inference.base import GenerateRequest, LoglikelihoodRequest, LoglikelihoodResult
from flanlab.inference.generation import Generator, is_oom
from flanlab.inference.kv import cache_arg, output_cache, shared_cache
from flanlab.inference.loading import LoadedModel, load_pretrained
from flanlab.inference.packed_linear import CpuLinear
from flanlab.inference.packed_linear import plan as plan_linears
from flanlab.inference.planning import Group, Plan, Target, group_rows, plan_rows
from flanlab.inference.prefix_attention import PrefixKV, eligible, using_prefix_attention
from flanlab.inference.seq2seq_scoring import seq2seq_loglikelihood
from flanlab.inference.spec import ModelSpec
from flanlab.inference.tokens import causal_pair, leading_specials

__all__ = ["HFLM"]

log = get_logger(__name__)


class HFLM:
    """An :class:`~flanlab.inference.base.LM` over a transformers model.

    ``batch_size``: rows per forward pass, or ``"auto"`` (a token budget per pass that halves on
    out-of-memory). ``prefix_reuse`` can be turned off to get the plain computation, and
    ``shared_prefix_attention`` to run batches on copies of the prefix cache instead
    (:mod:`~flanlab.inference.prefix_attention`); tests compare them. ``cpu_linear`` picks the kernels
    of float32 linear layers on the CPU (:mod:`~flanlab.inference.packed_linear`).
    """

    def __init__(
        self,
        loaded: LoadedModel,
        *,
        batch_size: int | str = "auto",
        prefix_reuse: bool = True,
        shared_prefix_attention: bool = True,
        token_budget: int | None = None,
        show_progress: bool = True,
        cpu_linear: CpuLinear = "auto",
    ) -> None:
        self.loaded = loaded
        self.model = loaded.model
        self.tokenizer = loaded.tokenizer
        self.kind = loaded.kind
        self.name = loaded.name
        self.max_length = loaded.max_length
        self.device = loaded.device
        self.batch_size = batch_size
        self.prefix_reuse = prefix_reuse
        self.shared_prefix_attention = shared_prefix_attention
        on_gpu = str(self.device).startswith("cuda")
        # Tokens per forward pass (rows x padded length); CPUs gain little from bigger batches.
        self.token_budget = token_budget or (32768 if on_gpu else 2048)
        # What one more forward pass costs, in tokens (kernel launches, Python, cache copies).
        self.pass_overhead = 512 if on_gpu else 24
        self.show_progress = show_progress
        self.special_prefix = leading_specials(self.tokenizer)
        self._fingerprint: str | None = None
        self.cache_kwarg = cache_arg(self.model)
        # The backbone's name for it (scoring runs the backbone), looked up once, not per batch.
        self.base_cache_kwarg = cache_arg(self.model.base_model) if self.kind == "causal" else self.cache_kwarg
        # Recently used shared prefixes: tokens -> (hidden states, KV cache); see prefix_state.
        self._prefixes: OrderedDict[tuple[int, ...], tuple[Any, Any]] = OrderedDict()
        self.keep_prefixes = 4
        self._weights_version = self._version()
        self.cpu_linear = cpu_linear
        self._linears = plan_linears(self.model, cpu_linear)
        self.generator = Generator(self)

    def _version(self) -> int:
        """Changes when any weight is modified in place (an optimizer step), which makes the kept
        prefix caches stale."""
        return sum(p._version for p in self.model.parameters())

    def _fresh_prefixes(self) -> None:
        version = self._version()
        if version != self._weights_version:
            self._prefixes.clear()
            self._fingerprint = None
            self._weights_version = version

    @contextmanager
    def inference(self) -> Iterator[None]:
        """The block every forward pass of this backend runs in: no autograd, and the linear layers
        on the kernels ``cpu_linear`` chose. Blocks nest."""
        import torch

        with torch.inference_mode(), (self._linears.using() if self._linears is not None else nullcontext()):
            yield

    @classmethod
    def from_spec(cls, spec: ModelSpec, **kwargs: Any) -> HFLM:
        """Load ``spec``'s model and wrap it."""
        return cls(load_pretrained(spec), batch_size=spec.batch_size, cpu_linear=spec.cpu_linear, **kwargs)

    # ------------------------------------------------------------------ identity
    @property
    def fingerprint(self) -> str:
        """Identifies model weights + tokenizer + kind, for the request cache."""
        if self._fingerprint is None:
            h = hashlib.sha256()
            h.update(json.dumps([self.name, self.kind, self.loaded.source, self.max_length]).encode())
            h.update(self.model.config.to_json_string().encode())
            h.update(json.dumps(self.tokenizer.get_vocab(), sort_keys=True).encode())
            # A weight sample catches different weights under the same name (e.g. finetuned copies).
            import torch

            with torch.no_grad():
                for _, p in list(self.model.named_parameters())[:: max(1, len(list(self.model.parameters())) // 8)]:
                    h.update(p.detach().float().flatten()[:4096].cpu().numpy().tobytes())
            self._fingerprint = h.hexdigest()[:24]
        return self._fingerprint

    # ------------------------------------------------------------------ tokenization
    def encode(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False).input_ids

    def _causal_pair(self, context: str, continuation: str, memo: dict[str, list[int]]) -> tuple[list[int], list[int]]:
        return causal_pair(self.tokenizer, self.special_prefix, context, continuation, memo)

    # ------------------------------------------------------------------ loglikelihood
    def loglikelihood(self, requests: Sequence[LoglikelihoodRequest]) -> list[LoglikelihoodResult]:
        """Sum of continuation log-probabilities and whether it is the greedy continuation."""
        if not requests:
            return []
        if self.kind == "seq2seq":
            return seq2seq_loglikelihood(self, requests)
        self._fresh_prefixes()
        memo: dict[str, list[int]] = {}
        pairs = []
        results: list[LoglikelihoodResult | None] = [None] * len(requests)
        index: list[int] = []
        for i, r in enumerate(requests):
            ctx, cont = self._causal_pair(r.context, r.continuation, memo)
            if not cont:
                results[i] = LoglikelihoodResult(0.0, True)
                continue
            full = (ctx + cont)[-(self.max_length + 1):]
            # Left-truncate the context so the model reads at most max_length tokens.
            ctx = full[: len(full) - len(cont)]
            if not ctx:
                raise ValueError(f"request {i}: continuation alone exceeds max_length={self.max_length}")
            pairs.append((ctx, cont))
            index.append(i)
        plan = plan_rows(pairs)
        scores = self._score_plan(plan)
        for t, (lp, greedy) in zip(plan.targets, scores, strict=True):
            results[index[t.index]] = LoglikelihoodResult(lp, greedy)
        return results  # type: ignore[return-value]

    def _groups(self, plan: Plan) -> list[Group]:
        if self.prefix_reuse:
            return group_rows(plan.rows)
        return [Group(0, list(range(len(plan.rows))))]

    def _score_plan(self, plan: Plan) -> list[tuple[float, bool]]:
        by_row: dict[int, list[Target]] = {}
        for t in plan.targets:
            by_row.setdefault(t.row, []).append(t)
        out: list[tuple[float, bool] | None] = [None] * len(plan.targets)
        groups = self._groups(plan)
        total = sum(len(g.rows) for g in groups)
        with self.inference(), progress(transient=True) as bar:
            task = bar.add_task("scoring", total=total) if self.show_progress else None
            for group in groups:
                for row_ids, scores in self._score_group(plan, group, by_row):
                    for t, s in zip(row_ids, scores, strict=True):
                        out[t.index] = s
                if task is not None:
                    bar.advance(task, len(group.rows))
        return out  # type: ignore[return-value]

    def prefix_state(self, tokens: tuple[int, ...]):
        """(hidden states, KV cache) of a shared prefix. The last few prefixes are kept, so the
        chunks an evaluation sends one after another (same subject, same exemplars) reuse them,
        extending the longest kept prefix of ``tokens`` when there is one. Callers run on
        :func:`~flanlab.inference.kv.shared_cache` views of the cache, never on the cache itself."""
        import torch

        best = max((k for k in self._prefixes if len(k) <= len(tokens) and tokens[: len(k)] == k),
                   key=len, default=None)
        if best is not None and len(best) == len(tokens):
            self._prefixes.move_to_end(best)
            return self._prefixes[best]
        base = self.model.base_model
        rest = torch.tensor([tokens[len(best):] if best else tokens], device=self.device)
        if best is not None:
            old_hidden, old_cache = self._prefixes[best]
            cache = shared_cache(old_cache, 1)
            out = base(input_ids=rest, use_cache=True, **{self.base_cache_kwarg: cache})
            hidden = torch.cat([old_hidden, out.last_hidden_state[0]], dim=0)
        else:
            out = base(input_ids=rest, use_cache=True)
            hidden = out.last_hidden_state[0]
        state = (hidden, output_cache(out))
        self._prefixes[tuple(tokens)] = state
        while len(self._prefixes) > self.keep_prefixes:
            self._prefixes.popitem(last=False)
        return state

    def rows_per_batch(self, length: int) -> int:
        if isinstance(self.batch_size, int):
            return max(1, self.batch_size)
        return max(1, self.token_budget // max(1, length))

    def _batches(self, rows: list[int], lengths: dict[int, int]) -> list[list[int]]:
        """Rows sorted longest first, cut into batches that minimise padded tokens plus a per-pass
        overhead (dynamic programming over the sorted lengths), within the token budget. Padding
        is pure waste: fixed-size cuts padded ~50% extra tokens on MMLU questions."""
        ordered = sorted(rows, key=lambda r: -lengths[r])
        if isinstance(self.batch_size, int):
            size = max(1, self.batch_size)
            return [ordered[i:i + size] for i in range(0, len(ordered), size)]
        lens = [lengths[r] for r in ordered]
        n = len(lens)
        best = [0.0] + [float("inf")] * n
        cut = [0] * (n + 1)
        for k in range(1, n + 1):
            # a batch ordered[i:k] is padded to lens[i] (the longest, sorted first)
            i = k - 1
            while i >= 0 and (k - i) * lens[i] <= max(self.token_budget, lens[i]):
                cost = best[i] + (k - i) * lens[i] + self.pass_overhead
                if cost < best[k]:
                    best[k], cut[k] = cost, i
                i -= 1
        batches = []
        k = n
        while k > 0:
            batches.append(ordered[cut[k]:k])
            k = cut[k]
        return batches[::-1]

    def _head(self, hidden):
        """Logits from final hidden states, as the model's own head computes them."""
        import torch

        logits = self.model.get_output_embeddings()(hidden).float()
        cap = getattr(self.model.config, "final_logit_softcapping", None)
        if cap:
            logits = torch.tanh(logits / cap) * cap
        return logits

    def _score_group(self, plan: Plan, group: Group, by_row: dict[int, list[Target]]):
        """Yield (targets, scores) for every row of ``group``."""
        import torch

        p = group.prefix_len
        prefix_hidden = cache = None
        if p > 0:
            prefix_hidden, cache = self.prefix_state(plan.rows[group.rows[0]][:p])
        lengths = {r: len(plan.rows[r]) - p for r in group.rows}
        pending = self._batches(group.rows, lengths)
        while pending:
            batch = pending.pop(0)
            try:
                yield from self._score_batch(plan, batch, p, prefix_hidden, cache, by_row)
            except (RuntimeError, torch.OutOfMemoryError) as e:
                if not is_oom(e) or len(batch) == 1:
                    raise
                if torch.cuda.is_available():
                    torch.cuda.empty_cache()
                self.token_budget = max(1, self.token_budget // 2)
                log.warning("out of memory with %d rows per batch; halving the batch", len(batch))
                half = len(batch) // 2
                pending[:0] = [batch[:half], batch[half:]]

    def _score_batch(self, plan, batch, p, prefix_hidden, cache, by_row):
        import torch

        suffixes = [plan.rows[r][p:] for r in batch]
        width = max(len(s) for s in suffixes)
        pad = self.tokenizer.pad_token_id
        # Right padding: with causal attention, real tokens never see the pads after them.
        ids = torch.tensor([list(s) + [pad] * (width - len(s)) for s in suffixes], device=self.device)
        if cache is not None and self.shared_prefix_attention and eligible(self.model, cache, p + width):
            # Rows attend to the one kept prefix copy; positions continue after it.
            positions = torch.arange(p, p + width, device=self.device).unsqueeze(0)
            with using_prefix_attention(self.model):
                hidden = self.model.base_model(input_ids=ids, position_ids=positions, use_cache=False,
                                               flanlab_prefix=PrefixKV(cache)).last_hidden_state
        else:
            kwargs: dict[str, Any] = {"input_ids": ids, "use_cache": cache is not None}
            if cache is not None:
                kwargs[self.base_cache_kwarg] = shared_cache(cache, len(batch))
            hidden = self.model.base_model(**kwargs).last_hidden_state
        # Gather the hidden states at scored positions only (unique per row), then run the head once.
        picks: list[Any] = []
        slot: dict[tuple[int, int], int] = {}
        wanted: list[tuple[int, list[Target]]] = []
        for b, r in enumerate(batch):
            targets = by_row[r]
            wanted.append((b, targets))
            for t in targets:
                for k in range(len(t.tokens)):
                    pos = t.start + k
                    if (b, pos) not in slot:
                        slot[(b, pos)] = len(picks)
                        picks.append(hidden[b, pos - p] if pos >= p else prefix_hidden[pos])
        logprobs = torch.log_softmax(self._head(torch.stack(picks)), dim=-1)
        greedy = logprobs.argmax(dim=-1).tolist()
        for b, targets in wanted:
            scores = []
            for t in targets:
                idx = [slot[(b, t.start + k)] for k in range(len(t.tokens))]
                lp = logprobs[idx, list(t.tokens)].sum().item()
                scores.append((lp, all(greedy[j] == tok for j, tok in zip(idx, t.tokens, strict=True))))
            yield targets, scores

    def token_logprobs(self, texts: Sequence[str], top: int = 1) -> list[dict[str, list]]:
        """Per-token log-probabilities of each text (causal models), for OpenAI ``echo`` + ``logprobs``.

        Returns per text: ``tokens`` (strings), ``ids``, ``offsets`` (character offset of each token),
        ``logprobs`` (None for the first token) and ``top`` (the ``top`` most likely tokens as
        ``{token: logprob}``, None for the first).
        """
        import torch

        if self.kind != "causal":
            raise ValueError("prompt log-probabilities need a decoder-only model")
        out = []
        with self.inference():
            for text in texts:
                enc = self.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
                ids = self.special_prefix + list(enc.input_ids)
                offsets = [0] * len(self.special_prefix) + [a for a, _ in enc.offset_mapping]
                ids, offsets = ids[-self.max_length:], offsets[-self.max_length:]
                if not ids:
                    out.append({"tokens": [], "ids": [], "offsets": [], "logprobs": [], "top": []})
                    continue
                logits = self.model(input_ids=torch.tensor([ids], device=self.device)).logits[0].float()
                logp = torch.log_softmax(logits, -1)
                lps: list[float | None] = [None]
                tops: list[dict[str, float] | None] = [None]
                k = max(1, top)
                for pos in range(1, len(ids)):
                    row = logp[pos - 1]
                    lps.append(row[ids[pos]].item())
                    values, index = row.topk(k)
                    tops.append({self.tokenizer.decode([int(i)]): v for v, i in zip(values.tolist(), index.tolist(),
                                                                                   strict=True)})
                out.append({
                    "tokens": [self.tokenizer.decode([i]) for i in ids],
                    "ids": ids,
                    "offsets": offsets,
                    "logprobs": lps,
                    "top": tops,
                })
        return out

    # ------------------------------------------------------------------ generation
    def generate(self, requests: Sequence[GenerateRequest]) -> list[list[str]]:
        """``request.n`` texts per request; greedy when temperature is 0, seeded sampling otherwise."""
        if not requests:
            return []
        texts: list[list[str]] = [[] for _ in requests]
        for idx, samples in self.generate_tokens(requests):
            texts[idx] = [self.finish_text(ids, requests[idx].stop) for ids in samples]
        return texts

    def generate_tokens(self, requests: Sequence[GenerateRequest], prompt_ids: Sequence[list[int] | None] | None = None,
                        on_token: Callable[[int, int, int], None] | None = None,
                        ) -> Iterator[tuple[int, list[list[int]]]]:
        """Yield ``(request index, [token ids per sample])`` as batches finish; ``prompt_ids`` and
        ``on_token`` (called per chosen token, for streaming) as in :meth:`Generator.tokens`."""
        self._fresh_prefixes()
        return self.generator.tokens(requests, prompt_ids, on_token)

    def finish_text(self, ids: list[int], stop: Sequence[str]) -> str:
        """Decode generated ids and cut the text at the first stop sequence."""
        return self.generator.finish_text(ids, stop)
