"""`flanlab serve` queried by clients nobody here wrote: the official ``openai`` package (completions,
chat, streaming, logprobs, ``n``, ``seed``) and lm-evaluation-harness's ``LocalCompletionsAPI``
(log-likelihood and generate_until), against servers on free 127.0.0.1 ports; every answer equals
what the HF backend computes in-process. The tiny Llama and T5 fixtures keep it fast."""

from __future__ import annotations

import threading
import time
from concurrent.futures import CancelledError

import pytest
import torch

pytest.importorskip("fastapi", reason="flanlab serve needs the serve extra")
openai = pytest.importorskip("openai", reason="the openai client is a dev dependency")

from flanlab.inference import GenerateRequest, LoglikelihoodRequest, ModelSpec  # noqa: E402
from flanlab.inference.hf import HFLM  # noqa: E402
from flanlab.inference.http_client import HTTPLM  # noqa: E402
from flanlab.inference.serve import Server  # noqa: E402
from flanlab.inference.serve_engine import Batcher, TextStream  # noqa: E402

CTX = "The following are multiple choice questions (with answers).\n\nQuestion: What is the answer?\nAnswer:"
PROMPTS = [CTX, "Q: Sort the following words alphabetically: List: apple banana", "Premise: A man is playing"]
MESSAGES = [{"role": "system", "content": "Answer briefly."}, {"role": "user", "content": "What is 9 * 2?"}]


@pytest.fixture(scope="module")
def llama(tiny_llama_dir):
    lm = HFLM.from_spec(ModelSpec(name=str(tiny_llama_dir)), show_progress=False)
    srv = Server(lm, port=0, model_name="tiny").start()
    client = openai.OpenAI(base_url=srv.url, api_key="unused", max_retries=0, timeout=120)
    yield lm, srv, client
    client.close()
    srv.stop()


@pytest.fixture(scope="module")
def t5(tiny_t5_dir):
    lm = HFLM.from_spec(ModelSpec(name=str(tiny_t5_dir)), show_progress=False)
    srv = Server(lm, port=0, model_name="tiny-t5").start()
    client = openai.OpenAI(base_url=srv.url, api_key="unused", max_retries=0, timeout=120)
    yield lm, srv, client
    client.close()
    srv.stop()


def _streamed(stream) -> tuple[dict[int, str], dict[int, str], object]:
    """Joined text and finish reason per choice index, and the usage chunk's usage."""
    texts: dict[int, str] = {}
    reasons: dict[int, str] = {}
    usage = None
    for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage
        for c in chunk.choices:
            piece = c.delta.content if hasattr(c, "delta") else c.text
            texts[c.index] = texts.get(c.index, "") + (piece or "")
            if c.finish_reason:
                reasons[c.index] = c.finish_reason
    return texts, reasons, usage


def test_openai_completions_n_seed_and_logprobs(llama):
    lm, srv, client = llama
    assert srv.host == "127.0.0.1"
    got = client.completions.create(model="tiny", prompt=PROMPTS, max_tokens=8, temperature=0)
    assert [c.text for c in sorted(got.choices, key=lambda c: c.index)] == [
        t[0] for t in lm.generate([GenerateRequest(p, max_new_tokens=8) for p in PROMPTS])]
    assert got.usage.completion_tokens > 0 and got.usage.prompt_tokens > len(PROMPTS)

    sampled = client.completions.create(model="tiny", prompt=PROMPTS[1], max_tokens=6, temperature=0.9,
                                        top_p=0.95, n=3, seed=3)
    ref = lm.generate([GenerateRequest(PROMPTS[1], max_new_tokens=6, temperature=0.9, top_p=0.95, n=3, seed=3)])[0]
    assert [c.text for c in sampled.choices] == ref and len(set(ref)) > 1  # seeded samples, not copies
    again = client.completions.create(model="tiny", prompt=PROMPTS[1], max_tokens=6, temperature=0.9,
                                      top_p=0.95, n=3, seed=3)
    assert [c.text for c in again.choices] == ref

    # logprobs of the generated tokens: a plain forward pass of the model over prompt + generated ids.
    scored = client.completions.create(model="tiny", prompt=CTX, max_tokens=5, temperature=0, logprobs=3)
    choice = scored.choices[0]
    prompt_ids = lm.special_prefix + lm.encode(CTX)
    gen = next(iter(lm.generate_tokens([GenerateRequest(CTX, max_new_tokens=5)])))[1][0]
    with torch.inference_mode():
        logits = lm.model(input_ids=torch.tensor([prompt_ids + gen])).logits[0].float()
    logp = torch.log_softmax(logits, -1)
    ref = [logp[len(prompt_ids) - 1 + j, t].item() for j, t in enumerate(gen)]
    assert choice.logprobs.token_logprobs == pytest.approx(ref, abs=1e-4)
    assert choice.logprobs.tokens == [lm.tokenizer.decode([t]) for t in gen]
    assert all(len(t) <= 3 and max(t.values()) >= lp - 1e-6
               for t, lp in zip(choice.logprobs.top_logprobs, choice.logprobs.token_logprobs, strict=True))
    assert choice.logprobs.text_offset[0] == 0

    # echo + logprobs with max_tokens 0 scores the prompt itself: the in-process per-token scores.
    echoed = client.completions.create(model="tiny", prompt=CTX, max_tokens=0, echo=True, logprobs=1).choices[0]
    inproc = lm.token_logprobs([CTX], top=1)[0]
    assert echoed.text == CTX and echoed.logprobs.tokens == inproc["tokens"]
    assert echoed.logprobs.token_logprobs[0] is None
    assert echoed.logprobs.token_logprobs[1:] == pytest.approx(inproc["logprobs"][1:], abs=1e-4)
    assert echoed.logprobs.text_offset == inproc["offsets"]


def test_openai_chat_and_streaming_equal_the_plain_answer(llama):
    lm, srv, client = llama
    plain = client.chat.completions.create(model="tiny", messages=MESSAGES, max_tokens=10, temperature=0)
    prompt = srv.app.state.service.chat_prompt(
        __import__("flanlab.inference.serve_schema", fromlist=["x"]).ChatCompletionRequest(messages=MESSAGES))
    assert plain.choices[0].message.content == lm.generate([GenerateRequest(prompt, max_new_tokens=10)])[0][0]
    assert plain.choices[0].message.role == "assistant"

    stream = client.chat.completions.create(model="tiny", messages=MESSAGES, max_tokens=10, temperature=0,
                                            stream=True, stream_options={"include_usage": True})
    texts, reasons, usage = _streamed(stream)
    assert texts == {0: plain.choices[0].message.content}
    assert reasons == {0: plain.choices[0].finish_reason}
    assert usage is not None and usage.completion_tokens == plain.usage.completion_tokens
    assert usage.prompt_tokens == plain.usage.prompt_tokens

    # Completions: several prompts x n sampled choices, streamed, equal the non-streamed answer.
    kw = {"model": "tiny", "prompt": PROMPTS[:2], "max_tokens": 7, "temperature": 0.8, "n": 2, "seed": 11}
    whole = client.completions.create(**kw)
    texts, reasons, usage = _streamed(client.completions.create(**kw, stream=True))
    assert texts == {c.index: c.text for c in whole.choices} and len(texts) == 4
    assert reasons == {c.index: c.finish_reason for c in whole.choices}
    assert usage is None  # only asked for with stream_options.include_usage

    # Chat logprobs: the generated tokens' scores with their top alternatives.
    lp = client.chat.completions.create(model="tiny", messages=MESSAGES, max_tokens=4, temperature=0,
                                        logprobs=True, top_logprobs=2)
    content = lp.choices[0].logprobs.content
    assert "".join(t.token for t in content) == lp.choices[0].message.content
    assert all(len(t.top_logprobs) == 2 and t.top_logprobs[0].logprob >= t.logprob - 1e-6 for t in content)


def test_streaming_holds_back_a_stop_string_across_token_boundaries(llama):
    lm, _, client = llama
    prompt = PROMPTS[2]
    ids = next(iter(lm.generate_tokens([GenerateRequest(prompt, max_new_tokens=16)])))[1][0]
    pieces = [lm.tokenizer.decode([i]) for i in ids]
    text = lm.finish_text(ids, ())
    # A stop string made of the end of one token and the start of the next, inside no single token.
    stop = next(s for a, b in zip(pieces, pieces[1:], strict=False) if a and b
                for s in [a[-1] + b[0]] if all(s not in p for p in pieces) and text.find(s) > 0)
    expected = lm.generate([GenerateRequest(prompt, stop=(stop,), max_new_tokens=16)])[0][0]
    assert expected == text[: text.find(stop)]

    chunks = [c.choices[0].text for c in client.completions.create(
        model="tiny", prompt=prompt, max_tokens=16, temperature=0, stop=[stop], stream=True) if c.choices]
    assert "".join(chunks) == expected
    assert all(stop not in "".join(chunks[: i + 1]) for i in range(len(chunks)))

    # The same held-back deltas, token by token, straight from TextStream.
    stream = TextStream(lambda x: lm.tokenizer.decode(x, skip_special_tokens=True), (stop,))
    deltas = [stream.push(i) for i in ids]
    assert "".join(deltas) + stream.finish(expected) == expected and stream.stopped


def test_lm_eval_local_completions_equals_in_process(llama, tiny_llama_dir):
    pytest.importorskip("lm_eval", reason="lm-evaluation-harness is a dev dependency")
    from lm_eval.api.instance import Instance
    from lm_eval.models.openai_completions import LocalCompletionsAPI

    lm, srv, _ = llama
    client = LocalCompletionsAPI(base_url=f"{srv.url}/completions", model="tiny", tokenizer=str(tiny_llama_dir),
                                 tokenizer_backend="huggingface", add_bos_token=True, num_concurrent=4,
                                 max_length=lm.max_length, max_retries=1)
    pairs = [(CTX, o) for o in (" A", " B", " C", " D", " The answer is 42.")] + [
        ("Premise: A man is playing a guitar.", " Hypothesis: A person plays music.")]
    got = client.loglikelihood([Instance("loglikelihood", {}, pair, i) for i, pair in enumerate(pairs)],
                               disable_tqdm=True)
    ref = lm.loglikelihood([LoglikelihoodRequest(c, x) for c, x in pairs])
    assert [g for _, g in got] == [r.is_greedy for r in ref]
    assert [lp for lp, _ in got] == pytest.approx([r.logprob for r in ref], abs=1e-4)

    gen_args = {"until": ["\n", "Question:"], "max_gen_toks": 8, "do_sample": False}
    texts = client.generate_until([Instance("generate_until", {}, (p, dict(gen_args)), i)
                                   for i, p in enumerate(PROMPTS)], disable_tqdm=True)
    assert texts == [t[0] for t in lm.generate([GenerateRequest(p, stop=("\n", "Question:"), max_new_tokens=8)
                                                 for p in PROMPTS])]


def test_t5_served_and_queried_the_same_way(t5):
    lm, srv, client = t5
    got = client.completions.create(model="tiny-t5", prompt=PROMPTS, max_tokens=6, temperature=0)
    assert [c.text for c in got.choices] == [t[0] for t in lm.generate([GenerateRequest(p, max_new_tokens=6)
                                                                         for p in PROMPTS])]
    sampled = client.completions.create(model="tiny-t5", prompt=CTX, max_tokens=5, temperature=1.0, n=2, seed=5)
    assert [c.text for c in sampled.choices] == lm.generate(
        [GenerateRequest(CTX, max_new_tokens=5, temperature=1.0, n=2, seed=5)])[0]
    plain = client.chat.completions.create(model="tiny-t5", messages=MESSAGES, max_tokens=6, temperature=0)
    texts, _, _ = _streamed(client.chat.completions.create(model="tiny-t5", messages=MESSAGES, max_tokens=6,
                                                           temperature=0, stream=True))
    assert texts == {0: plain.choices[0].message.content}
    # Seq2seq scoring goes through flanlab's route (OpenAI's echo+logprobs is decoder-only).
    pairs = [LoglikelihoodRequest(CTX, o) for o in (" A", " B", " yes")]
    http = HTTPLM(ModelSpec(name="tiny-t5", backend="http", base_url=srv.url))
    ref = lm.loglikelihood(pairs)
    got_ll = http.loglikelihood(pairs)
    http.close()
    assert [r.logprob for r in got_ll] == pytest.approx([r.logprob for r in ref], abs=1e-5)
    with pytest.raises(openai.BadRequestError, match="decoder-only"):
        client.completions.create(model="tiny-t5", prompt=CTX, max_tokens=0, echo=True, logprobs=1)

    pytest.importorskip("lm_eval", reason="lm-evaluation-harness is a dev dependency")
    from lm_eval.api.instance import Instance
    from lm_eval.models.openai_completions import LocalCompletionsAPI

    # Text prompts (T5's tokenizer appends </s>, as the in-process backend reads them).
    harness = LocalCompletionsAPI(base_url=f"{srv.url}/completions", model="tiny-t5", tokenizer_backend=None,
                                  tokenized_requests=False, num_concurrent=2, max_retries=1)
    args = {"until": ["\n"], "max_gen_toks": 6}
    texts = harness.generate_until([Instance("generate_until", {}, (p, dict(args)), i)
                                    for i, p in enumerate(PROMPTS)], disable_tqdm=True)
    assert texts == [t[0] for t in lm.generate([GenerateRequest(p, stop=("\n",), max_new_tokens=6)
                                                 for p in PROMPTS])]


def test_concurrent_requests_run_as_one_batch(tiny_llama_dir):
    """Requests submitted within the collection window run as one backend call, each answered
    with what it gets alone (greedy and seeded sampling)."""
    lm = HFLM.from_spec(ModelSpec(name=str(tiny_llama_dir)), show_progress=False)
    batcher = Batcher(lm, window_s=2.0)  # far longer than submitting four requests takes
    batcher.start()
    try:
        reqs = [GenerateRequest(p, max_new_tokens=6) for p in PROMPTS] + [
            GenerateRequest(PROMPTS[0], max_new_tokens=5, temperature=0.7, n=2, seed=9)]
        ids = [lm.special_prefix + lm.encode(r.prompt) for r in reqs]
        futures: list = [None] * len(reqs)

        def submit(i: int) -> None:
            futures[i] = batcher.generate([(reqs[i], ids[i])])

        threads = [threading.Thread(target=submit, args=(i,)) for i in range(len(reqs))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        got = [[lm.finish_text(x, ()) for x in f.result(timeout=120)[0]] for f in futures]
        assert batcher.batches[-1] == len(reqs)
        assert got == [lm.generate([r])[0] for r in reqs]
        # One bad request in a batch fails alone.
        bad = batcher.loglikelihood([LoglikelihoodRequest("", "x " * (lm.max_length + 8))])
        good = batcher.loglikelihood([LoglikelihoodRequest(CTX, " A")])
        with pytest.raises(ValueError, match="max_length"):
            bad.result(timeout=120)
        assert good.result(timeout=120)[0].logprob == pytest.approx(
            lm.loglikelihood([LoglikelihoodRequest(CTX, " A")])[0].logprob, abs=1e-5)
    finally:
        batcher.stop()


def test_api_key_is_checked_and_never_logged(tiny_llama_dir, monkeypatch, caplog):
    monkeypatch.setenv("FLANLAB_SERVE_TEST_CRED", "sk-serve-8c1f2e")
    lm = HFLM.from_spec(ModelSpec(name=str(tiny_llama_dir)), show_progress=False)
    with caplog.at_level("DEBUG"), Server(lm, port=0, api_key_env="FLANLAB_SERVE_TEST_CRED") as srv:
        bad = openai.OpenAI(base_url=srv.url, api_key="sk-wrong", max_retries=0)
        with pytest.raises(openai.AuthenticationError):
            bad.models.list()
        with pytest.raises(openai.AuthenticationError):
            list(bad.completions.create(model="m", prompt="x", max_tokens=2, stream=True))
        good = openai.OpenAI(base_url=srv.url, api_key="sk-serve-8c1f2e", max_retries=0)
        assert [m.id for m in good.models.list()] == [lm.name]
        assert good.completions.create(model="m", prompt="x", max_tokens=2, temperature=0).choices
        with pytest.raises(openai.BadRequestError, match="'n'"):
            good.completions.create(model="m", prompt="x", n=0)
        bad.close()
        good.close()
    assert "sk-serve-8c1f2e" not in caplog.text
    with pytest.raises(ValueError, match="not set"):
        Server(lm, port=0, api_key_env="FLANLAB_SERVE_UNSET_VAR")


# ---------------------------------------------------------------- continuous batching
def _prompt_ids(lm, req: GenerateRequest) -> list[int]:
    return lm.special_prefix + lm.encode(req.prompt)


def test_a_request_arriving_mid_batch_joins_it_and_answers_as_alone(tiny_llama_dir):
    """Requests submitted while another decodes join its batch at the next step, stream their own
    tokens, are answered as soon as they are done (before the long one), and get exactly what
    they get alone (greedy and seeded samples)."""
    lm = HFLM.from_spec(ModelSpec(name=str(tiny_llama_dir)), show_progress=False)
    batcher = Batcher(lm, window_s=0.0)
    batcher.start()
    try:
        long = GenerateRequest(PROMPTS[0], max_new_tokens=40)
        joiners = [GenerateRequest(PROMPTS[1], max_new_tokens=6),
                   GenerateRequest(PROMPTS[2], max_new_tokens=5, temperature=0.7, n=2, seed=9)]
        streamed: dict[tuple[int, int], list[int]] = {}
        answered: list[str] = []
        futures: dict[str, object] = {}

        def watch(name: str):
            def on_token(item: int, sample: int, token: int) -> None:
                streamed.setdefault((int(name[-1]) if name != "long" else -1, sample), []).append(token)
            return on_token

        def on_long(item: int, sample: int, token: int) -> None:
            if item == 0 and len(streamed.setdefault((-1, 0), [])) == 3:
                # The model thread itself submits them mid-batch: they join at the next step boundary.
                for k, r in enumerate(joiners):
                    futures[f"j{k}"] = batcher.generate([(r, _prompt_ids(lm, r))], watch(f"j{k}"))
                    futures[f"j{k}"].add_done_callback(lambda _, k=k: answered.append(f"j{k}"))
            streamed[(-1, 0)].append(token)

        futures["long"] = batcher.generate([(long, _prompt_ids(lm, long))], on_long)
        futures["long"].add_done_callback(lambda _: answered.append("long"))
        got_long = futures["long"].result(timeout=120)[0]
        got = [futures[f"j{k}"].result(timeout=120)[0] for k in range(len(joiners))]
        assert [lm.finish_text(x, ()) for x in got_long] == lm.generate([long])[0]
        for r, samples in zip(joiners, got, strict=True):
            assert [lm.finish_text(x, ()) for x in samples] == lm.generate([r])[0]
        assert 3 in batcher.steps  # all three decoded in one step
        assert answered[-1] == "long" and sorted(answered[:2]) == ["j0", "j1"]
        # Streaming per row: each sample's tokens came as they were chosen, equal to its answer.
        assert streamed[(-1, 0)] == got_long[0]
        assert streamed[(0, 0)] == got[0][0]
        assert [streamed[(1, s)] for s in range(2)] == got[1]
    finally:
        batcher.stop()


def test_a_cancelled_request_leaves_the_batch_and_the_others_go_on(tiny_llama_dir):
    lm = HFLM.from_spec(ModelSpec(name=str(tiny_llama_dir)), show_progress=False)
    batcher = Batcher(lm, window_s=2.0)  # both start in one batch
    batcher.start()
    try:
        doomed = GenerateRequest(PROMPTS[0], max_new_tokens=60)
        other = GenerateRequest(PROMPTS[1], max_new_tokens=12, temperature=0.9, seed=4)
        seen: list[int] = []
        holder: dict[str, object] = {}

        def on_token(item: int, sample: int, token: int) -> None:
            seen.append(token)
            if len(seen) == 3:  # its client goes away mid-stream
                batcher.cancel(holder["doomed"])

        holder["doomed"] = batcher.generate([(doomed, _prompt_ids(lm, doomed))], on_token)
        survivor = batcher.generate([(other, _prompt_ids(lm, other))])
        with pytest.raises(CancelledError):
            holder["doomed"].result(timeout=120)
        assert [lm.finish_text(x, ()) for x in survivor.result(timeout=120)[0]] == lm.generate([other])[0]
        assert len(seen) == 3  # no token after the cancellation
        assert batcher.steps.count(2) <= 4 and batcher.idle()
        # The batcher keeps serving.
        again = batcher.generate([(other, _prompt_ids(lm, other))])
        assert [lm.finish_text(x, ()) for x in again.result(timeout=120)[0]] == lm.generate([other])[0]
    finally:
        batcher.stop()


class _Gate:
    """A long request submitted to the server's batcher that holds the model thread at chosen tokens
    of its own until released: requests sent while it is held queue up, and join the running batch
    at the step after the release, whatever the machine's speed. ``sizes``: requests decoding at
    each of its tokens."""

    def __init__(self, lm, srv, holds: tuple[int, ...], max_new_tokens: int = 300) -> None:
        self.srv = srv
        self.release = {k: threading.Event() for k in holds}
        self.held = {k: threading.Event() for k in holds}
        self.sizes: list[int] = []
        req = GenerateRequest(PROMPTS[0], max_new_tokens=max_new_tokens)
        self.future = srv.batcher.generate([(req, _prompt_ids(lm, req))], self._on_token)

    def _on_token(self, item: int, sample: int, token: int) -> None:
        self.sizes.append(self.srv.batcher.steps[-1])
        k = len(self.sizes)
        if k in self.release:
            self.held[k].set()
            self.release[k].wait(120)

    def wait_held(self, k: int) -> None:
        assert self.held[k].wait(120), f"the gate never reached its token {k}"

    def release_when_queued(self, k: int, queued: int = 1) -> None:
        end = time.monotonic() + 120
        while self.srv.batcher._queue.qsize() < queued:
            assert time.monotonic() < end, "the requests never reached the queue"
            time.sleep(0.01)
        self.release[k].set()


def test_streams_that_join_a_running_batch_equal_their_plain_answers(llama):
    lm, srv, client = llama
    chat_kw = {"model": "tiny", "messages": MESSAGES, "max_tokens": 30, "temperature": 0}
    comp_kw = {"model": "tiny", "prompt": PROMPTS[:2], "max_tokens": 12, "temperature": 0.8, "n": 2, "seed": 5}
    plain_chat = client.chat.completions.create(**chat_kw)
    plain_comp = client.completions.create(**comp_kw)
    gate = _Gate(lm, srv, holds=(1, 2))
    out: dict[str, tuple] = {}
    chat = threading.Thread(target=lambda: out.setdefault(
        "chat", _streamed(client.chat.completions.create(**chat_kw, stream=True))))
    comp = threading.Thread(target=lambda: out.setdefault(
        "comp", _streamed(client.completions.create(**comp_kw, stream=True))))
    gate.wait_held(1)
    chat.start()
    gate.release_when_queued(1)  # the chat stream joins at the gate's 2nd token
    gate.wait_held(2)
    comp.start()
    gate.release_when_queued(2)  # the completion stream (2 prompts x 2 samples) joins at its 3rd
    chat.join(120)
    comp.join(120)
    gate.future.result(timeout=120)
    assert out["chat"][0] == {0: plain_chat.choices[0].message.content}
    assert out["chat"][1] == {0: plain_chat.choices[0].finish_reason}
    assert out["comp"][0] == {c.index: c.text for c in plain_comp.choices} and len(out["comp"][0]) == 4
    assert 3 in gate.sizes  # the gate, the chat and the completion decoded in one step


def test_a_client_that_disconnects_mid_stream_leaves_the_batch(llama):
    lm, srv, client = llama
    kw = {"model": "tiny", "prompt": PROMPTS[1], "max_tokens": 30, "temperature": 0}
    plain = client.completions.create(**kw).choices[0].text
    before = srv.batcher.step_total
    gate = _Gate(lm, srv, holds=(1,), max_new_tokens=50)
    out: dict[str, str] = {}
    pieces: list[str] = []

    def abandon() -> None:
        stream = client.completions.create(model="tiny", prompt=PROMPTS[2], max_tokens=1500, temperature=0,
                                           stream=True)
        for chunk in stream:
            pieces.append(chunk.choices[0].text if chunk.choices else "")
            if len(pieces) == 3:
                break
        stream.close()  # the connection closes with 1497 tokens still to come

    threads = [threading.Thread(target=abandon),
               threading.Thread(target=lambda: out.setdefault("text", client.completions.create(**kw).choices[0].text))]
    gate.wait_held(1)
    for t in threads:
        t.start()
    gate.release_when_queued(1, queued=2)
    for t in threads:
        t.join(120)
    gate.future.result(timeout=120)
    assert out["text"] == plain and len(pieces) == 3
    end = time.monotonic() + 120
    while not srv.batcher.idle() and time.monotonic() < end:
        time.sleep(0.02)
    assert srv.batcher.idle()
    # Its 1500 tokens would take 1500 steps; it left the batch instead.
    assert srv.batcher.step_total - before < 1500
    assert max(gate.sizes) == 3
    # The server goes on answering.
    assert client.completions.create(**kw).choices[0].text == plain
