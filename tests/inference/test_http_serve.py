"""`flanlab serve` + the HTTP backend: the client returns what the HF backend returns; retries,
API keys and the OpenAI response shapes."""

from __future__ import annotations

import subprocess
import sys

import httpx
import pytest

pytest.importorskip("fastapi", reason="flanlab serve needs the serve extra")

from flanlab.inference import GenerateRequest, LoglikelihoodRequest, ModelSpec, load_lm
from flanlab.inference.hf import HFLM
from flanlab.inference.http_client import HTTPLM, HTTPError
from flanlab.inference.serve import make_server
from tests.reliability.conftest import REPO, cli_env, serve_url

CTX = "The following are multiple choice questions (with answers).\n\nQuestion: What is the answer?\nAnswer:"
LL = [LoglikelihoodRequest(CTX, o) for o in (" A", " B", " C", " D", " The answer is 42.")] + [
    LoglikelihoodRequest("Premise: A man is playing a guitar. ", "Hypothesis: A person plays music."),
]
GEN = [
    GenerateRequest(CTX, max_new_tokens=8),
    GenerateRequest("Q: Sort the following words", max_new_tokens=6, temperature=0.9, top_p=0.95, n=3, seed=3),
]


@pytest.fixture(scope="module")
def server(tiny_llama_dir):
    lm = HFLM.from_spec(ModelSpec(name=str(tiny_llama_dir)), show_progress=False)
    srv = make_server(lm, port=0, model_name="tiny").start()
    yield lm, srv.url
    srv.stop()


def test_http_backend_returns_what_hf_returns(server):
    lm, url = server
    client = load_lm(ModelSpec(name="tiny", backend="http", base_url=url, max_concurrency=2))
    assert isinstance(client, HTTPLM)
    ref = lm.loglikelihood(LL)
    got = client.loglikelihood(LL)
    assert [r.is_greedy for r in got] == [r.is_greedy for r in ref]
    for a, b in zip(got, ref, strict=True):
        assert a.logprob == pytest.approx(b.logprob, abs=1e-5)
    # The generic OpenAI route (echo + logprobs) agrees too.
    echo = client._loglikelihood_echo(LL)
    for a, b in zip(echo, ref, strict=True):
        assert a.logprob == pytest.approx(b.logprob, abs=1e-4)
        assert a.is_greedy == b.is_greedy
    assert client.generate(GEN) == lm.generate(GEN)


def test_openai_shapes_and_errors(server):
    _, url = server
    models = httpx.get(f"{url}/models").json()
    assert models["data"][0]["id"] == "tiny"
    body = {"model": "tiny", "prompt": ["Q:", "Answer:"], "max_tokens": 4, "temperature": 0, "logprobs": 2}
    out = httpx.post(f"{url}/completions", json=body).json()
    assert out["object"] == "text_completion" and len(out["choices"]) == 2
    lp = out["choices"][0]["logprobs"]
    assert len(lp["tokens"]) == len(lp["token_logprobs"]) and all(len(t) <= 2 for t in lp["top_logprobs"])
    chat = httpx.post(f"{url}/chat/completions", json={
        "messages": [{"role": "user", "content": "What is the answer?"}], "max_tokens": 5, "temperature": 0,
        "logprobs": True, "top_logprobs": 1,
    }).json()
    assert chat["choices"][0]["message"]["role"] == "assistant"
    assert isinstance(chat["choices"][0]["logprobs"]["content"], list)
    bad = httpx.post(f"{url}/completions", json={"prompt": "x", "n": "three"})
    assert bad.status_code == 400 and "'n'" in bad.json()["error"]["message"]
    assert httpx.post(f"{url}/nope", json={}).status_code == 404
    # FastAPI's schema of the request models, for /docs.
    schema = httpx.get(url.removesuffix("/v1") + "/openapi.json").json()
    assert {"/v1/completions", "/v1/chat/completions", "/v1/flanlab/loglikelihood"} <= set(schema["paths"])
    assert "stream_options" in schema["components"]["schemas"]["CompletionRequest"]["properties"]
    assert httpx.post(f"{url}/completions", content=b"{not json").status_code == 400


def test_retries_on_429_and_5xx_then_gives_up():
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        if len(calls) < 3:
            return httpx.Response(429 if len(calls) == 1 else 503, headers={"Retry-After": "0"})
        return httpx.Response(200, json={"choices": [{"index": 0, "text": "ok STOP more"}]})

    spec = ModelSpec(name="m", backend="http", base_url="http://test/v1", api_key_env="FLANLAB_TEST_KEY")
    client = HTTPLM(spec, backoff_s=0.0, transport=httpx.MockTransport(handler))
    assert client.generate([GenerateRequest("hi", stop=("STOP",))]) == [["ok "]]
    assert len(calls) == 3

    always = HTTPLM(spec, max_retries=2, backoff_s=0.0, transport=httpx.MockTransport(lambda r: httpx.Response(500)))
    with pytest.raises(HTTPError, match="after 3 attempts"):
        always.generate([GenerateRequest("hi")])
    fatal = HTTPLM(spec, backoff_s=0.0, transport=httpx.MockTransport(lambda r: httpx.Response(400, text="bad")))
    with pytest.raises(HTTPError, match="HTTP 400"):
        fatal.generate([GenerateRequest("hi")])


def test_api_key_from_env_only_and_never_in_errors(monkeypatch):
    seen = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("Authorization"))
        return httpx.Response(500, text=f"echo {request.headers.get('Authorization')}")

    monkeypatch.setenv("FLANLAB_TEST_API_KEY", "sk-very-secret-123")
    spec = ModelSpec(name="m", backend="http", base_url="http://test/v1", api_key_env="FLANLAB_TEST_API_KEY")
    client = HTTPLM(spec, max_retries=0, transport=httpx.MockTransport(handler))
    with pytest.raises(HTTPError) as info:
        client.generate([GenerateRequest("hi")])
    assert seen == ["Bearer sk-very-secret-123"]
    assert "sk-very-secret-123" not in str(info.value)


@pytest.mark.slow
def test_flanlab_serve_cli_with_api_key(tiny_llama_dir, monkeypatch, tmp_path):
    log = tmp_path / "serve.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "flanlab", "serve", "--model", str(tiny_llama_dir), "--port", "0",
             "--api-key-env", "SERVE_KEY", "--seed", "0"],
            env=cli_env(SERVE_KEY="k-123456789"), stdout=out, stderr=subprocess.STDOUT, cwd=REPO,
        )
    try:
        url = serve_url(proc, log)  # port 0: the kernel picks a free one at bind time, no race
        assert httpx.get(f"{url}/models", timeout=60).status_code == 401
        monkeypatch.setenv("SERVE_KEY", "k-123456789")
        client = HTTPLM(ModelSpec(name=str(tiny_llama_dir), backend="http", base_url=url, api_key_env="SERVE_KEY"))
        ref = HFLM.from_spec(ModelSpec(name=str(tiny_llama_dir)), show_progress=False)
        assert client.generate(GEN[:1]) == ref.generate(GEN[:1])
        got = client.loglikelihood(LL[:2])
        # A tolerance, not round(x, 4) == round(y, 4): the server runs on another thread count, and
        # a last-bit difference next to a rounding boundary would flip the comparison.
        assert [r.logprob for r in got] == pytest.approx([r.logprob for r in ref.loglikelihood(LL[:2])], abs=1e-4)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert "k-123456789" not in log.read_text(errors="replace")
