"""The vLLM backend's prompt truncation and ``prompt_logprobs`` arithmetic, as plain functions on the
output shapes vLLM documents (vLLM itself needs a CUDA machine): ``RequestOutput.prompt_logprobs``
is a list with one entry per prompt token, None for the first, else a dict token id -> Logprob
with ``logprob`` and ``rank``."""

from __future__ import annotations

from dataclasses import dataclass

from flanlab.inference.vllm_backend import generation_prompt, score_span, sum_prompt_logprobs


@dataclass
class Logprob:  # the fields of vllm.sequence.Logprob that the backend reads
    logprob: float
    rank: int


def _prompt_logprobs(ids, values, ranks):
    """vLLM's layout: None at position 0, then {actual token: Logprob, top-1 token: Logprob}."""
    out = [None]
    for tok, v, r in zip(ids[1:], values[1:], ranks[1:], strict=True):
        entry = {tok: Logprob(v, r)}
        if r != 1:
            entry[999] = Logprob(v + 1.0, 1)
        out.append(entry)
    return out


def test_prompt_over_the_context_is_truncated_from_the_left():
    ids = list(range(100))
    kept, budget = generation_prompt(ids, max_length=64, max_new_tokens=16)
    assert kept == list(range(52, 100)) and len(kept) + budget == 64
    assert generation_prompt(list(range(10)), 64, 16) == (list(range(10)), 16)  # short prompts untouched
    # A budget as large as the context still leaves one prompt token and shrinks the budget.
    kept, budget = generation_prompt(ids, max_length=64, max_new_tokens=500)
    assert kept == [99] and budget == 63


def test_continuation_at_position_zero_does_not_index_the_none_entry():
    ctx, cont = [5], [6, 7, 8]
    ids, start = score_span(ctx, cont, max_length=16)
    assert (ids, start) == ([5, 6, 7, 8], 1)
    lps = _prompt_logprobs(ids, [0.0, -1.0, -2.0, -0.5], [1, 1, 2, 1])
    assert sum_prompt_logprobs(lps, ids, start) == (-3.5, False)
    # The continuation alone fills the context: the first kept token becomes context, never scored.
    ids, start = score_span([1, 2], list(range(10, 30)), max_length=8)
    assert ids == list(range(22, 30)) and start == 1
    lps = _prompt_logprobs(ids, [0.0] + [-0.25] * 7, [1] * 8)
    assert sum_prompt_logprobs(lps, ids, start) == (-1.75, True)
    # Even when asked to start at 0, the None entry is skipped rather than indexed.
    assert sum_prompt_logprobs(lps, ids, 0) == (-1.75, True)
