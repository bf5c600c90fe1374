"""The deterministic stream of micro-batches a run trains on, and its held-out split.

Every process builds the same stream from (mixture, config, seed), so the data position is just the
number of micro-batches consumed: resume skips that many (rows only, nothing is collated), and in
multi-process runs every rank knows the whole accumulated batch's target-token count without
communicating.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterator
from typing import Any

from flanlab.training.config import TrainConfig
from flanlab.training.data import Tokenized, is_heldout, iter_rows, shuffled, tokenize_row
from flanlab.training.packing import Batch, Row, collate, group_by_length, pack

__all__ = ["BatchMaker", "heldout_examples", "micro_batches"]


def _tokenized(cfg: TrainConfig, tokenizer: Any, encoder_decoder: bool, *, heldout: bool,
               rng: random.Random | None) -> Iterator[Tokenized]:
    rows = (r for r in iter_rows(cfg.data.mixture) if is_heldout(r, cfg.data.heldout_fraction) == heldout)
    if rng is not None:
        rows = shuffled(rows, cfg.data.shuffle_buffer, rng)
    for row in rows:
        yield tokenize_row(row, tokenizer, encoder_decoder=encoder_decoder,
                           max_input=cfg.data.max_input_length, max_target=cfg.data.max_target_length, prompt_format=cfg.prompt_format)


def micro_batches(cfg: TrainConfig, tokenizer: Any, encoder_decoder: bool) -> Iterator[list[Row]]:
    """Rows grouped into micro-batches, epoch after epoch (reshuffled per epoch under the seed)."""
    epochs = range(cfg.data.epochs) if cfg.data.epochs else itertools.count()
    for epoch in epochs:
        rng = random.Random(f"{cfg.train.seed}-{epoch}")
        examples = _tokenized(cfg, tokenizer, encoder_decoder, heldout=False, rng=rng)
        p = cfg.packing
        if p.enabled:
            rows = pack(examples, encoder_decoder=encoder_decoder, max_length=p.max_length,
                        target_length=p.target_length, window=p.window, rng=rng)
        else:
            rows = group_by_length(examples, encoder_decoder=encoder_decoder, max_length=p.max_length,
                                   target_length=p.target_length, batch_size=cfg.train.batch_size,
                                   window=p.window, rng=rng)
        empty = True
        while chunk := list(itertools.islice(rows, cfg.train.batch_size)):
            empty = False
            yield chunk
        if empty:
            return


def heldout_examples(cfg: TrainConfig, tokenizer: Any, encoder_decoder: bool) -> list[Tokenized]:
    """Up to ``data.max_heldout`` examples of the held-out split, in stream order."""
    if cfg.data.heldout_fraction <= 0 or cfg.data.max_heldout == 0:
        return []
    return list(itertools.islice(_tokenized(cfg, tokenizer, encoder_decoder, heldout=True, rng=None),
                                 cfg.data.max_heldout))


class BatchMaker:
    """Collates rows for one model (pad / start ids, mask dtype, attention layout)."""

    def __init__(self, tokenizer: Any, model_config: Any, encoder_decoder: bool, attention: str,
                 mask_dtype: Any) -> None:
        self.encoder_decoder = encoder_decoder
        self.pad_id = tokenizer.pad_token_id
        self.start_id = getattr(model_config, "decoder_start_token_id", None)
        if encoder_decoder and self.start_id is None:
            self.start_id = self.pad_id
        self.attention = attention if not encoder_decoder else "mask"
        self.mask_dtype = mask_dtype

    def __call__(self, rows: list[Row]) -> Batch:
        return collate(rows, encoder_decoder=self.encoder_decoder, pad_id=self.pad_id, start_id=self.start_id,
                       mask_dtype=self.mask_dtype, attention=self.attention)

    def eval_batches(self, examples: list[Tokenized], batch_size: int, max_length: int,
                     target_length: int) -> list[Batch]:
        rows = list(group_by_length(examples, encoder_decoder=self.encoder_decoder, max_length=max_length,
                                    target_length=target_length, batch_size=batch_size, window=len(examples) or 1,
                                    rng=random.Random(0)))
        return [self(rows[i:i + batch_size]) for i in range(0, len(rows), batch_size)]
