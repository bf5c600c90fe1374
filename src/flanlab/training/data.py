"""Stream a mixture folder's shards and tokenize examples on the fly.

A mixture folder (written by ``flanlab mix``) holds ``*.jsonl`` / ``*.jsonl.zst`` shards of rows
``{"inputs", "targets", "task", ...}`` and a ``manifest.json`` written last; only its presence
says the mixture is complete. Nothing here depends on the mixture stage beyond that format.
"""

from __future__ import annotations

import hashlib
import io
import json
import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flanlab.core.errors import UserError
from flanlab.inference.prompt_format import PromptFormat

__all__ = ["Example", "MixtureError", "Tokenized", "is_heldout", "iter_rows", "shard_files", "tokenize_row"]


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


def shard_files(folder: str | Path) -> list[Path]:
    """The shards of a complete mixture folder, in name order."""
    folder = Path(folder)
    if not folder.is_dir():
        raise MixtureError(f"{folder}: mixture folder not found (run `flanlab mix` first or set data.build_config)")
    if not (folder / "manifest.json").is_file():
        raise MixtureError(f"{folder}: no manifest.json, so the mixture is incomplete (is `flanlab mix` still "
                           "running, or did it fail?)")
    shards = sorted(p for p in folder.iterdir() if p.name.endswith((".jsonl", ".jsonl.zst")))
    if not shards:
        raise MixtureError(f"{folder}: no *.jsonl or *.jsonl.zst shards beside manifest.json")
    return shards


def _lines(path: Path) -> Iterator[str]:
    if path.name.endswith(".zst"):
        import zstandard

        with open(path, "rb") as raw:
            reader = zstandard.ZstdDecompressor().stream_reader(raw)
            yield from io.TextIOWrapper(reader, encoding="utf-8")
    else:
        with open(path, encoding="utf-8") as f:
            yield from f


def _parse(line: str, where: str) -> Example:
    try:
        row: Any = json.loads(line)
    except json.JSONDecodeError as e:
        raise MixtureError(f"{where}: invalid JSON ({e.msg} at column {e.colno})") from None
    if not isinstance(row, dict):
        raise MixtureError(f"{where}: expected a JSON object, got {type(row).__name__}")
    for key in ("inputs", "targets"):
        if not isinstance(row.get(key), str):
            raise MixtureError(f"{where}: field {key!r} must be a string, got {row.get(key)!r:.60}")
    return Example(row["inputs"], row["targets"], str(row.get("task", "")), where)


def iter_rows(folder: str | Path) -> Iterator[Example]:
    """Every row of every shard, streamed in order; errors name the shard and line."""
    for shard in shard_files(folder):
        for i, line in enumerate(_lines(shard), 1):
            if line.strip():
                yield _parse(line, f"{shard}:{i}")


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
