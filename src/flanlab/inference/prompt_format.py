"""How a decoder-only model is prompted: one convention for training and evaluation.

A Flan example is ``(inputs, targets)``; an evaluation request is a prompt whose answer the model
generates (or whose continuations it scores). Both go through :class:`PromptFormat`, so that the
text a model is finetuned on ends exactly where its evaluation prompts end:

- ``plain`` (the default, for base models): ``inputs + separator``, the answer follows. The default
  separator ``"\\n"`` puts the answer on its own line: a clean token boundary for every tokenizer
  (a trailing space is a token of its own in SentencePiece vocabularies), and BBH's
  ``first_line`` answer filter reads it back as it was trained;
- ``chat`` (for chat models): the inputs as one user turn of the tokenizer's chat template, with
  the generation prompt; the answer is the assistant's turn, ended by the tokenizer's EOS.

Before this existed, training glued inputs and targets (``...Select the correct option.No``).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from flanlab.core.config import Schema
from flanlab.core.errors import UserError

__all__ = ["PromptFormat"]


class PromptFormat(Schema):
    """How inputs and the answer are joined (``style``) and, for ``plain``, by what (``separator``)."""

    style: Literal["plain", "chat"] = "plain"
    separator: str = Field("\n", description="plain: text put between the inputs and the answer")

    def prompt(self, inputs: str, tokenizer: Any = None) -> str:
        """The text the model reads before its answer (training and evaluation alike).

        ``chat`` needs the tokenizer (its chat template). The template's own leading BOS text is
        dropped when the tokenizer adds BOS by itself, so the BOS token is not doubled."""
        if self.style == "plain":
            return inputs + self.separator
        template = getattr(tokenizer, "chat_template", None) if tokenizer is not None else None
        if not template:
            raise UserError("prompt_format.style: 'chat' needs a tokenizer with a chat template; this model has "
                            "none (use style: plain for base models)")
        text = tokenizer.apply_chat_template([{"role": "user", "content": inputs}], tokenize=False,
                                             add_generation_prompt=True)
        bos = getattr(tokenizer, "bos_token", None)
        if bos and text.startswith(bos) and _adds_bos(tokenizer):
            text = text[len(bos):]
        return text

    def continuation(self, text: str) -> str:
        """A scored continuation (e.g. MMLU's ``" A"``) as it follows :meth:`prompt`'s text: its
        leading space belonged to the benchmark's own join, which the separator replaces."""
        return text.lstrip(" ") if self.style == "chat" or self.separator[-1:].isspace() else text


def _adds_bos(tokenizer: Any) -> bool:
    bos_id = getattr(tokenizer, "bos_token_id", None)
    if bos_id is None:
        return False
    ids = tokenizer("x")["input_ids"]
    return bool(ids) and ids[0] == bos_id
