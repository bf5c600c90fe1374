"""The SQLite request cache: repeated requests are answered from disk; an interrupted run resumes."""

from __future__ import annotations

import pytest

from flanlab.inference import GenerateRequest, LoglikelihoodRequest, ModelSpec, load_lm
from flanlab.inference.cache import CachedLM
from flanlab.inference.hf import HFLM

REQS = [LoglikelihoodRequest(f"Question {i}: What is the answer?\nAnswer:", o) for i in range(5) for o in " AB"]


class Flaky:
    """Wraps an LM and fails after ``ok_calls`` loglikelihood calls (an interrupted evaluation)."""

    def __init__(self, lm, ok_calls: int) -> None:
        self.lm, self.name, self.ok_calls, self.seen = lm, lm.name, ok_calls, 0
        self.fingerprint = lm.fingerprint

    def loglikelihood(self, requests):
        if self.ok_calls == 0:
            raise KeyboardInterrupt
        self.ok_calls -= 1
        self.seen += len(requests)
        return self.lm.loglikelihood(requests)

    def generate(self, requests):
        self.seen += len(requests)
        return self.lm.generate(requests)


def test_cache_resumes_without_recomputing(tiny_llama_dir, tmp_path):
    hf = HFLM.from_spec(ModelSpec(name=str(tiny_llama_dir)), show_progress=False)
    ref = hf.loglikelihood(REQS)
    db = tmp_path / "cache.sqlite"
    flaky = Flaky(hf, ok_calls=1)
    with pytest.raises(KeyboardInterrupt):
        CachedLM(flaky, db, chunk=4).loglikelihood(REQS)
    assert flaky.seen == 4
    again = Flaky(hf, ok_calls=10)
    cached = CachedLM(again, db, chunk=4)
    got = cached.loglikelihood(REQS)
    assert again.seen == len(REQS) - 4 and cached.hits == 4
    for a, b in zip(got, ref, strict=True):  # other batch company: equal up to float rounding
        assert a.logprob == pytest.approx(b.logprob, abs=1e-4) and a.is_greedy == b.is_greedy
    gens = [GenerateRequest("Q:", max_new_tokens=4, temperature=0.8, n=2, seed=1)]
    first = cached.generate(gens)
    seen = again.seen
    assert cached.generate(gens) == first and again.seen == seen
    # a different seed is a different request
    cached.generate([GenerateRequest("Q:", max_new_tokens=4, temperature=0.8, n=2, seed=2)])
    assert again.seen == seen + 1


def test_load_lm_wraps_cache_and_keys_on_the_model(tiny_llama_dir, tiny_t5_dir, tmp_path):
    db = str(tmp_path / "c.sqlite")
    lm = load_lm(ModelSpec(name=str(tiny_llama_dir), cache=db))
    assert isinstance(lm, CachedLM)
    lm.loglikelihood(REQS[:2])
    t5 = load_lm(ModelSpec(name=str(tiny_t5_dir), cache=db))
    t5.loglikelihood(REQS[:2])
    assert t5.misses == 2 and t5.hits == 0  # another model's entries are not reused
    assert len(t5.cache) == 4
