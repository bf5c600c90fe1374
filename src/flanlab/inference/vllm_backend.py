"""The vLLM backend (``backend: vllm``, the ``vllm`` extra), imported only when used.

Generation maps onto ``SamplingParams`` (n, temperature, top_p, seed, stop, max_tokens).
Log-likelihoods read ``prompt_logprobs`` of context + continuation token ids, split exactly as the
HF backend splits them (:func:`flanlab.inference.tokens.causal_pair`); vLLM's automatic prefix
caching shares the few-shot prefixes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from flanlab.core.errors import UserError
from flanlab.inference.base import GenerateRequest, LoglikelihoodRequest, LoglikelihoodResult
from flanlab.inference.spec import ModelSpec
from flanlab.inference.tokens import causal_pair, leading_specials

__all__ = ["VLLM", "generation_prompt", "import_vllm", "score_span", "sum_prompt_logprobs"]


def import_vllm() -> Any:
    """The ``vllm`` module, or a UserError saying how to get it."""
    try:
        import vllm
    except ImportError as e:
        raise UserError(
            f"model.backend=vllm needs vLLM, which is not installed ({e}); on a CUDA machine run "
            "`pip install 'flanlab[vllm]'`, or use model.backend=hf"
        ) from None
    return vllm


def generation_prompt(ids: list[int], max_length: int, max_new_tokens: int) -> tuple[list[int], int]:
    """``(prompt ids, max_tokens)`` that fit the model's context: the prompt keeps its last
    ``max_length - max_new_tokens`` tokens (at least one), as the HF backend does; vLLM itself
    rejects a prompt longer than the context instead of truncating it."""
    budget = max(0, min(max_new_tokens, max_length - 1))
    keep = max(1, max_length - budget)
    return ids[-keep:], budget


def score_span(ctx: list[int], cont: list[int], max_length: int) -> tuple[list[int], int]:
    """``(ids, start)``: context + continuation cut to the model's context from the left, and the
    first position scored. Position 0 has no log-probability (nothing precedes it), so at least one
    token is kept before the scored span even when the continuation alone fills the context."""
    ids = (ctx + cont)[-max_length:]
    return ids, max(1, len(ids) - len(cont))


def sum_prompt_logprobs(prompt_logprobs: Sequence[Any], ids: Sequence[int], start: int) -> tuple[float, bool]:
    """Sum the log-probabilities of ``ids[start:]`` from vLLM's ``prompt_logprobs`` (one entry per
    prompt position: None at position 0, else a dict token id -> Logprob(logprob, rank, ...));
    greedy when every scored token has rank 1."""
    total, greedy = 0.0, True
    for pos in range(start, len(ids)):
        entry = prompt_logprobs[pos]
        if entry is None:  # position 0: no context, so no log-probability to add
            continue
        lp = entry[ids[pos]]
        total += lp.logprob
        greedy = greedy and lp.rank == 1
    return total, greedy


class VLLM:
    """An :class:`~flanlab.inference.base.LM` over ``vllm.LLM`` (decoder-only models)."""

    def __init__(self, spec: ModelSpec, **llm_kwargs: Any) -> None:
        vllm = import_vllm()
        from flanlab.inference.loading import resolve_source

        if spec.kind == "seq2seq":
            raise UserError("model.kind=seq2seq: the vllm backend serves decoder-only models; use backend=hf")
        self._vllm = vllm
        self.name = spec.name
        source = resolve_source(spec.name)
        dtype = "auto" if spec.dtype == "auto" else spec.dtype
        self.llm = vllm.LLM(
            model=source,
            dtype=dtype,
            trust_remote_code=spec.trust_remote_code,
            revision=spec.revision,
            max_model_len=spec.max_length,
            enable_prefix_caching=True,
            **llm_kwargs,
        )
        self.tokenizer = self.llm.get_tokenizer()
        self.max_length = self.llm.llm_engine.model_config.max_model_len
        self._specials = leading_specials(self.tokenizer)
        self.fingerprint = f"vllm:{source}:{spec.revision}:{dtype}"

    def loglikelihood(self, requests: Sequence[LoglikelihoodRequest]) -> list[LoglikelihoodResult]:
        memo: dict[str, list[int]] = {}
        prompts, spans, results = [], [], [None] * len(requests)
        for i, r in enumerate(requests):
            ctx, cont = causal_pair(self.tokenizer, self._specials, r.context, r.continuation, memo)
            if not cont:
                results[i] = LoglikelihoodResult(0.0, True)
                continue
            ids, start = score_span(ctx, cont, self.max_length)
            prompts.append({"prompt_token_ids": ids})
            spans.append((i, start, ids))
        params = self._vllm.SamplingParams(max_tokens=1, temperature=0.0, prompt_logprobs=1)
        outputs = self.llm.generate(prompts, params, use_tqdm=False) if prompts else []
        for (i, start, ids), out in zip(spans, outputs, strict=True):
            results[i] = LoglikelihoodResult(*sum_prompt_logprobs(out.prompt_logprobs, ids, start))
        return results  # type: ignore[return-value]

    def generate(self, requests: Sequence[GenerateRequest]) -> list[list[str]]:
        prompts, params, sent = [], [], []
        results: list[list[str]] = [[""] * r.n for r in requests]  # a zero budget generates nothing
        for i, r in enumerate(requests):
            ids = self._specials + self.tokenizer(r.prompt, add_special_tokens=False).input_ids
            ids, budget = generation_prompt(ids, self.max_length, r.max_new_tokens)
            if budget == 0:
                continue
            prompts.append({"prompt_token_ids": ids})
            params.append(self._vllm.SamplingParams(
                n=r.n, temperature=r.temperature, top_p=r.top_p, max_tokens=budget,
                stop=list(r.stop) or None, seed=r.seed,
            ))
            sent.append(i)
        outputs = self.llm.generate(prompts, params, use_tqdm=False) if prompts else []
        for i, out in zip(sent, outputs, strict=True):
            results[i] = [c.text for c in out.outputs]
        return results
