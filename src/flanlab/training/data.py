"""Stream a mixture folder's rows and tokenize examples on the fly.

A mixture folder (written by ``flanlab mix``) holds shards of rows ``{"inputs", "targets", "task",
...}`` in JSONL, JSONL.zst or Parquet and a ``manifest.json`` written last; the mixture stage's one
reader (:func:`flanlab.mixture.shards.iter_mixture_located`) reads them, so every output format of
``flanlab mix`` trains.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flanlab.core.errors import UserError
from flanlab.inference.prompt_format import PromptFormat

__all__ = ["Example", "MixtureError", "Tokenized", "is_heldout", "iter_rows", "tokenize_row"]


class MixtureError(UserError):
    """A mixture folder or shard is missing, incomplete or malformed."""


@dataclass(frozen=True)
class Example:
    """One raw row, with where it came from (for error messages)."""

    inputs: str
    targets: str
    task: str
    source: str


@dataclass(frozen=True)
class Tokenized:
    """Token ids of one example. Decoder-only: ``prompt`` then ``target`` form one sequence.
    Encoder-decoder: ``prompt`` feeds the encoder, ``target`` is what the decoder must produce."""

    prompt: tuple[int, ...]
    target: tuple[int, ...]

    def __len__(self) -> int:
        return len(self.prompt) + len(self.target)


def _example(row: dict[str, Any], where: str) -> Example:
    for key in ("inputs", "targets"):
        if not isinstance(row.get(key), str):
            raise MixtureError(f"{where}: field {key!r} must be a string, got {row.get(key)!r:.60}")
    return Example(row["inputs"], row["targets"], str(row.get("task") or ""), where)


def iter_rows(folder: str | Path) -> Iterator[Example]:
    """Every row of a finished mixture folder, streamed in shard order; errors name the shard and line."""
    from flanlab.mixture.shards import iter_mixture_located

    for where, row in iter_mixture_located(folder):
        yield _example(row, where)


def is_heldout(example: Example, fraction: float) -> bool:
    """A stable split: the same example always lands on the same side, whatever the shard order."""
    if fraction <= 0:
        return False
    digest = hashlib.blake2b(f"{example.inputs}\x00{example.targets}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64 < fraction


def tokenize_row(example: Example, tokenizer: Any, *, encoder_decoder: bool, max_input: int,
                 max_target: int, prompt_format: PromptFormat | None = None) -> Tokenized:
    """Token ids for one example.

    Decoder-only: the prompt is ``prompt_format``'s text for the inputs (the same text evaluation
    prompts the model with; default: inputs, then a newline), tokenized with the tokenizer's
    specials (BOS); the target ends with EOS, so a trained model stops by itself. Encoder-decoder:
    the tokenizer's own specials (T5 appends EOS to both). Long prompts are cut from the left,
    keeping the end of the prompt nearest the answer.
    """
    eos = tokenizer.eos_token_id
    if encoder_decoder:
        prompt = tokenizer(example.inputs)["input_ids"]
        target = tokenizer(example.targets)["input_ids"]
        if not target or target[-1] != eos:
            target = [*target, eos]
    else:
        fmt = prompt_format or PromptFormat()
        # The tokenizer adds BOS as in evaluation (a chat template's own BOS text is dropped then).
        prompt = tokenizer(fmt.prompt(example.inputs, tokenizer))["input_ids"]
        target = [*tokenizer(example.targets, add_special_tokens=False)["input_ids"], eos]
    if len(prompt) > max_input:
        prompt = prompt[:1] + prompt[len(prompt) - max_input + 1:] if not encoder_decoder else prompt[-max_input:]
    target = target[:max_target]
    return Tokenized(tuple(prompt), tuple(target))


def shuffled(items: Iterator[Any], buffer: int, rng: random.Random) -> Iterator[Any]:
    """A streaming shuffle through a fixed-size buffer (deterministic under ``rng``)."""
    pool: list[Any] = []
    for item in items:
        if len(pool) < buffer:
            pool.append(item)
            continue
        i = rng.randrange(buffer)
        pool[i], item = item, pool[i]
        yield item
    rng.shuffle(pool)
    yield from pool
