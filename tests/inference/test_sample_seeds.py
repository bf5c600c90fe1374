"""Self-consistency: k samples drawn by one request equal k separate one-sample requests under the
same seeds (each sample has its own seeded stream)."""

from __future__ import annotations

from flanlab.inference import GenerateRequest
from flanlab.inference.generation import sample_seed, seed_of_sample
from flanlab.inference.hf import HFLM
from flanlab.inference.loading import load_pretrained
from flanlab.inference.spec import ModelSpec


def test_seed_of_sample_inverts_the_per_sample_stream():
    for seed in (0, 1, 12345, 2**31 - 1):
        for k in range(8):
            assert sample_seed(seed_of_sample(seed, k), 0) == sample_seed(seed, k)


def test_k_samples_in_one_request_equal_k_separate_requests(tiny_llama_dir):
    lm = HFLM(load_pretrained(ModelSpec(name=str(tiny_llama_dir), device="cpu")), show_progress=False)
    prompts = ["the cat sat on the", "one two three four five six"]
    joint = lm.generate([GenerateRequest(p, max_new_tokens=6, temperature=1.0, n=4, seed=7 + i)
                         for i, p in enumerate(prompts)])
    separate = [[lm.generate([GenerateRequest(p, max_new_tokens=6, temperature=1.0, n=1,
                                              seed=seed_of_sample(7 + i, k))])[0][0] for k in range(4)]
                for i, p in enumerate(prompts)]
    assert joint == separate
    assert len(set(joint[0])) > 1  # the samples do differ
