"""How a (context, continuation) pair becomes token ids, shared by the backends that score locally."""

from __future__ import annotations

from typing import Any

__all__ = ["causal_pair", "leading_specials"]


def leading_specials(tokenizer: Any) -> list[int]:
    """Special tokens the tokenizer puts before text (e.g. ``<s>``); decoder-only inputs keep them."""
    with_sp = tokenizer("a").input_ids
    without = tokenizer("a", add_special_tokens=False).input_ids
    n = len(with_sp) - len(without)
    if n > 0 and with_sp[n:n + len(without)] == without:
        return list(with_sp[:n])
    return []


def causal_pair(
    tokenizer: Any, specials: list[int], context: str, continuation: str, memo: dict[str, list[int]]
) -> tuple[list[int], list[int]]:
    """Token ids of (context, continuation) as they appear in the full text.

    The whole string is encoded and split after the context's tokens, so merges at the boundary
    match what the model reads; trailing context whitespace moves to the continuation (word-initial
    tokens carry their space). An empty context conditions on the end-of-text token. ``memo``
    caches context encodings (every option of a question shares one).
    """
    stripped = context.rstrip()
    continuation = context[len(stripped):] + continuation
    if stripped not in memo:
        memo[stripped] = specials + tokenizer(stripped, add_special_tokens=False).input_ids
    ctx = memo[stripped]
    whole = specials + tokenizer(stripped + continuation, add_special_tokens=False).input_ids
    cont = whole[len(ctx):]
    if not ctx:
        ctx = [tokenizer.eos_token_id]
    return ctx, cont
