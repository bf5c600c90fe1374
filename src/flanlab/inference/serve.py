"""``flanlab serve``: an OpenAI-compatible HTTP server over the HF backend (standard library only).

Endpoints: ``GET /v1/models``, ``POST /v1/completions`` (prompt str or list, ``n``, ``stop``,
``temperature``, ``top_p``, ``seed``, ``max_tokens``, ``echo`` + ``logprobs``, which with
``max_tokens: 0`` scores a prompt), ``POST /v1/chat/completions`` (the tokenizer's chat template),
and one extension, ``POST /v1/flanlab/loglikelihood`` (``{"requests": [{"context", "continuation"}]}``),
which returns exactly what the HF backend computes, prefix reuse included. Requests run one at a
time (one model, CPU-bound); the socket binds 127.0.0.1 unless told otherwise.
"""

from __future__ import annotations

import hmac
import json
import os
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from flanlab.core.log import get_logger, redact
from flanlab.inference.base import GenerateRequest, LoglikelihoodRequest

__all__ = ["ApiError", "make_server", "serve"]

log = get_logger(__name__)
MAX_BODY = 32 * 1024 * 1024


class ApiError(Exception):
    """An error answered as OpenAI does: ``{"error": {"message", "type"}}`` with an HTTP status."""

    def __init__(self, status: int, message: str, kind: str = "invalid_request_error") -> None:
        super().__init__(message)
        self.status, self.message, self.kind = status, message, kind


def _field(body: dict, key: str, typ: type | tuple, default: Any) -> Any:
    value = body.get(key, default)
    if value is None:
        return default
    if isinstance(value, bool) and typ in (int, float, (int, float)):
        raise ApiError(400, f"'{key}': expected a number, got a boolean")
    if not isinstance(value, typ):
        name = typ.__name__ if isinstance(typ, type) else " or ".join(t.__name__ for t in typ)
        raise ApiError(400, f"'{key}': expected {name}, got {type(value).__name__}")
    return value


class CompletionService:
    """Turns OpenAI request bodies into HF backend calls (one at a time)."""

    def __init__(self, lm: Any, model_name: str) -> None:
        self.lm = lm
        self.model_name = model_name
        self.lock = threading.Lock()

    # ----------------------------------------------------------- helpers
    def _sampling(self, body: dict, prompt: str) -> GenerateRequest:
        stop = body.get("stop") or ()
        if isinstance(stop, str):
            stop = (stop,)
        if not isinstance(stop, list | tuple) or not all(isinstance(s, str) for s in stop):
            raise ApiError(400, "'stop': expected a string or a list of strings")
        n = _field(body, "n", int, 1)
        max_tokens = _field(body, "max_tokens", int, 16)
        temperature = float(_field(body, "temperature", (int, float), 1.0))
        top_p = float(_field(body, "top_p", (int, float), 1.0))
        if n < 1 or n > 128 or max_tokens < 0 or temperature < 0 or not 0 < top_p <= 1:
            raise ApiError(400, "expected 1 <= n <= 128, max_tokens >= 0, temperature >= 0, 0 < top_p <= 1")
        seed = _field(body, "seed", int, 0)
        return GenerateRequest(prompt, tuple(stop), max_tokens, temperature, top_p, n, seed)

    def _finish(self, ids: list[int], req: GenerateRequest) -> tuple[str, str]:
        text = self.lm.finish_text(ids, req.stop)
        reason = "length" if len(ids) >= req.max_new_tokens and req.max_new_tokens > 0 else "stop"
        if req.stop and any(s in self.lm.tokenizer.decode(ids, skip_special_tokens=True) for s in req.stop if s):
            reason = "stop"
        return text, reason

    def _generate(self, reqs: list[GenerateRequest]) -> list[list[tuple[str, str, int]]]:
        out: list[list[tuple[str, str, int]]] = [[] for _ in reqs]
        with self.lock:
            for idx, samples in self.lm.generate_tokens(reqs):
                out[idx] = [(*self._finish(ids, reqs[idx]), len(ids)) for ids in samples]
        return out

    def _logprobs_block(self, scored: dict, start_char: int, base: int) -> dict:
        keep = [i for i, off in enumerate(scored["offsets"]) if off >= start_char]
        return {
            "tokens": [scored["tokens"][i] for i in keep],
            "token_logprobs": [scored["logprobs"][i] for i in keep],
            "top_logprobs": [scored["top"][i] for i in keep],
            "text_offset": [scored["offsets"][i] - start_char + base for i in keep],
        }

    # ----------------------------------------------------------- endpoints
    def models(self) -> dict:
        return {"object": "list", "data": [{"id": self.model_name, "object": "model", "owned_by": "flanlab"}]}

    def completions(self, body: dict) -> dict:
        prompts = body.get("prompt", "")
        prompts = [prompts] if isinstance(prompts, str) else prompts
        if not isinstance(prompts, list) or not prompts or not all(isinstance(p, str) for p in prompts):
            raise ApiError(400, "'prompt': expected a string or a non-empty list of strings")
        echo = bool(body.get("echo", False))
        top = body.get("logprobs")
        if top is not None and (not isinstance(top, int) or isinstance(top, bool) or not 0 <= top <= 20):
            raise ApiError(400, "'logprobs': expected an integer from 0 to 20")
        reqs = [self._sampling(body, p) for p in prompts]
        if top is not None and self.lm.kind != "causal":
            raise ApiError(400, "logprobs are only available for decoder-only models; "
                                "use /v1/flanlab/loglikelihood for seq2seq scoring")
        gens = self._generate(reqs) if any(r.max_new_tokens > 0 for r in reqs) else [
            [("", "length", 0)] * r.n for r in reqs]
        choices, completion_tokens = [], 0
        for p_i, prompt in enumerate(prompts):
            for text, reason, n_tok in gens[p_i]:
                completion_tokens += n_tok
                logprobs = None
                if top is not None:
                    with self.lock:
                        scored = self.lm.token_logprobs([prompt + text], top=max(1, top))[0]
                    logprobs = self._logprobs_block(scored, 0 if echo else len(prompt), 0)
                choices.append({
                    "index": len(choices),
                    "text": (prompt + text) if echo else text,
                    "logprobs": logprobs,
                    "finish_reason": reason,
                })
        prompt_tokens = sum(len(self.lm.tokenizer(p).input_ids) for p in prompts)
        return {
            "id": f"cmpl-{uuid.uuid4().hex[:24]}",
            "object": "text_completion",
            "created": int(time.time()),
            "model": self.model_name,
            "choices": choices,
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                      "total_tokens": prompt_tokens + completion_tokens},
        }

    def _chat_prompt(self, messages: Any) -> str:
        if not isinstance(messages, list) or not messages or not all(
            isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str)
            for m in messages
        ):
            raise ApiError(400, "'messages': expected a non-empty list of {role, content} strings")
        tok = self.lm.tokenizer
        if getattr(tok, "chat_template", None):
            return tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        # No template: plain "role: content" lines, ending where the assistant speaks.
        return "".join(f"{m['role']}: {m['content']}\n" for m in messages) + "assistant:"

    def chat(self, body: dict) -> dict:
        prompt = self._chat_prompt(body.get("messages"))
        body = dict(body)
        if "max_completion_tokens" in body and "max_tokens" not in body:
            body["max_tokens"] = body["max_completion_tokens"]
        req = self._sampling(body, prompt)
        want_lp = bool(body.get("logprobs", False))
        top = _field(body, "top_logprobs", int, 0)
        choices, n_tokens = [], 0
        for text, reason, n_tok in self._generate([req])[0]:
            n_tokens += n_tok
            logprobs = None
            if want_lp and self.lm.kind == "causal":
                with self.lock:
                    scored = self.lm.token_logprobs([prompt + text], top=max(1, top))[0]
                block = self._logprobs_block(scored, len(prompt), 0)
                logprobs = {"content": [
                    {"token": t, "logprob": lp,
                     "top_logprobs": [{"token": k, "logprob": v} for k, v in (tp or {}).items()][:top]}
                    for t, lp, tp in zip(block["tokens"], block["token_logprobs"], block["top_logprobs"], strict=True)
                ]}
            choices.append({"index": len(choices), "message": {"role": "assistant", "content": text},
                            "logprobs": logprobs, "finish_reason": reason})
        prompt_tokens = len(self.lm.tokenizer(prompt).input_ids)
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": self.model_name,
            "choices": choices,
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": n_tokens,
                      "total_tokens": prompt_tokens + n_tokens},
        }

    def loglikelihood(self, body: dict) -> dict:
        items = body.get("requests")
        if not isinstance(items, list) or not all(
            isinstance(r, dict) and isinstance(r.get("context"), str) and isinstance(r.get("continuation"), str)
            for r in items
        ):
            raise ApiError(400, "'requests': expected a list of {context, continuation} strings")
        reqs = [LoglikelihoodRequest(r["context"], r["continuation"]) for r in items]
        with self.lock:
            results = self.lm.loglikelihood(reqs)
        return {"model": self.model_name,
                "results": [{"logprob": r.logprob, "is_greedy": r.is_greedy} for r in results]}


def _handler(service: CompletionService, api_key: str | None) -> type[BaseHTTPRequestHandler]:
    routes = {
        "/v1/completions": service.completions,
        "/v1/chat/completions": service.chat,
        "/v1/flanlab/loglikelihood": service.loglikelihood,
    }

    class Handler(BaseHTTPRequestHandler):
        server_version = "flanlab-serve"
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt: str, *args: Any) -> None:  # route through our (redacting) logger
            log.debug("%s %s", self.address_string(), redact(fmt % args))

        def _send(self, status: int, payload: dict) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _authorized(self) -> bool:
            if api_key is None:
                return True
            given = self.headers.get("Authorization", "")
            return hmac.compare_digest(given.encode(), f"Bearer {api_key}".encode())

        def _fail(self, e: ApiError) -> None:
            self._send(e.status, {"error": {"message": e.message, "type": e.kind}})

        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            if not self._authorized():
                return self._fail(ApiError(401, "invalid API key", "authentication_error"))
            if self.path.rstrip("/") in ("/v1/models", "/models"):
                return self._send(200, service.models())
            if self.path.rstrip("/") == "/health":
                return self._send(200, {"status": "ok"})
            self._fail(ApiError(404, f"no route {self.path}", "not_found_error"))

        def do_POST(self) -> None:  # noqa: N802
            try:
                if not self._authorized():
                    raise ApiError(401, "invalid API key", "authentication_error")
                route = routes.get(self.path.rstrip("/"))
                length = int(self.headers.get("Content-Length") or 0)
                if length > MAX_BODY:
                    raise ApiError(413, f"request body over {MAX_BODY} bytes")
                raw = self.rfile.read(length) if length else b""
                if route is None:
                    raise ApiError(404, f"no route {self.path}", "not_found_error")
                try:
                    body = json.loads(raw or b"{}")
                except json.JSONDecodeError as e:
                    raise ApiError(400, f"invalid JSON body: {e.msg} at line {e.lineno}") from None
                if not isinstance(body, dict):
                    raise ApiError(400, "expected a JSON object")
                self._send(200, route(body))
            except ApiError as e:
                self._fail(e)
            except ValueError as e:
                self._fail(ApiError(400, str(e)))
            except Exception as e:  # keep serving; report the failure to this client only
                log.exception("request failed")
                self._fail(ApiError(500, f"internal error: {type(e).__name__}", "server_error"))

    return Handler


def make_server(lm: Any, *, host: str = "127.0.0.1", port: int = 8000, model_name: str | None = None,
                api_key_env: str | None = None) -> ThreadingHTTPServer:
    """A ready (not yet serving) server over ``lm`` (an :class:`~flanlab.inference.hf.HFLM`).

    With ``api_key_env``, clients must send ``Authorization: Bearer $VALUE`` of that variable.
    """
    api_key = os.environ.get(api_key_env) if api_key_env else None
    if api_key_env and not api_key:
        raise ValueError(f"--api-key-env {api_key_env}: the environment variable is not set")
    service = CompletionService(lm, model_name or lm.name)
    server = ThreadingHTTPServer((host, port), _handler(service, api_key))
    server.daemon_threads = True
    return server


def serve(lm: Any, **kwargs: Any) -> None:
    """Serve until interrupted."""
    server = make_server(lm, **kwargs)
    host, port = server.server_address[:2]
    log.info("serving %s at http://%s:%s/v1", lm.name, host, port)
    try:
        server.serve_forever()
    finally:
        server.server_close()
