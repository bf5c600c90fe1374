"""An OpenAI-compatible HTTP client backend (``backend: http``).

- generation through ``/v1/completions`` (n, stop, temperature, top_p, seed);
- log-likelihoods through flanlab's ``/v1/flanlab/loglikelihood`` when the server is
  ``flanlab serve``, else the usual ``echo`` + ``logprobs`` + ``max_tokens: 0`` completion;
- timeouts, retries with exponential backoff on 429 / 5xx / connection errors (``Retry-After``
  honoured), at most ``max_concurrency`` requests in flight;
- the API key comes only from the environment variable named by ``api_key_env`` and never appears
  in logs, errors or results.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from flanlab.core.errors import UserError
from flanlab.core.log import get_logger, redact, register_secret
from flanlab.inference.base import GenerateRequest, LoglikelihoodRequest, LoglikelihoodResult
from flanlab.inference.spec import ModelSpec

__all__ = ["HTTPError", "HTTPLM"]

log = get_logger(__name__)
_RETRY_STATUS = {408, 409, 429, 500, 502, 503, 504}


class HTTPError(RuntimeError):
    """The server kept failing or answered with an error that retrying cannot fix."""


class HTTPLM:
    """An :class:`~flanlab.inference.base.LM` talking to an OpenAI-compatible server."""

    def __init__(
        self,
        spec: ModelSpec,
        *,
        max_retries: int = 5,
        backoff_s: float = 0.5,
        prompts_per_request: int = 16,
        transport: Any = None,
    ) -> None:
        import httpx

        if not spec.base_url:
            raise UserError("model.base_url: the http backend needs the server's URL, e.g. http://127.0.0.1:8000/v1")
        self.spec = spec
        self.name = spec.name
        self.base_url = spec.base_url.rstrip("/")
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.prompts_per_request = prompts_per_request
        headers = {"Content-Type": "application/json"}
        key = os.environ.get(spec.api_key_env) if spec.api_key_env else None
        if key:
            register_secret(key)  # whatever its variable is called, the key never reaches a log line
            headers["Authorization"] = f"Bearer {key}"
        self._client = httpx.Client(
            timeout=httpx.Timeout(spec.timeout_s),
            headers=headers,
            limits=httpx.Limits(max_connections=spec.max_concurrency),
            transport=transport,
        )
        self._native: bool | None = None  # whether the server offers /v1/flanlab/loglikelihood

    @property
    def fingerprint(self) -> str:
        return f"http:{self.base_url}:{self.name}"

    def close(self) -> None:
        self._client.close()

    # ------------------------------------------------------------------ transport
    def _post(self, path: str, body: dict) -> dict:
        """POST with retries; returns the JSON body. 404 raises ``LookupError`` (route missing)."""
        import httpx

        url = f"{self.base_url}{path}"
        delay = self.backoff_s
        for attempt in range(self.max_retries + 1):
            try:
                resp = self._client.post(url, json=body)
            except httpx.TransportError as e:
                problem = f"{type(e).__name__}: {redact(str(e))}"
                retry_after = None
            else:
                if resp.status_code == 200:
                    return resp.json()
                if resp.status_code == 404:
                    raise LookupError(path)
                problem = f"HTTP {resp.status_code}: {redact(resp.text[:300])}"
                if resp.status_code not in _RETRY_STATUS:
                    raise HTTPError(f"{url}: {problem}")
                retry_after = resp.headers.get("Retry-After")
            if attempt == self.max_retries:
                raise HTTPError(f"{url}: giving up after {attempt + 1} attempts; last error {problem}")
            wait = float(retry_after) if retry_after and retry_after.replace(".", "", 1).isdigit() else delay
            wait = min(wait, 60.0) * (1 + 0.1 * random.random())  # jitter spreads concurrent retries
            log.warning("%s: %s; retrying in %.1fs", url, problem, wait)
            time.sleep(wait)
            delay *= 2
        raise AssertionError("unreachable")

    def _parallel(self, fn: Callable[[Any], Any], items: Sequence[Any]) -> list[Any]:
        if len(items) <= 1:
            return [fn(x) for x in items]
        with ThreadPoolExecutor(max_workers=max(1, self.spec.max_concurrency)) as pool:
            return list(pool.map(fn, items))

    def _chunks(self, n: int) -> list[range]:
        size = max(1, self.prompts_per_request)
        return [range(i, min(n, i + size)) for i in range(0, n, size)]

    # ------------------------------------------------------------------ LM protocol
    def loglikelihood(self, requests: Sequence[LoglikelihoodRequest]) -> list[LoglikelihoodResult]:
        if not requests:
            return []
        if self._native is not False:
            try:
                return self._loglikelihood_native(requests)
            except LookupError:
                self._native = False
        return self._loglikelihood_echo(requests)

    def _loglikelihood_native(self, requests: Sequence[LoglikelihoodRequest]) -> list[LoglikelihoodResult]:
        # Large chunks: the server shares prefixes within one call.
        size = 256
        chunks = [requests[i:i + size] for i in range(0, len(requests), size)]

        def call(chunk: Sequence[LoglikelihoodRequest]) -> list[LoglikelihoodResult]:
            body = {"model": self.name, "requests": [{"context": r.context, "continuation": r.continuation}
                                                     for r in chunk]}
            data = self._post("/flanlab/loglikelihood", body)
            return [LoglikelihoodResult(float(x["logprob"]), bool(x["is_greedy"])) for x in data["results"]]

        out = self._parallel(call, chunks)
        self._native = True
        return [r for part in out for r in part]

    def _loglikelihood_echo(self, requests: Sequence[LoglikelihoodRequest]) -> list[LoglikelihoodResult]:
        """Score with ``echo``: the continuation's tokens are those starting at or after the end of
        the context (trailing context whitespace counts as continuation, as in the HF backend)."""

        def call(idx: range) -> list[LoglikelihoodResult]:
            reqs = [requests[i] for i in idx]
            body = {
                "model": self.name,
                "prompt": [r.context + r.continuation for r in reqs],
                "max_tokens": 0,
                "echo": True,
                "logprobs": 1,
                "temperature": 0.0,
            }
            data = self._post("/completions", body)
            choices = sorted(data["choices"], key=lambda c: c["index"])
            results = []
            for r, choice in zip(reqs, choices, strict=True):
                lp = choice.get("logprobs") or {}
                start = len(r.context.rstrip())
                total, greedy = 0.0, True
                for off, tok_lp, top in zip(lp.get("text_offset", []), lp.get("token_logprobs", []),
                                            lp.get("top_logprobs", []), strict=False):
                    if off < start or tok_lp is None:
                        continue
                    total += tok_lp
                    if top and max(top.values()) > tok_lp + 1e-6:
                        greedy = False
                results.append(LoglikelihoodResult(total, greedy))
            return results

        out = self._parallel(call, self._chunks(len(requests)))
        return [r for part in out for r in part]

    def generate(self, requests: Sequence[GenerateRequest]) -> list[list[str]]:
        def call(r: GenerateRequest) -> list[str]:
            body = {
                "model": self.name,
                "prompt": r.prompt,
                "max_tokens": r.max_new_tokens,
                "temperature": r.temperature,
                "top_p": r.top_p,
                "n": r.n,
                "seed": r.seed,
            }
            if r.stop:
                body["stop"] = list(r.stop)
            data = self._post("/completions", body)
            texts = [c["text"] for c in sorted(data["choices"], key=lambda c: c["index"])]
            # Servers may honour only some stop sequences (OpenAI: 4); cut the rest here.
            return [_cut(t, r.stop) for t in texts]

        return self._parallel(call, list(requests))


def _cut(text: str, stop: Sequence[str]) -> str:
    cut = min((text.find(s) for s in stop if s and s in text), default=-1)
    return text[:cut] if cut >= 0 else text
