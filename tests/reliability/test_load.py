"""The HTTP backend against a real ``flanlab serve`` (127.0.0.1, a port the kernel picks) behind a loopback
proxy that injects server errors, rate limits and slow answers: 64 concurrent requests are all
answered (retried where needed), nothing is lost or duplicated, the server's memory stays bounded,
and the API key reaches no log, cache or result file."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from flanlab.cli import main
from flanlab.core.io import read_jsonl
from flanlab.inference import GenerateRequest, LoglikelihoodRequest, ModelSpec
from flanlab.inference.http_client import HTTPLM
from tests.reliability.conftest import REPO, cli_env, serve_url
from tests.reliability.faulty_proxy import FaultyProxy

# An env var name that does not look secret (no KEY/TOKEN/...): redaction must not rely on the name.
KEY_ENV = "FLANLAB_REL_CRED"
KEY = "sk-rel-7f3a9c2e1b5d"
CONCURRENT = 64
TIMEOUT_S = 6.0  # generous: waiting behind a running backend batch counts against it


@pytest.fixture(scope="module")
def served(tiny_llama_dir, tmp_path_factory):
    """``flanlab serve`` in a subprocess on a port the kernel picks, requiring the API key; yields
    (url, pid, log)."""
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "flanlab", "serve", "--model", str(tiny_llama_dir), "--host", "127.0.0.1",
             "--port", "0", "--api-key-env", KEY_ENV, "--seed", "0", "--served-name", "tiny"],
            env=cli_env(**{KEY_ENV: KEY}), stdout=out, stderr=subprocess.STDOUT, cwd=REPO)
    try:
        url = serve_url(proc, log)  # logged after bind, before serving: connections queue until then
        assert httpx.get(f"{url}/models", headers={"Authorization": f"Bearer {KEY}"}, timeout=60).status_code == 200
        yield url, proc.pid, log
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _client(url: str, **kw) -> HTTPLM:
    spec = ModelSpec(name="tiny", backend="http", base_url=url, api_key_env=KEY_ENV,
                     max_concurrency=CONCURRENT, timeout_s=TIMEOUT_S)
    return HTTPLM(spec, backoff_s=0.05, **kw)


def _gen_requests(wave: int) -> list[GenerateRequest]:
    return [GenerateRequest(f"Wave {wave}, question {i}: what is {i} plus {wave}? Answer:", max_new_tokens=6,
                            stop=("\n",)) for i in range(CONCURRENT)]


def _rss(pid: int) -> int:
    import psutil

    return psutil.Process(pid).memory_info().rss


@pytest.mark.slow
def test_64_concurrent_requests_with_injected_faults(served, monkeypatch):
    url, pid, _ = served
    monkeypatch.setenv(KEY_ENV, KEY)
    reqs = _gen_requests(0)
    ll = [LoglikelihoodRequest(f"Question {i}: is {i} even? Answer:", c) for i in range(300) for c in (" yes", " no")]
    direct = _client(url)
    ref_gen, ref_ll = direct.generate(reqs), direct.loglikelihood(ll)

    proxy = FaultyProxy(url, client_timeout=TIMEOUT_S)
    try:
        client = _client(proxy.url)
        got_gen = client.generate(reqs)
        got_ll = client.loglikelihood(ll)  # 600 requests → 3 concurrent chunks of 256
        client.close()
    finally:
        proxy.close()
    # Every request answered, in order, once: what the fault-free run returned.
    assert got_gen == ref_gen and len(got_gen) == CONCURRENT
    assert [(r.logprob, r.is_greedy) for r in got_ll] == [(r.logprob, r.is_greedy) for r in ref_ll]
    bodies = CONCURRENT + 3
    assert len(proxy.attempts) == bodies and all(proxy.answered[d] >= 1 for d in proxy.attempts)
    faults = sum(n for f, n in proxy.injected.items() if f != "slow")
    retries = sum(proxy.attempts.values()) - bodies
    assert faults >= 8 and retries >= faults  # each injected failure was retried (at least) once
    assert set(proxy.injected) >= {"503", "500-echo", "429", "too-slow"}

    # Memory: three more waves of 64 concurrent requests straight at the server; after the first
    # (warm) wave its resident memory stays flat.
    rss = []
    for wave in (1, 2, 3):
        assert len(direct.generate(_gen_requests(wave))) == CONCURRENT
        rss.append(_rss(pid))
    assert rss[-1] - rss[0] < 48 * 2**20, [r // 2**20 for r in rss]
    print(f"load: {bodies} bodies, {dict(proxy.injected)} injected, {retries} retries, "
          f"server RSS MiB {[r // 2**20 for r in rss]}")


def _files(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file()]


@pytest.mark.slow
def test_api_key_never_reaches_logs_caches_or_results(served, mmlu_data, tmp_path, monkeypatch, capsys):
    url, _, serve_log = served
    monkeypatch.setenv(KEY_ENV, KEY)
    proxy = FaultyProxy(url, client_timeout=TIMEOUT_S)
    cfg = tmp_path / "eval.yaml"
    cfg.write_text(f"""# flanlab eval --config eval.yaml
kind: eval
model: {{name: tiny, backend: http, base_url: "{proxy.url}", api_key_env: {KEY_ENV}, max_concurrency: 16,
         timeout_s: {TIMEOUT_S}}}
benchmarks: [mmlu]
strategies: [direct, direct_gen]
limit: 40
max_new_tokens: 4
data_dir: "{mmlu_data}"
""", encoding="utf-8")
    try:
        rc = main(["eval", "--config", str(cfg), "--runs-dir", str(tmp_path / "runs"), "--run-name", "http", "-v"])
    finally:
        proxy.close()
    out = capsys.readouterr()
    assert rc == 0, out.err
    run = tmp_path / "runs" / "http"
    records = read_jsonl(run / "examples.jsonl")
    keys = [(r["strategy"], r["index"]) for r in records]
    assert len(keys) == len(set(keys)) == 80  # nothing lost, nothing duplicated
    log = (run / "log.txt").read_text()
    assert "retrying" in log and proxy.injected["500-echo"] >= 1  # the echoing error was seen and logged
    secret = KEY.encode()
    leaks = [str(p) for p in [*_files(run), serve_log] if secret in p.read_bytes()]
    assert leaks == []
    assert KEY not in out.out and KEY not in out.err
