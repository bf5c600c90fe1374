"""One prompt convention: what training puts before a target is exactly what evaluation feeds
the model before its answer (plain: inputs + separator; chat: the tokenizer's template)."""

from __future__ import annotations

import pytest

from flanlab.core.errors import UserError
from flanlab.evaluation.plan import apply_prompt_format, build_requests, resolve_strategies
from flanlab.inference.prompt_format import PromptFormat
from flanlab.inference.tokens import leading_specials
from flanlab.training.data import Example, tokenize_row


def _tokenizer(path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(path))


def test_train_and_eval_share_the_prompt_prefix(tiny_llama_dir, shared_data):
    tok = _tokenizer(tiny_llama_dir)
    fmt = PromptFormat()
    (req,), _, _ = build_requests(["bbh"], resolve_strategies(["zs_direct"]), shared_data, limit=1,
                                  subtasks=["web_of_lies"])
    (sent,) = apply_prompt_format([req], fmt, tok)
    assert sent.prompt == req.prompt + "\n" and req.prompt.endswith("\nA:")
    # Training on the same text with its answer: the prompt tokens are those evaluation feeds the
    # model (the backend prepends the tokenizer's specials to the encoded prompt), then the answer.
    row = tokenize_row(Example(req.prompt, "No", "bbh", "test"), tok, encoder_decoder=False, max_input=10_000,
                       max_target=16, prompt_format=fmt)
    assert list(row.prompt) == leading_specials(tok) + tok(sent.prompt, add_special_tokens=False).input_ids
    assert row.target[-1] == tok.eos_token_id
    # Before, inputs and targets were glued ("...A:No"); now the separator sits between them.
    assert tok.decode(list(row.prompt) + list(row.target[:-1]), skip_special_tokens=True).endswith("A:\nNo")


def test_scored_continuations_follow_the_separator():
    fmt = PromptFormat(separator="\n")
    assert fmt.prompt("Answer:") == "Answer:\n" and fmt.continuation(" A") == "A"
    assert PromptFormat(separator=" =>").continuation(" A") == " A"  # its space is the only one


def test_chat_style_uses_the_template_once(tiny_llama_dir):
    tok = _tokenizer(tiny_llama_dir)
    with pytest.raises(UserError, match="chat template"):
        PromptFormat(style="chat").prompt("hi", None)
    tok.chat_template = "{{ bos_token }}{% for m in messages %}<|user|>{{ m['content'] }}{% endfor %}<|bot|>"
    text = PromptFormat(style="chat").prompt("hi", tok)
    assert text.endswith("<|user|>hi<|bot|>")
    row = tokenize_row(Example("hi", "yo", "t", "s"), tok, encoder_decoder=False, max_input=100, max_target=8,
                       prompt_format=PromptFormat(style="chat"))
    bos = tok.bos_token_id
    assert bos is None or list(row.prompt).count(bos) <= 1  # the template's BOS is not doubled
