"""Packed training equals unpacked training: same loss and gradients, for T5 and Llama."""

from __future__ import annotations

import random

import pytest
import torch

from flanlab.training.data import Tokenized
from flanlab.training.loss import _slices_by_mask, target_loss_sum
from flanlab.training.packing import IGNORE, Row, collate, group_by_length, pack
from flanlab.training.segment_attention import Segments, use_segment_attention


def _examples(vocab: int, n: int = 7, seed: int = 0) -> list[Tokenized]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        prompt = [rng.randrange(4, vocab) for _ in range(rng.randint(3, 12))]
        target = [rng.randrange(4, vocab) for _ in range(rng.randint(1, 6))]
        out.append(Tokenized(tuple(prompt), tuple(target)))
    return out


def _grads(model) -> dict[str, torch.Tensor]:
    return {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}


def _reference_llama(model, examples, pad_id):
    """Stock transformers forward, one padded example per row with a 2D mask, shifted labels."""
    width = max(len(e) for e in examples)
    ids = torch.full((len(examples), width), pad_id)
    mask = torch.zeros_like(ids)
    labels = torch.full_like(ids, IGNORE)
    for b, e in enumerate(examples):
        seq = [*e.prompt, *e.target]
        ids[b, : len(seq)] = torch.tensor(seq)
        mask[b, : len(seq)] = 1
        labels[b, len(e.prompt): len(seq)] = torch.tensor(e.target)
    logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1]
    return torch.nn.functional.cross_entropy(
        logits.reshape(-1, logits.shape[-1]), labels[:, 1:].reshape(-1), ignore_index=IGNORE, reduction="sum")


def _reference_t5(model, examples, pad_id):
    we = max(len(e.prompt) for e in examples)
    wd = max(len(e.target) for e in examples)
    ids = torch.full((len(examples), we), pad_id)
    mask = torch.zeros_like(ids)
    labels = torch.full((len(examples), wd), IGNORE)
    for b, e in enumerate(examples):
        ids[b, : len(e.prompt)] = torch.tensor(e.prompt)
        mask[b, : len(e.prompt)] = 1
        labels[b, : len(e.target)] = torch.tensor(e.target)
    logits = model(input_ids=ids, attention_mask=mask, labels=labels).logits
    return torch.nn.functional.cross_entropy(
        logits.reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=IGNORE, reduction="sum")


def _load(path, seq2seq):
    from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM, AutoTokenizer

    cls = AutoModelForSeq2SeqLM if seq2seq else AutoModelForCausalLM
    model = cls.from_pretrained(path, dtype=torch.float32)
    model.train()
    for m in model.modules():  # equality needs no dropout
        if isinstance(m, torch.nn.Dropout):
            m.p = 0.0
    return model, AutoTokenizer.from_pretrained(path)


@pytest.mark.parametrize("attention", ["segments", "mask", "position_ids"])
def test_llama_packed_equals_unpacked(tiny_llama_dir, attention):
    model, tok = _load(tiny_llama_dir, seq2seq=False)
    examples = _examples(len(tok))
    n_target = sum(len(e.target) for e in examples)
    ref = _reference_llama(model, examples, tok.pad_token_id) / n_target
    ref.backward()
    ref_grads = _grads(model)
    model.zero_grad()
    if attention == "segments":
        assert use_segment_attention(model)
        # Without pieces, the switched model is still stock sdpa (held-out evaluation, generation).
        with torch.no_grad():
            assert abs((_reference_llama(model, examples, tok.pad_token_id) / n_target).item() - ref.item()) < 1e-6

    rows = list(pack(examples, encoder_decoder=False, max_length=40, target_length=0, window=64))
    assert len(rows) < len(examples) and max(len(r.segments) for r in rows) > 1
    batch = collate(rows, encoder_decoder=False, pad_id=tok.pad_token_id, attention=attention)
    assert batch.n_target == n_target
    assert _slices_by_mask(model)  # logits at each row's own target positions only
    loss = target_loss_sum(model, batch, encoder_decoder=False) / batch.n_target
    loss.backward()
    assert abs(loss.item() - ref.item()) < 1e-5
    grads = _grads(model)
    assert grads.keys() == ref_grads.keys()
    worst = max((grads[k] - ref_grads[k]).abs().max().item() for k in grads)
    assert worst < 1e-5


def test_t5_packed_equals_unpacked(tiny_t5_dir):
    model, tok = _load(tiny_t5_dir, seq2seq=True)
    examples = _examples(len(tok), n=8, seed=1)
    n_target = sum(len(e.target) for e in examples)
    ref = _reference_t5(model, examples, tok.pad_token_id) / n_target
    ref.backward()
    ref_grads = _grads(model)
    model.zero_grad()

    # Encoder and decoder lengths chosen so rows hold several examples.
    rows = list(pack(examples, encoder_decoder=True, max_length=30, target_length=14, window=64))
    assert len(rows) < len(examples)
    batch = collate(rows, encoder_decoder=True, pad_id=tok.pad_token_id,
                    start_id=model.config.decoder_start_token_id)
    assert batch.n_target == n_target
    loss = target_loss_sum(model, batch, encoder_decoder=True) / batch.n_target
    loss.backward()
    assert abs(loss.item() - ref.item()) < 1e-5
    grads = _grads(model)
    worst = max((grads[k] - ref_grads[k]).abs().max().item() for k in grads)
    assert worst < 1e-5


def test_t5_packing_without_cross_mask_would_differ(tiny_t5_dir):
    """The trap the cross mask avoids: letting decoder tokens see other examples' encoder tokens
    changes the loss, so the equality above is not vacuous."""
    model, tok = _load(tiny_t5_dir, seq2seq=True)
    examples = _examples(len(tok), n=8, seed=1)
    rows = list(pack(examples, encoder_decoder=True, max_length=30, target_length=14, window=64))
    batch = collate(rows, encoder_decoder=True, pad_id=tok.pad_token_id,
                    start_id=model.config.decoder_start_token_id)
    good = target_loss_sum(model, batch, encoder_decoder=True).item()
    batch.tensors["cross_mask"] = torch.zeros_like(batch.tensors["cross_mask"])
    leaky = target_loss_sum(model, batch, encoder_decoder=True).item()
    assert abs(good - leaky) > 1e-3


def test_pack_fills_rows_and_keeps_every_example():
    examples = _examples(100, n=50, seed=3)
    rows = list(pack(examples, encoder_decoder=False, max_length=32, target_length=0, window=16))
    key = lambda e: (e.prompt, e.target)  # noqa: E731
    assert sorted((e for r in rows for e in r.segments), key=key) == sorted(examples, key=key)
    assert all(r.enc_len <= 32 for r in rows)
    fill = sum(r.enc_len for r in rows) / (32 * len(rows))
    assert fill > 0.85


def test_group_by_length_batches_similar_lengths():
    examples = _examples(100, n=64, seed=4)
    rows = list(group_by_length(examples, encoder_decoder=False, max_length=64, target_length=0,
                                batch_size=8, window=64, rng=random.Random(0)))
    assert len(rows) == 64
    spreads = [max(r.enc_len for r in rows[i:i + 8]) - min(r.enc_len for r in rows[i:i + 8])
               for i in range(0, 64, 8)]
    assert max(spreads) <= 4


def test_decoder_masks_block_other_examples():
    a, b = Tokenized((5, 6), (7,)), Tokenized((8,), (9, 10))
    batch = collate([Row([a, b], 6, 0)], encoder_decoder=False, pad_id=0)
    m = batch.tensors["attention_mask"][0, 0]
    allowed = (m == 0).int().tolist()
    assert allowed[3] == [0, 0, 0, 1, 0, 0]  # first token of b sees only itself
    assert allowed[2] == [1, 1, 1, 0, 0, 0]
    assert batch.tensors["position_ids"][0].tolist() == [0, 1, 2, 0, 1, 2]
    assert batch.labels[0].tolist() == [IGNORE, 7, IGNORE, 9, 10, IGNORE]


def test_segments_put_a_micro_batch_in_one_unpadded_row():
    rows = [Row([Tokenized((5, 6), (7,)), Tokenized((8,), (9, 10))], 6), Row([Tokenized((5,), (6,))], 2)]
    batch = collate(rows, encoder_decoder=False, pad_id=0, attention="segments")
    assert "attention_mask" not in batch.tensors
    assert batch.tensors["input_ids"].tolist() == [[5, 6, 7, 8, 9, 10, 5, 6]]
    assert batch.tensors["position_ids"].tolist() == [[0, 1, 2, 0, 1, 2, 0, 1]]
    assert batch.labels.tolist() == [[IGNORE, 7, IGNORE, 9, 10, IGNORE, 6, IGNORE]]
    assert batch.segments == Segments((3, 3, 2))
    assert batch.n_real == batch.n_slots == 8 and batch.n_target == 4


def test_packed_rows_are_shuffled_within_a_window_not_longest_first():
    """First-fit-decreasing fills rows longest first; under an rng the rows of a window come out
    in a seeded random order (the same rows), so training is not a long-to-short curriculum."""
    rng = random.Random(0)
    examples = [Tokenized(tuple(range(1, 2 + rng.randrange(30))), (7, 8)) for _ in range(200)]
    plain = list(pack(examples, encoder_decoder=False, max_length=64, target_length=0, window=256))
    lengths = [r.enc_len for r in plain]
    assert lengths[:5] > lengths[-5:]  # the curriculum the shuffle removes
    shuffled = list(pack(examples, encoder_decoder=False, max_length=64, target_length=0, window=256,
                         rng=random.Random("0-0")))
    again = list(pack(examples, encoder_decoder=False, max_length=64, target_length=0, window=256,
                      rng=random.Random("0-0")))
    key = [[s.prompt for s in r.segments] for r in shuffled]
    assert key == [[s.prompt for s in r.segments] for r in again]  # deterministic under the seed
    assert sorted(map(str, key)) == sorted(str([s.prompt for s in r.segments]) for r in plain)
    assert key != [[s.prompt for s in r.segments] for r in plain]
