"""Log-likelihoods for encoder-decoder (T5) models: the encoder reads each distinct context once and
every continuation is a decoder row over its encoding."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from flanlab.inference.base import LoglikelihoodRequest, LoglikelihoodResult

if TYPE_CHECKING:
    from flanlab.inference.hf import HFLM

__all__ = ["seq2seq_loglikelihood"]


def seq2seq_loglikelihood(lm: HFLM, requests: Sequence[LoglikelihoodRequest]) -> list[LoglikelihoodResult]:
    """Encoder reads each distinct context once; every option is a decoder row over it."""
    import torch

    start = lm.model.config.decoder_start_token_id
    pad = lm.tokenizer.pad_token_id
    enc_len = lm.max_length
    contexts: dict[str, list[int]] = {}
    items: list[tuple[int, str, list[int]]] = []
    results: list[LoglikelihoodResult | None] = [None] * len(requests)
    for i, r in enumerate(requests):
        cont = lm.encode(r.continuation)
        if not cont:
            results[i] = LoglikelihoodResult(0.0, True)
            continue
        if r.context not in contexts:
            contexts[r.context] = lm.tokenizer(r.context).input_ids[-enc_len:]
        items.append((i, r.context, cont))
    by_ctx: dict[str, list[tuple[int, list[int]]]] = {}
    for i, ctx, cont in items:
        by_ctx.setdefault(ctx, []).append((i, cont))
    order = sorted(by_ctx, key=lambda c: -len(contexts[c]))
    with lm.inference():
        i = 0
        while i < len(order):
            size = lm.rows_per_batch(len(contexts[order[i]]))
            chunk = order[i:i + size]
            i += size
            enc_ids = [contexts[c] for c in chunk]
            width = max(map(len, enc_ids))
            ids = torch.tensor([e + [pad] * (width - len(e)) for e in enc_ids], device=lm.device)
            mask = torch.tensor([[1] * len(e) + [0] * (width - len(e)) for e in enc_ids], device=lm.device)
            enc = lm.model.get_encoder()(input_ids=ids, attention_mask=mask).last_hidden_state
            rows, owners = [], []
            for b, c in enumerate(chunk):
                for idx, cont in by_ctx[c]:
                    rows.append(cont)
                    owners.append((b, idx))
            sel = torch.tensor([b for b, _ in owners], device=lm.device)
            dwidth = max(map(len, rows))
            dec = torch.tensor([[start] + r[:-1] + [pad] * (dwidth - len(r)) for r in rows], device=lm.device)
            logits = lm.model(
                encoder_outputs=(enc.index_select(0, sel),),
                attention_mask=mask.index_select(0, sel),
                decoder_input_ids=dec,
                use_cache=False,
            ).logits.float()
            logprobs = torch.log_softmax(logits, dim=-1)
            for k, ((_, idx), cont) in enumerate(zip(owners, rows, strict=True)):
                n = len(cont)
                lp = logprobs[k, torch.arange(n), torch.tensor(cont)].sum().item()
                greedy = logprobs[k, :n].argmax(-1).tolist() == cont
                results[idx] = LoglikelihoodResult(lp, greedy)
    return results  # type: ignore[return-value]
