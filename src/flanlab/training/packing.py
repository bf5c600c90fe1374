"""Rows and micro-batches: several examples packed per row and masked apart, or one per row.

Every row is a list of segments (examples). Collation turns rows into tensors plus *segment ids*
(0 = padding, 1..n = the example a token belongs to), from which the masks are built:

- decoder-only: block-diagonal causal self-attention, position ids restarting at 0 per example;
- encoder-decoder: encoder self-attention, decoder causal self-attention and decoder→encoder
  cross-attention, each allowed only within the same example.

Masks are additive floats (0 = attend, dtype-min = blocked): under eager attention transformers
*adds* the mask to the scores, so a boolean mask would silently block nothing. Padding positions
attend to themselves only, so no softmax row is empty. Labels are aligned with the position that
predicts them (no shift at loss time), so nothing can leak across a segment boundary.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from flanlab.training.data import Tokenized
from flanlab.training.segment_attention import Segments

__all__ = ["Batch", "Row", "collate", "fit", "group_by_length", "pack"]

IGNORE = -100


@dataclass
class Row:
    """Examples sharing one row."""

    segments: list[Tokenized] = field(default_factory=list)
    enc_len: int = 0  # encoder tokens (enc-dec) or all tokens (decoder-only)
    dec_len: int = 0  # decoder tokens (enc-dec only)


@dataclass
class Batch:
    """A micro-batch: model inputs plus counts for the loss and throughput."""

    tensors: dict[str, Any]
    labels: Any
    n_target: int  # tokens that carry loss
    n_real: int  # non-pad tokens (both sides for enc-dec)
    n_slots: int  # all token positions, padding included
    n_examples: int
    # Decoder-only, ``attention="segments"``: the pieces per-example attention splits positions into.
    segments: Segments | None = None


def fit(ex: Tokenized, *, encoder_decoder: bool, max_length: int, target_length: int) -> Tokenized:
    """Cut an example so it fits one row: the target is kept (up to the cap), the prompt loses its
    start (after BOS for decoder-only)."""
    if encoder_decoder:
        return Tokenized(ex.prompt[-max_length:], ex.target[:target_length])
    target = ex.target[: max(1, max_length - 2)]
    room = max_length - len(target)
    prompt = ex.prompt if len(ex.prompt) <= room else ex.prompt[:1] + ex.prompt[len(ex.prompt) - room + 1:]
    return Tokenized(prompt, target)


def _sizes(ex: Tokenized, encoder_decoder: bool) -> tuple[int, int]:
    return (len(ex.prompt), len(ex.target)) if encoder_decoder else (len(ex), 0)


def pack(examples: Iterable[Tokenized], *, encoder_decoder: bool, max_length: int, target_length: int,
         window: int, rng: random.Random | None = None) -> Iterator[Row]:
    """First-fit-decreasing over windows of ``window`` examples; rows come out in a deterministic
    order, shuffled within the window under ``rng`` when given (first-fit-decreasing fills rows
    longest first, so unshuffled rows are a length curriculum: in a 30-step quickstart the target
    tokens per step fell from 165 to 8 as few-shot rows with one-word answers came last).
    Decoder-only rows hold at most ``max_length`` tokens; encoder-decoder rows at most
    ``max_length`` encoder and ``target_length`` decoder tokens."""
    buf: list[Tokenized] = []

    def flush() -> Iterator[Row]:
        rows: list[Row] = []
        order = sorted(range(len(buf)), key=lambda i: (-sum(_sizes(buf[i], encoder_decoder)), i))
        for i in order:
            ex = buf[i]
            e, d = _sizes(ex, encoder_decoder)
            for row in rows:
                if row.enc_len + e <= max_length and row.dec_len + d <= target_length:
                    break
            else:
                row = Row()
                rows.append(row)
            row.segments.append(ex)
            row.enc_len += e
            row.dec_len += d
        buf.clear()
        if rng is not None:
            rng.shuffle(rows)
        yield from rows

    for ex in examples:
        buf.append(fit(ex, encoder_decoder=encoder_decoder, max_length=max_length, target_length=target_length))
        if len(buf) >= window:
            yield from flush()
    if buf:
        yield from flush()


def group_by_length(examples: Iterable[Tokenized], *, encoder_decoder: bool, max_length: int,
                    target_length: int, batch_size: int, window: int, rng: random.Random) -> Iterator[Row]:
    """One example per row; within each window examples are sorted by length and cut into batches
    of similar lengths, whose order is then shuffled (so lengths are not a curriculum)."""
    buf: list[Tokenized] = []

    def flush() -> Iterator[Row]:
        buf.sort(key=lambda ex: _sizes(ex, encoder_decoder))
        chunks = [buf[i:i + batch_size] for i in range(0, len(buf), batch_size)]
        rng.shuffle(chunks)
        for chunk in chunks:
            for ex in chunk:
                e, d = _sizes(ex, encoder_decoder)
                yield Row([ex], e, d)
        buf.clear()

    for ex in examples:
        buf.append(fit(ex, encoder_decoder=encoder_decoder, max_length=max_length, target_length=target_length))
        if len(buf) >= max(window, batch_size):
            yield from flush()
    if buf:
        yield from flush()


def _additive(allowed: Any, dtype: Any) -> Any:
    import torch

    mask = torch.zeros(allowed.shape, dtype=dtype)
    mask.masked_fill_(~allowed, torch.finfo(dtype).min)
    return mask.unsqueeze(1)  # [B, 1, Q, K]


def _pad_diagonal(allowed: Any, seg: Any) -> Any:
    import torch

    eye = torch.eye(seg.shape[1], dtype=torch.bool).unsqueeze(0)
    return allowed | (eye & (seg == 0).unsqueeze(-1))


def collate(rows: list[Row], *, encoder_decoder: bool, pad_id: int, start_id: int | None = None,
            mask_dtype: Any = None, attention: str = "mask") -> Batch:
    """Tensors for a micro-batch of rows (padded to the longest row).

    Decoder-only gives ``input_ids``, ``position_ids`` and (``attention="mask"``) a 4D
    ``attention_mask`` or (``attention="segments"``) one unpadded row of all the examples with the
    pieces for per-example attention (:mod:`~flanlab.training.segment_attention`; the model must have
    been switched to it); encoder-decoder gives ``input_ids``, ``decoder_input_ids`` and the three
    masks ``encoder_mask``, ``decoder_mask``, ``cross_mask``. ``labels`` are aligned with positions.
    """
    import torch

    dtype = mask_dtype or torch.float32
    n_examples = sum(len(r.segments) for r in rows)
    if not encoder_decoder:
        if attention == "segments":
            # Attention never crosses an example, so rows need not be kept apart: the micro-batch
            # becomes one row of all its examples back to back, with no padding at all.
            rows = [Row([ex for r in rows for ex in r.segments], sum(len(ex) for r in rows for ex in r.segments))]
        width = max(r.enc_len for r in rows)
        ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
        labels = torch.full_like(ids, IGNORE)
        seg = torch.zeros_like(ids)
        pos = torch.zeros_like(ids)
        for b, row in enumerate(rows):
            t = 0
            for s, ex in enumerate(row.segments, 1):
                seq = (*ex.prompt, *ex.target)
                n = len(seq)
                ids[b, t:t + n] = torch.tensor(seq)
                # Position p predicts seq[p+1]; only predictions of target tokens count.
                first = max(len(ex.prompt) - 1, 0)
                labels[b, t + first:t + n - 1] = torch.tensor(seq[first + 1:])
                seg[b, t:t + n] = s
                pos[b, t:t + n] = torch.arange(n)
                t += n
            pos[b, t:] = torch.arange(width - t)  # padding: its own run of positions
        tensors: dict[str, Any] = {"input_ids": ids, "position_ids": pos}
        segments = None
        if attention == "mask":
            same = (seg.unsqueeze(-1) == seg.unsqueeze(-2)) & (seg > 0).unsqueeze(-1)
            causal = torch.ones(width, width, dtype=torch.bool).tril()
            tensors["attention_mask"] = _additive(_pad_diagonal(same & causal, seg), dtype)
        elif attention == "segments":
            segments = Segments(tuple(len(ex) for ex in rows[0].segments))
        n_real = int((seg > 0).sum())
        return Batch(tensors, labels, int((labels != IGNORE).sum()), n_real, ids.numel(), n_examples, segments)

    if start_id is None:
        raise ValueError("encoder-decoder collation needs the decoder start token id")
    we = max(r.enc_len for r in rows)
    wd = max(r.dec_len for r in rows)
    enc = torch.full((len(rows), we), pad_id, dtype=torch.long)
    dec = torch.full((len(rows), wd), pad_id, dtype=torch.long)
    labels = torch.full_like(dec, IGNORE)
    seg_e = torch.zeros_like(enc)
    seg_d = torch.zeros_like(dec)
    for b, row in enumerate(rows):
        te = td = 0
        for s, ex in enumerate(row.segments, 1):
            ne, nd = len(ex.prompt), len(ex.target)
            enc[b, te:te + ne] = torch.tensor(ex.prompt)
            seg_e[b, te:te + ne] = s
            # Every segment's decoder input restarts with the start token.
            dec[b, td:td + nd] = torch.tensor((start_id, *ex.target[:-1]))
            labels[b, td:td + nd] = torch.tensor(ex.target)
            seg_d[b, td:td + nd] = s
            te += ne
            td += nd
    enc_ok = (seg_e.unsqueeze(-1) == seg_e.unsqueeze(-2)) & (seg_e > 0).unsqueeze(-1)
    dec_ok = ((seg_d.unsqueeze(-1) == seg_d.unsqueeze(-2)) & (seg_d > 0).unsqueeze(-1)
              & torch.ones(wd, wd, dtype=torch.bool).tril())
    cross_ok = (seg_d.unsqueeze(-1) == seg_e.unsqueeze(-2)) & (seg_d > 0).unsqueeze(-1)
    # A padding decoder position may see encoder position 0 so its softmax row is not empty; its
    # output carries no loss and is seen by no real position.
    cross_ok[..., 0] |= seg_d == 0
    tensors = {
        "input_ids": enc,
        "decoder_input_ids": dec,
        "encoder_mask": _additive(_pad_diagonal(enc_ok, seg_e), dtype),
        "decoder_mask": _additive(_pad_diagonal(dec_ok, seg_d), dtype),
        "cross_mask": _additive(cross_ok, dtype),
    }
    n_real = int((seg_e > 0).sum() + (seg_d > 0).sum())
    return Batch(tensors, labels, int((labels != IGNORE).sum()), n_real, enc.numel() + dec.numel(), n_examples)
