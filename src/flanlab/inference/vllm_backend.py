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

__all__ = ["VLLM", "import_vllm"]


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
            ids = (ctx + cont)[-self.max_length:]
            prompts.append({"prompt_token_ids": ids})
            spans.append((i, len(ids) - len(cont), ids))
        params = self._vllm.SamplingParams(max_tokens=1, temperature=0.0, prompt_logprobs=1)
        outputs = self.llm.generate(prompts, params, use_tqdm=False) if prompts else []
        for (i, start, ids), out in zip(spans, outputs, strict=True):
            total, greedy = 0.0, True
            for pos in range(start, len(ids)):
                entry = out.prompt_logprobs[pos][ids[pos]]
                total += entry.logprob
                greedy = greedy and entry.rank == 1
            results[i] = LoglikelihoodResult(total, greedy)
        return results  # type: ignore[return-value]

    def generate(self, requests: Sequence[GenerateRequest]) -> list[list[str]]:
        params = [
            self._vllm.SamplingParams(
                n=r.n, temperature=r.temperature, top_p=r.top_p, max_tokens=r.max_new_tokens,
                stop=list(r.stop) or None, seed=r.seed,
            )
            for r in requests
        ]
        outputs = self.llm.generate([r.prompt for r in requests], params, use_tqdm=False)
        return [[c.text for c in out.outputs] for out in outputs]
