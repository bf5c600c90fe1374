"""HF backend on tiny random Llama / T5: batched + prefix-reused scores equal a plain unbatched
reference; greedy generation equals transformers' generate; sampling is reproducible."""

from __future__ import annotations

import pytest
import torch

from flanlab.inference import GenerateRequest, LoglikelihoodRequest, ModelSpec, load_lm
from flanlab.inference.hf import HFLM
from flanlab.inference.loading import load_pretrained

PREFIX = (
    "The following are multiple choice questions (with answers) about abstract algebra.\n\n"
    "Question: Which of the following is true? (A) yes (B) no (C) maybe (D) none of the above\nAnswer: A\n\n"
    "Question: What is the answer? (A) 42 (B) 18 (C) 9 (D) 100\nAnswer: A\n\n"
)
QUESTIONS = [
    "Question: Today is Christmas Eve of 1937. What is the date 10 days ago?",
    "Question: Janet's ducks lay 16 eggs per day. How many dollars does she make?",
    "Question: Sort the following words alphabetically: apple banana cherry",
    "Question: not ( True ) and ( True ) is",
]


def _requests() -> list[LoglikelihoodRequest]:
    reqs = []
    for q in QUESTIONS:
        for option in (" A", " B", " C", " D"):
            reqs.append(LoglikelihoodRequest(PREFIX + q + "\nAnswer:", option))
        # multi-token continuations sharing the context, one a prefix of another's tokens
        reqs.append(LoglikelihoodRequest(PREFIX + q + "\nAnswer:", " The answer is 42."))
        reqs.append(LoglikelihoodRequest(PREFIX + q + "\nAnswer:", " The answer"))
    reqs += [
        LoglikelihoodRequest("Premise: A man is playing a guitar.", " yes"),
        LoglikelihoodRequest("", "Translate the following sentence to French."),
        LoglikelihoodRequest("Q: ", "What is the answer?"),  # trailing space moves to the continuation
        LoglikelihoodRequest("Summarize", ""),
    ]
    return reqs


def _reference_causal(loaded, req: LoglikelihoodRequest, lm: HFLM) -> tuple[float, bool]:
    """One full forward pass per request, log-softmax over the whole sequence."""
    ctx, cont = lm._causal_pair(req.context, req.continuation, {})
    if not cont:
        return 0.0, True
    ids = torch.tensor([ctx + cont])
    with torch.no_grad():
        logp = torch.log_softmax(loaded.model(ids).logits[0].float(), -1)
    positions = range(len(ctx) - 1, len(ctx) + len(cont) - 1)
    lp = sum(logp[p, t].item() for p, t in zip(positions, cont, strict=True))
    greedy = all(logp[p].argmax().item() == t for p, t in zip(positions, cont, strict=True))
    return lp, greedy


def _reference_seq2seq(loaded, req: LoglikelihoodRequest) -> tuple[float, bool]:
    tok = loaded.tokenizer
    cont = tok(req.continuation, add_special_tokens=False).input_ids
    if not cont:
        return 0.0, True
    enc = tok(req.context, return_tensors="pt")
    with torch.no_grad():
        logits = loaded.model(**enc, labels=torch.tensor([cont])).logits[0].float()
    logp = torch.log_softmax(logits, -1)
    lp = sum(logp[i, t].item() for i, t in enumerate(cont))
    return lp, logp.argmax(-1).tolist() == cont


@pytest.mark.parametrize("batch_size", [1, 3, "auto"])
def test_causal_loglikelihood_matches_reference(tiny_llama_dir, batch_size):
    loaded = load_pretrained(ModelSpec(name=str(tiny_llama_dir)))
    lm = HFLM(loaded, batch_size=batch_size, show_progress=False)
    reqs = _requests()
    got = lm.loglikelihood(reqs)
    assert len(got) == len(reqs)
    for req, res in zip(reqs, got, strict=True):
        lp, greedy = _reference_causal(loaded, req, lm)
        assert res.logprob == pytest.approx(lp, abs=1e-4), req
        assert res.is_greedy == greedy
    assert got[-1].logprob == 0.0 and got[-1].is_greedy


def test_prefix_reuse_equals_no_reuse(tiny_llama_dir):
    loaded = load_pretrained(ModelSpec(name=str(tiny_llama_dir)))
    reqs = _requests()
    with_reuse = HFLM(loaded, batch_size=4, show_progress=False).loglikelihood(reqs)
    without = HFLM(loaded, batch_size=4, prefix_reuse=False, show_progress=False).loglikelihood(reqs)
    for a, b in zip(with_reuse, without, strict=True):
        assert a.logprob == pytest.approx(b.logprob, abs=1e-4)
        assert a.is_greedy == b.is_greedy


def test_seq2seq_loglikelihood_matches_reference(tiny_t5_dir):
    loaded = load_pretrained(ModelSpec(name=str(tiny_t5_dir)))
    assert loaded.kind == "seq2seq"
    lm = HFLM(loaded, batch_size=2, show_progress=False)
    reqs = _requests()
    for req, res in zip(reqs, lm.loglikelihood(reqs), strict=True):
        lp, greedy = _reference_seq2seq(loaded, req)
        assert res.logprob == pytest.approx(lp, abs=1e-4), req
        assert res.is_greedy == greedy


@pytest.mark.parametrize("arch", ["llama", "t5"])
def test_greedy_generation_equals_transformers_generate(arch, tiny_llama_dir, tiny_t5_dir):
    folder = tiny_llama_dir if arch == "llama" else tiny_t5_dir
    loaded = load_pretrained(ModelSpec(name=str(folder)))
    lm = HFLM(loaded, batch_size=3, show_progress=False)
    prompts = [PREFIX + q + "\nAnswer:" for q in QUESTIONS] + ["Q:"]
    reqs = [GenerateRequest(p, max_new_tokens=12) for p in prompts]
    ours = dict(lm.generate_tokens(reqs))
    tok = loaded.tokenizer
    for i, p in enumerate(prompts):
        enc = tok(p, return_tensors="pt")
        with torch.no_grad():
            ref = loaded.model.generate(**enc, max_new_tokens=12, do_sample=False, pad_token_id=tok.pad_token_id)
        ref_ids = ref[0].tolist() if arch == "t5" else ref[0, enc.input_ids.shape[1]:].tolist()
        if arch == "t5":
            ref_ids = ref_ids[1:]  # the decoder start token
        if tok.eos_token_id in ref_ids:
            ref_ids = ref_ids[: ref_ids.index(tok.eos_token_id)]
        assert ours[i] == [ref_ids], p
    texts = lm.generate(reqs)
    assert texts[0] == [tok.decode(ours[0][0], skip_special_tokens=True)]


def test_sampling_reproducible_and_stops(tiny_llama_dir):
    lm = load_lm(ModelSpec(name=str(tiny_llama_dir), batch_size=2))
    prompt = PREFIX + QUESTIONS[0] + "\nAnswer:"
    req = GenerateRequest(prompt, max_new_tokens=10, temperature=1.0, top_p=0.9, n=4, seed=7)
    first = lm.generate([req])
    # same seed, different batch company: same samples
    again = lm.generate([GenerateRequest("Q:", max_new_tokens=5, temperature=0.7, n=2), req])
    assert again[1] == first[0]
    assert len(first[0]) == 4 and len(set(first[0])) > 1
    other = lm.generate([GenerateRequest(prompt, max_new_tokens=10, temperature=1.0, top_p=0.9, n=4, seed=8)])
    assert other != first
    greedy = lm.generate([GenerateRequest(prompt, max_new_tokens=20, n=3)])[0]
    assert len(greedy) == 3 and len(set(greedy)) == 1
    # a stop sequence taken from the greedy text cuts it there
    text = greedy[0]
    assert len(text) > 4
    stop = text[2:4]
    cut = lm.generate([GenerateRequest(prompt, max_new_tokens=20, stop=(stop,))])[0][0]
    assert cut == text[: text.find(stop)]


def test_seq2seq_sampling_reproducible(tiny_t5_dir):
    lm = load_lm(ModelSpec(name=str(tiny_t5_dir), batch_size=2))
    req = GenerateRequest("Translate the following sentence", max_new_tokens=6, temperature=1.0, n=3, seed=11)
    first = lm.generate([req, GenerateRequest("Summarize", max_new_tokens=3)])
    assert lm.generate([req])[0] == first[0] and len(first[0]) == 3


def test_generation_prefix_reuse_equals_plain(tiny_llama_dir):
    loaded = load_pretrained(ModelSpec(name=str(tiny_llama_dir)))
    prompts = [PREFIX + q + "\nAnswer:" for q in QUESTIONS] + [PREFIX + QUESTIONS[0], "Q:"]
    reqs = [GenerateRequest(p, max_new_tokens=10) for p in prompts]
    reqs.append(GenerateRequest(prompts[1], max_new_tokens=6, temperature=0.8, n=3, seed=5))
    reuse = HFLM(loaded, batch_size=2, show_progress=False)
    assert any(p > 0 for p, _ in reuse.generator.groups([reuse.special_prefix + reuse.encode(p)
                                                           for p in prompts]))
    plain = HFLM(loaded, batch_size=2, prefix_reuse=False, show_progress=False)
    assert dict(reuse.generate_tokens(reqs)) == dict(plain.generate_tokens(reqs))


def test_out_of_memory_halves_the_batch(tiny_llama_dir, monkeypatch):
    loaded = load_pretrained(ModelSpec(name=str(tiny_llama_dir)))
    reqs = _requests()
    ref = HFLM(loaded, batch_size=1, show_progress=False).loglikelihood(reqs)
    lm = HFLM(loaded, batch_size="auto", token_budget=100_000, show_progress=False)
    real = HFLM._score_batch
    sizes = []

    def fake_oom(self, plan, batch, *args):
        sizes.append(len(batch))
        if len(batch) > 2:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return real(self, plan, batch, *args)

    monkeypatch.setattr(HFLM, "_score_batch", fake_oom)
    got = lm.loglikelihood(reqs)
    assert max(sizes) > 2 and lm.token_budget < 100_000
    for a, b in zip(got, ref, strict=True):
        assert a.logprob == pytest.approx(b.logprob, abs=1e-4)


def test_kept_prefixes_are_reused_and_extended(tiny_llama_dir):
    loaded = load_pretrained(ModelSpec(name=str(tiny_llama_dir)))
    lm = HFLM(loaded, batch_size=2, show_progress=False)
    plain = HFLM(loaded, batch_size=2, prefix_reuse=False, show_progress=False)
    first = [LoglikelihoodRequest(PREFIX + q, " A") for q in QUESTIONS]
    longer = [LoglikelihoodRequest(PREFIX + QUESTIONS[0] + tail, " B") for tail in (" yes", " no", " maybe")]
    lm.loglikelihood(first)
    kept = next(iter(lm._prefixes))
    got = lm.loglikelihood(longer)  # extends the kept prefix instead of recomputing it
    assert len(lm._prefixes) == 2 and any(len(k) > len(kept) and k[: len(kept)] == kept for k in lm._prefixes)
    for calls in (first, longer, first):
        for a, b in zip(lm.loglikelihood(calls), plain.loglikelihood(calls), strict=True):
            assert a.logprob == pytest.approx(b.logprob, abs=1e-4)
    for a, b in zip(got, plain.loglikelihood(longer), strict=True):
        assert a.logprob == pytest.approx(b.logprob, abs=1e-4)


def test_weight_updates_drop_kept_prefixes(tiny_llama_dir):
    loaded = load_pretrained(ModelSpec(name=str(tiny_llama_dir)))
    lm = HFLM(loaded, batch_size=2, show_progress=False)
    reqs = [LoglikelihoodRequest(PREFIX + q, " A") for q in QUESTIONS]
    before = lm.loglikelihood(reqs)
    with torch.no_grad():
        for p in loaded.model.parameters():
            p.mul_(1.5)  # an in-place update, as an optimizer step makes
    after = lm.loglikelihood(reqs)
    fresh = HFLM(loaded, batch_size=2, prefix_reuse=False, show_progress=False).loglikelihood(reqs)
    assert after[0].logprob != pytest.approx(before[0].logprob, abs=1e-3)
    for a, b in zip(after, fresh, strict=True):
        assert a.logprob == pytest.approx(b.logprob, abs=1e-4)


def test_prefix_groups_decode_together_and_equal_plain(tiny_llama_dir, monkeypatch):
    from flanlab.inference.generation import Generator

    loaded = load_pretrained(ModelSpec(name=str(tiny_llama_dir)))
    other = "Answer each question with a number, thinking step by step first.\n\n" * 3
    prompts = [PREFIX + q + "\nAnswer:" for q in QUESTIONS] + [other + q + "\nA:" for q in QUESTIONS[:3]] + ["Q:"]
    reqs = [GenerateRequest(p, max_new_tokens=12, stop=("\n\n",)) for p in prompts]
    reqs.append(GenerateRequest(prompts[5], max_new_tokens=8, temperature=0.9, n=3, seed=4))
    reuse = HFLM(loaded, batch_size=16, show_progress=False)
    groups = reuse.generator.groups([reuse.special_prefix + reuse.encode(p) for p in prompts])
    assert sum(1 for p, _ in groups if p > 0) >= 2
    decoded = []
    real = Generator._decode

    def spy(self, reqs, indices, *args, **kwargs):
        decoded.append(sorted(indices))
        return real(self, reqs, indices, *args, **kwargs)

    monkeypatch.setattr(Generator, "_decode", spy)
    streamed: dict[tuple[int, int], list[int]] = {}
    got = dict(reuse.generate_tokens(reqs, on_token=lambda i, k, t: streamed.setdefault((i, k), []).append(t)))
    # every prompt, from several prefix groups, decoded in one batch
    assert decoded == [list(range(len(reqs)))]
    monkeypatch.setattr(Generator, "_decode", real)
    for i, samples in got.items():
        for k, ids in enumerate(samples[:1] if reqs[i].temperature <= 0 else samples):
            assert streamed.get((i, k), []) == ids
    plain = HFLM(loaded, batch_size=1, prefix_reuse=False, show_progress=False)
    assert got == dict(plain.generate_tokens(reqs))


def test_generation_out_of_memory_halves_the_decoding_batch(tiny_llama_dir, monkeypatch):
    from flanlab.inference.generation import Generator

    loaded = load_pretrained(ModelSpec(name=str(tiny_llama_dir)))
    other = "Answer each question with a number, thinking step by step first.\n\n" * 3
    prompts = [PREFIX + q + "\nAnswer:" for q in QUESTIONS] + [other + q + "\nA:" for q in QUESTIONS[:3]]
    reqs = [GenerateRequest(p, max_new_tokens=8) for p in prompts]
    ref = dict(HFLM(loaded, batch_size=1, prefix_reuse=False, show_progress=False).generate_tokens(reqs))
    lm = HFLM(loaded, batch_size="auto", show_progress=False)
    real = Generator._batch
    sizes = []

    def fake_oom(self, requests, prompts, chunk, *args):
        sizes.append(len(chunk))
        if len(chunk) > 2:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        ran.append(len(chunk))
        return real(self, requests, prompts, chunk, *args)

    ran: list[int] = []
    monkeypatch.setattr(Generator, "_batch", fake_oom)
    assert dict(lm.generate_tokens(reqs)) == ref
    # all prompts (both prefix groups) tried as one batch, then halved until they fit
    assert sizes[0] == len(reqs) and sum(ran) == len(reqs) and max(ran) <= 2 and lm.generator.max_rows < 32
