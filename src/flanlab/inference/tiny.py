"""Tiny random models (Llama, T5) built from configs, with a small trained BPE tokenizer.

They are real transformers models, only small and untrained: tests, CI smoke runs and the tiny
sweep use them because they need no download. ``make_tiny_model("llama", DIR)`` writes a folder
that loads like any hub checkpoint (safetensors weights + tokenizer).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

__all__ = ["TINY_ARCHS", "make_tiny_model", "make_tiny_tokenizer"]

TINY_ARCHS = ("llama", "t5")

# A fixed corpus so that the tokenizer (and so every tiny model) is identical on every machine.
_CORPUS = """
The following are multiple choice questions (with answers) about abstract algebra.
Q: What is the answer? A: Let's think step by step. So the answer is (A). The answer is 42.
Question: Which of the following is true? Options: (A) yes (B) no (C) maybe (D) none of the above
Answer: A B C D True False yes no valid invalid Plausible implausible
Premise: A man is playing a guitar. Hypothesis: A person plays music. Does the premise entail it?
OPTIONS:
- yes
- it is not possible to tell
- no
Translate the following sentence to French. Summarize this article in one sentence.
Janet's ducks lay 16 eggs per day. She eats three for breakfast every morning and bakes muffins.
How many dollars does she make every day at the farmers' market? 9 * 2 = 18. #### 18
Sort the following words alphabetically: List: apple banana cherry date elderberry fig grape.
Today is Christmas Eve of 1937. What is the date 10 days ago in MM/DD/YYYY?
not ( True ) and ( True ) is False. ( ( [ ] ) ) { } < > the of and to in is that for it as was with
0 1 2 3 4 5 6 7 8 9 10 11 12 100 1000 + - * / = , . ; : ! ? ' " ( ) [ ] { } \n
"""


def make_tiny_tokenizer(vocab_size: int = 600, special: Literal["llama", "t5"] = "llama"):
    """A byte-level BPE tokenizer trained on a fixed corpus, wrapped as a transformers fast tokenizer.

    ``special="llama"`` prepends ``<s>``; ``special="t5"`` appends ``</s>`` and uses id 0 as pad,
    as the real families do.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    specials = ["<pad>", "</s>", "<unk>", "<s>"] if special == "t5" else ["<unk>", "<s>", "</s>", "<pad>"]
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator([_CORPUS] * 4, trainer=trainer)
    if special == "t5":
        tok.post_processor = processors.TemplateProcessing(
            single="$A </s>", pair="$A </s> $B </s>", special_tokens=[("</s>", tok.token_to_id("</s>"))]
        )
    else:
        tok.post_processor = processors.TemplateProcessing(
            single="<s> $A", pair="<s> $A $B", special_tokens=[("<s>", tok.token_to_id("<s>"))]
        )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="<unk>",
        pad_token="<pad>",
        eos_token="</s>",
        bos_token="<s>",
        model_max_length=2048,
    )
    return fast


def make_tiny_model(
    arch: Literal["llama", "t5"],
    path: str | Path,
    *,
    seed: int = 0,
    hidden: int = 64,
    layers: int = 2,
    heads: int = 4,
    max_positions: int = 2048,
) -> Path:
    """Write a tiny random ``arch`` model and its tokenizer to ``path`` (safetensors); returns the path."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM, T5Config, T5ForConditionalGeneration

    if arch not in TINY_ARCHS:
        raise ValueError(f"unknown tiny arch {arch!r}; expected one of {TINY_ARCHS}")
    path = Path(path)
    tokenizer = make_tiny_tokenizer(special="t5" if arch == "t5" else "llama")
    vocab = len(tokenizer)
    torch.manual_seed(seed)
    if arch == "llama":
        config = LlamaConfig(
            vocab_size=vocab,
            hidden_size=hidden,
            intermediate_size=hidden * 2,
            num_hidden_layers=layers,
            num_attention_heads=heads,
            num_key_value_heads=max(1, heads // 2),
            max_position_embeddings=max_positions,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
            tie_word_embeddings=False,
        )
        model = LlamaForCausalLM(config)
    else:
        config = T5Config(
            vocab_size=vocab,
            d_model=hidden,
            d_kv=hidden // heads,
            d_ff=hidden * 2,
            num_layers=layers,
            num_decoder_layers=layers,
            num_heads=heads,
            relative_attention_num_buckets=8,
            dropout_rate=0.0,
            feed_forward_proj="gated-gelu",
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=tokenizer.eos_token_id,
            decoder_start_token_id=tokenizer.pad_token_id,
            tie_word_embeddings=False,
        )
        model = T5ForConditionalGeneration(config)
    model.eval()
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(path, safe_serialization=True)
    tokenizer.save_pretrained(path)
    return path
