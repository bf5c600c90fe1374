"""The narrow interface every backend implements: score continuations, generate text.

Evaluation only ever talks to an :class:`LM`; backends (Hugging Face, HTTP, vLLM) live beside this
module and are picked by name.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

__all__ = [
    "GenerateRequest",
    "LM",
    "LoglikelihoodRequest",
    "LoglikelihoodResult",
]


@dataclass(frozen=True)
class LoglikelihoodRequest:
    """Score ``continuation`` after ``context``: the sum of its tokens' log-probabilities."""

    context: str
    continuation: str


@dataclass(frozen=True)
class LoglikelihoodResult:
    """``logprob``: sum of log-probabilities of the continuation's tokens; ``is_greedy``: whether
    greedy decoding from the context would produce exactly those tokens."""

    logprob: float
    is_greedy: bool


@dataclass(frozen=True)
class GenerateRequest:
    """Generate ``n`` continuations of ``prompt``.

    Each stops at the first of ``stop`` (the stop text itself is not returned) or after
    ``max_new_tokens``. ``temperature == 0`` means greedy; sampling is reproducible under ``seed``.
    """

    prompt: str
    stop: tuple[str, ...] = ()
    max_new_tokens: int = 256
    temperature: float = 0.0
    top_p: float = 1.0
    n: int = 1
    seed: int = 0


@runtime_checkable
class LM(Protocol):
    """A language model as evaluation sees it. Both calls are batched and keep request order."""

    name: str

    def loglikelihood(self, requests: Sequence[LoglikelihoodRequest]) -> list[LoglikelihoodResult]:
        """One result per request, in order."""
        ...

    def generate(self, requests: Sequence[GenerateRequest]) -> list[list[str]]:
        """``request.n`` texts per request, in order."""
        ...
