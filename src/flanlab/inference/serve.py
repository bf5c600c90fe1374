"""``flanlab serve``: an OpenAI-compatible server over the HF backend, on FastAPI + uvicorn (the
``serve`` extra).

Endpoints: ``GET /v1/models``; ``POST /v1/completions`` (prompt: text, a list of texts, token ids or
lists of them; ``n``, ``stop``, ``temperature``, ``top_p``, ``seed``, ``max_tokens``, ``echo`` +
``logprobs``, which with ``max_tokens`` 0 or 1 scores a prompt, as lm-evaluation-harness asks);
``POST /v1/chat/completions`` (the tokenizer's chat template; ``logprobs`` + ``top_logprobs``); both
stream server-sent events with ``stream: true`` (``stream_options.include_usage``, stop strings held
back across token boundaries, ``data: [DONE]``). One extension, ``POST /v1/flanlab/loglikelihood``
(``{"requests": [{"context", "continuation"}]}``), returns exactly what the HF backend computes.
Bodies are the pydantic models of :mod:`~flanlab.inference.serve_schema` (schema at ``/docs``);
errors are OpenAI's ``{"error": {"message", "type"}}``.

Concurrent requests share backend batches (:class:`~flanlab.inference.serve_engine.Batcher`): a
generation request joins the running batch at the next decoding step and leaves it when it stops;
a streaming client that disconnects takes its rows out of the batch.
With ``api_key_env`` every route but ``/docs`` wants ``Authorization: Bearer $VALUE``, compared in
constant time; the key is registered with the log redactor. The socket binds 127.0.0.1 unless told.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import os
import socket
import threading
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from flanlab.core.log import get_logger, register_secret
from flanlab.inference.base import GenerateRequest, LoglikelihoodRequest
from flanlab.inference.serve_engine import Batcher, Scored, TextStream
from flanlab.inference.serve_schema import (
    ChatCompletion,
    ChatCompletionRequest,
    Completion,
    CompletionRequest,
    ErrorResponse,
    LoglikelihoodBody,
    LoglikelihoodResponse,
    ModelList,
)

__all__ = ["ApiError", "Server", "create_app", "make_server", "serve"]

log = get_logger(__name__)
MAX_BODY = 32 * 1024 * 1024
OPEN_PATHS = ("/docs", "/openapi.json")  # the schema only: no model output, no key needed


class ApiError(Exception):
    """An error answered as OpenAI does: ``{"error": {"message", "type"}}`` with an HTTP status."""

    def __init__(self, status: int, message: str, kind: str = "invalid_request_error",
                 param: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.kind, self.param = status, message, kind, param


def _error_body(e: ApiError) -> dict:
    return {"error": {"message": e.message, "type": e.kind, "param": e.param, "code": None}}


class _Prompt:
    """A prompt as the model reads it: token ids, each token's text and character offset, and the
    text the ids came from (or their decoding, for prompts sent as ids)."""

    def __init__(self, service: Service, prompt: str | list[int]) -> None:
        lm = service.lm
        if isinstance(prompt, str):
            self.text = prompt
            if lm.kind == "causal":
                enc = lm.tokenizer(prompt, add_special_tokens=False, return_offsets_mapping=True)
                self.ids = list(lm.special_prefix) + list(enc.input_ids)
                self.offsets = [0] * len(lm.special_prefix) + [a for a, _ in enc.offset_mapping]
            else:
                self.ids = list(lm.tokenizer(prompt).input_ids)
                self.offsets = []
        else:
            vocab = len(lm.tokenizer)
            if any(i >= vocab for i in prompt):
                raise ApiError(400, f"'prompt': token ids must be below the vocabulary size {vocab}", param="prompt")
            self.ids = list(prompt)
            self.text = service.decode(self.ids)
            self._service = service
            self._offsets: list[int] | None = None

    @property
    def offsets(self) -> list[int]:
        """Character offset of each prompt token (for ids: running sum of each token's decoded
        length, capped at the text; a prefix-by-prefix decode would cost O(n^2) on long prompts)."""
        if self._offsets is None:
            out, at = [], 0
            for i in self.ids:
                out.append(min(at, len(self.text)))
                at += len(self._service.decode([i]))
            self._offsets = out
        return self._offsets

    @offsets.setter
    def offsets(self, value: list[int]) -> None:
        self._offsets = value


class Service:
    """OpenAI request bodies → batcher jobs → OpenAI response bodies."""

    def __init__(self, lm: Any, model_name: str, batcher: Batcher) -> None:
        self.lm = lm
        self.model_name = model_name
        self.batcher = batcher

    # ----------------------------------------------------------- helpers
    def decode(self, ids: list[int]) -> str:
        return self.lm.tokenizer.decode(ids, skip_special_tokens=True)

    def offsets(self, ids: list[int], base: int = 0) -> list[int]:
        """Character offset of each token in the decoding of ``ids`` (cumulative decoding)."""
        return [base + len(self.decode(ids[:i])) for i in range(len(ids))]

    def _stop_ids(self) -> set[int]:
        return self.lm.generator._stop_ids()

    def _request(self, prompt: _Prompt, body: Any, max_tokens: int) -> tuple[GenerateRequest, list[int]]:
        if self.lm.kind == "causal" and max_tokens >= self.lm.max_length:
            raise ApiError(400, f"'max_tokens': {max_tokens} leaves no room for the prompt in the model's "
                                f"context of {self.lm.max_length} tokens", param="max_tokens")
        req = GenerateRequest(prompt.text, body.stop_list(), max_tokens, float(body.temperature),
                              float(body.top_p), body.n, body.seed if body.seed is not None else 0)
        return req, prompt.ids

    def _finish(self, ids: list[int], req: GenerateRequest) -> tuple[str, str]:
        text = self.lm.finish_text(ids, req.stop)
        reason = "length" if len(ids) >= req.max_new_tokens > 0 else "stop"
        if req.stop and len(text) < len(self.decode(ids)):
            reason = "stop"
        return text, reason

    def _trim(self, ids: list[int], text: str) -> list[int]:
        """The generated ids whose decoding lies within ``text`` (cut at a stop sequence)."""
        k = len(ids)
        while k > 0 and len(self.decode(ids[:k])) > len(text):
            k -= 1
        return ids[:k]

    async def _generate(self, items: list[tuple[GenerateRequest, list[int]]]) -> list[list[list[int]]]:
        return await asyncio.wrap_future(self.batcher.generate(items))

    async def _score(self, rows: list[list[int]], top: int) -> list[Scored]:
        if self.lm.kind != "causal":
            raise ApiError(400, "logprobs are only available for decoder-only models; "
                                "use /v1/flanlab/loglikelihood for seq2seq scoring", param="logprobs")
        for row in rows:
            if len(row) > self.lm.max_length:
                raise ApiError(400, f"'prompt': {len(row)} tokens to score; the model reads at most "
                                    f"{self.lm.max_length}", param="prompt")
        return await asyncio.wrap_future(self.batcher.score(rows, top))

    def _token_text(self, i: int) -> str:
        return self.lm.tokenizer.decode([i])

    def _tops(self, top: list[tuple[int, float]] | None, k: int) -> dict[str, float] | None:
        if top is None:
            return None
        out: dict[str, float] = {}
        for i, lp in top[:k]:
            out.setdefault(self._token_text(i), lp)
        return out

    # ----------------------------------------------------------- endpoints
    def models(self) -> dict:
        return {"object": "list", "data": [{"id": self.model_name, "object": "model", "created": 0,
                                            "owned_by": "flanlab"}]}

    async def completions(self, body: CompletionRequest) -> dict:
        prompts = [_Prompt(self, p) for p in body.prompts()]
        top = body.logprobs
        max_tokens = 16 if body.max_tokens is None else body.max_tokens
        if top is not None and self.lm.kind != "causal":
            raise ApiError(400, "logprobs are only available for decoder-only models; "
                                "use /v1/flanlab/loglikelihood for seq2seq scoring", param="logprobs")
        items = [self._request(p, body, max_tokens) for p in prompts]
        # Per prompt, per sample: (generated ids, text, finish reason).
        outs: list[list[tuple[list[int], str, str]]]
        scored: list[Scored] | None = None
        if body.echo and top is not None and (max_tokens == 0 or (max_tokens == 1 and body.temperature == 0)):
            # Scoring (lm-eval's request): one pass over the prompt gives its log-probabilities and
            # the greedy next token, end-of-text included, so clients can drop it by position.
            scored = await self._score([p.ids for p in prompts], top)
            outs = []
            for (req, _), s in zip(items, scored, strict=True):
                if max_tokens == 0:
                    outs.append([([], "", "length")] * req.n)
                    continue
                tok = s.next[0][0]
                reason = "stop" if tok in self._stop_ids() else "length"
                text = self.lm.finish_text([tok], req.stop)
                if len(text) < len(self.decode([tok])):
                    reason = "stop"
                outs.append([([tok], text, reason)] * req.n)
        else:
            if max_tokens > 0:
                gens = await self._generate(items)
            else:
                gens = [[[] for _ in range(req.n)] for req, _ in items]
            outs = [[(ids, *self._finish(ids, req)) for ids in samples]
                    for (req, _), samples in zip(items, gens, strict=True)]
        choices, completion_tokens = [], 0
        blocks: list[dict | None] = []
        if top is not None:
            blocks = await self._completion_logprobs(prompts, outs, top, body.echo, scored)
        for p_i, prompt in enumerate(prompts):
            for k, (ids, text, reason) in enumerate(outs[p_i]):
                completion_tokens += len(ids)
                choices.append({
                    "index": len(choices),
                    "text": (prompt.text + text) if body.echo else text,
                    "logprobs": blocks[p_i * len(outs[p_i]) + k] if blocks else None,
                    "finish_reason": reason,
                })
        prompt_tokens = sum(len(p.ids) for p in prompts)
        return {
            "id": f"cmpl-{uuid.uuid4().hex[:24]}",
            "object": "text_completion",
            "created": int(time.time()),
            "model": self.model_name,
            "choices": choices,
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                      "total_tokens": prompt_tokens + completion_tokens},
        }

    async def _completion_logprobs(self, prompts: list[_Prompt], outs: list[list[tuple[list[int], str, str]]],
                                   top: int, echo: bool, scored: list[Scored] | None) -> list[dict | None]:
        """The legacy logprobs block of every choice: the prompt's tokens with ``echo``, then the
        generated tokens (up to a stop sequence). Offsets count from the start of the choice's text."""
        gen_ids = [[self._trim(ids, text) for ids, text, _ in choice] for choice in outs]
        if scored is None:
            rows = [p.ids + g for p, gs in zip(prompts, gen_ids, strict=True) for g in gs]
            flat = await self._score(rows, top)
        else:  # the scoring pass already holds the prompt and the one greedy token
            flat = [s for s, gs in zip(scored, gen_ids, strict=True) for _ in gs]
        blocks: list[dict | None] = []
        at = 0
        for p, gs in zip(prompts, gen_ids, strict=True):
            for g in gs:
                s = flat[at]
                at += 1
                n_prompt = len(p.ids)
                lps = list(s.logprobs[: n_prompt + len(g)])
                tops = [self._tops(t, top) for t in s.top[: n_prompt + len(g)]]
                if len(g) > len(s.logprobs) - n_prompt:  # the greedy token comes from the next-token pass
                    lps.append(s.next[0][1])
                    tops.append(self._tops(s.next, top))
                gen_off = [len(p.text) + o for o in self.offsets(g)]
                tokens = [self._token_text(i) for i in p.ids + g]
                offsets = list(p.offsets) + gen_off
                start = 0 if echo else n_prompt
                base = 0 if echo else len(p.text)
                blocks.append({
                    "tokens": tokens[start:],
                    "token_logprobs": lps[start:],
                    "top_logprobs": tops[start:],
                    "text_offset": [o - base for o in offsets[start:]],
                })
        return blocks

    def chat_prompt(self, body: ChatCompletionRequest) -> str:
        messages = [{"role": m.role, "content": m.text()} for m in body.messages]
        tok = self.lm.tokenizer
        if getattr(tok, "chat_template", None):
            return tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        # No template (base models, T5): plain "role: content" lines, ending where the assistant speaks.
        return "".join(f"{m['role']}: {m['content']}\n" for m in messages) + "assistant:"

    async def chat(self, body: ChatCompletionRequest) -> dict:
        prompt = _Prompt(self, self.chat_prompt(body))
        item = self._request(prompt, body, body.token_limit())
        req = item[0]
        if body.logprobs and self.lm.kind != "causal":
            raise ApiError(400, "logprobs are only available for decoder-only models", param="logprobs")
        samples = (await self._generate([item]))[0] if req.max_new_tokens > 0 else [[] for _ in range(req.n)]
        finished = [(ids, *self._finish(ids, req)) for ids in samples]
        logprobs: list[dict | None] = [None] * len(finished)
        if body.logprobs:
            k = body.top_logprobs or 0
            gens = [self._trim(ids, text) for ids, text, _ in finished]
            scored = await self._score([prompt.ids + g for g in gens], max(1, k))
            logprobs = []
            for g, s in zip(gens, scored, strict=True):
                n = len(prompt.ids)
                content = []
                for j, tok in enumerate(g):
                    pairs = s.top[n + j] or []
                    content.append({
                        "token": self._token_text(tok), "logprob": s.logprobs[n + j],
                        "bytes": list(self._token_text(tok).encode()),
                        "top_logprobs": [{"token": self._token_text(i), "logprob": lp,
                                          "bytes": list(self._token_text(i).encode())} for i, lp in pairs[:k]],
                    })
                logprobs.append({"content": content})
        choices = [{"index": i, "message": {"role": "assistant", "content": text}, "logprobs": lp,
                    "finish_reason": reason}
                   for i, ((_, text, reason), lp) in enumerate(zip(finished, logprobs, strict=True))]
        n_tokens = sum(len(ids) for ids, _, _ in finished)
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": self.model_name,
            "choices": choices,
            "usage": {"prompt_tokens": len(prompt.ids), "completion_tokens": n_tokens,
                      "total_tokens": len(prompt.ids) + n_tokens},
        }

    async def loglikelihood(self, body: LoglikelihoodBody) -> dict:
        reqs = [LoglikelihoodRequest(r.context, r.continuation) for r in body.requests]
        results = await asyncio.wrap_future(self.batcher.loglikelihood(reqs)) if reqs else []
        return {"model": self.model_name,
                "results": [{"logprob": r.logprob, "is_greedy": r.is_greedy} for r in results]}

    # ----------------------------------------------------------- streaming
    async def stream(self, items: list[tuple[GenerateRequest, list[int]]], chat: bool,
                     include_usage: bool) -> AsyncIterator[str]:
        """Server-sent events of one completion (``chat``: chat chunks) over ``items``' prompts."""
        loop = asyncio.get_running_loop()
        events: asyncio.Queue[tuple] = asyncio.Queue()
        n = items[0][0].n
        streams = [[TextStream(self.decode, req.stop) for _ in range(req.n)] for req, _ in items]

        def on_token(item: int, sample: int, token: int) -> None:  # the model thread
            # RuntimeError: the server is shutting down (loop closed); the batch goes on.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(events.put_nowait, ("token", item, sample, token))

        future = self.batcher.generate(items, on_token)

        def on_done(f: Any) -> None:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(events.put_nowait, ("done", f))

        future.add_done_callback(on_done)
        rid = f"{'chatcmpl' if chat else 'cmpl'}-{uuid.uuid4().hex[:24]}"
        created = int(time.time())

        def chunk(index: int, text: str | None, reason: str | None = None, role: bool = False) -> str:
            if chat:
                delta: dict[str, Any] = {"role": "assistant", "content": ""} if role else (
                    {"content": text} if text else {})
                choice = {"index": index, "delta": delta, "logprobs": None, "finish_reason": reason}
                obj = {"id": rid, "object": "chat.completion.chunk", "created": created, "model": self.model_name,
                       "choices": [choice]}
            else:
                choice = {"index": index, "text": text or "", "logprobs": None, "finish_reason": reason}
                obj = {"id": rid, "object": "text_completion", "created": created, "model": self.model_name,
                       "choices": [choice]}
            if include_usage:
                obj["usage"] = None
            return f"data: {json.dumps(obj)}\n\n"

        if chat:
            for i in range(len(items) * n):
                yield chunk(i, None, role=True)
        try:
            while True:
                event = await events.get()
                if event[0] == "token":
                    _, item, sample, token = event
                    req = items[item][0]
                    targets = range(req.n) if req.temperature <= 0 else (sample,)  # greedy: one decode, n copies
                    for k in targets:
                        delta = streams[item][k].push(token)
                        if delta:
                            yield chunk(item * n + k, delta)
                    continue
                try:
                    results = event[1].result()
                except Exception as e:
                    err = ApiError(500, f"generation failed: {type(e).__name__}: {e}", "server_error")
                    yield f"data: {json.dumps(_error_body(err))}\n\n"
                    yield "data: [DONE]\n\n"
                    return
                completion_tokens = 0
                for item, ((req, _), samples) in enumerate(zip(items, results, strict=True)):
                    for k, ids in enumerate(samples):
                        completion_tokens += len(ids)
                        text, reason = self._finish(ids, req)
                        yield chunk(item * n + k, streams[item][k].finish(text), reason)
                if include_usage:
                    prompt_tokens = sum(len(ids) for _, ids in items)
                    usage = {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                             "total_tokens": prompt_tokens + completion_tokens}
                    obj = {"id": rid, "object": "chat.completion.chunk" if chat else "text_completion",
                           "created": created, "model": self.model_name, "choices": [], "usage": usage}
                    yield f"data: {json.dumps(obj)}\n\n"
                yield "data: [DONE]\n\n"
                return
        finally:
            if not future.done():  # the client went away: its rows leave the batch, the others go on
                self.batcher.cancel(future)

    def stream_completion(self, body: CompletionRequest) -> AsyncIterator[str]:
        if body.echo or body.logprobs is not None:
            raise ApiError(400, "'stream' with 'echo' or 'logprobs' is not supported; ask without 'stream'",
                           param="stream")
        max_tokens = 16 if body.max_tokens is None else body.max_tokens
        items = [self._request(_Prompt(self, p), body, max_tokens) for p in body.prompts()]
        include = bool(body.stream_options and body.stream_options.include_usage)
        return self.stream(items, chat=False, include_usage=include)

    def stream_chat(self, body: ChatCompletionRequest) -> AsyncIterator[str]:
        if body.logprobs:
            raise ApiError(400, "'stream' with 'logprobs' is not supported; ask without 'stream'", param="stream")
        item = self._request(_Prompt(self, self.chat_prompt(body)), body, body.token_limit())
        include = bool(body.stream_options and body.stream_options.include_usage)
        return self.stream([item], chat=True, include_usage=include)


def create_app(lm: Any, *, model_name: str | None = None, api_key: str | None = None,
               batcher: Batcher | None = None) -> Any:
    """The FastAPI application over ``lm`` (an :class:`~flanlab.inference.hf.HFLM`); ``batcher``
    must be started by the caller (:class:`Server` does)."""
    from fastapi import FastAPI, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse, StreamingResponse
    from starlette.exceptions import HTTPException as StarletteHTTPException

    service = Service(lm, model_name or lm.name, batcher or Batcher(lm))
    app = FastAPI(title="flanlab serve", version="1", summary=f"OpenAI-compatible API over {service.model_name}",
                  redoc_url=None, responses={400: {"model": ErrorResponse}, 401: {"model": ErrorResponse}})
    app.state.service = service
    expected = f"Bearer {api_key}".encode() if api_key else None

    def fail(e: ApiError) -> JSONResponse:
        return JSONResponse(_error_body(e), status_code=e.status)

    @app.middleware("http")
    async def guard(request: Request, call_next: Any) -> Any:
        if expected is not None and request.url.path not in OPEN_PATHS:
            given = request.headers.get("authorization", "").encode()
            if not hmac.compare_digest(given, expected):
                return fail(ApiError(401, "invalid API key", "authentication_error"))
        length = request.headers.get("content-length")
        if length and length.isdigit() and int(length) > MAX_BODY:
            return fail(ApiError(413, f"request body over {MAX_BODY} bytes"))
        return await call_next(request)

    @app.exception_handler(ApiError)
    async def api_error(_: Request, e: ApiError) -> JSONResponse:
        return fail(e)

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, e: RequestValidationError) -> JSONResponse:
        first = e.errors()[0] if e.errors() else {"loc": (), "msg": "invalid request", "type": ""}
        if first.get("type") == "json_invalid":
            return fail(ApiError(400, f"invalid JSON body: {first.get('ctx', {}).get('error', first['msg'])}"))
        loc = [str(x) for x in first.get("loc", ()) if x != "body"]
        # Union members add their type name to the location (prompt.str, prompt.list[int]): drop them.
        field = ".".join(x for x in loc if not any(c in x for c in "[]") and x not in ("str", "int", "float", "bool"))
        if not field:  # the body itself: not JSON, or not an object
            return fail(ApiError(400, f"expected a JSON object body: {first['msg']}"))
        return fail(ApiError(400, f"'{field}': {first['msg']}", param=field))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, e: StarletteHTTPException) -> JSONResponse:
        kind = "not_found_error" if e.status_code == 404 else "invalid_request_error"
        detail = f"no route {request.method} {request.url.path}" if e.status_code in (404, 405) else str(e.detail)
        return fail(ApiError(e.status_code, detail, kind))

    async def answer(work: Any) -> Any:
        """Await an endpoint's work; backend failures become OpenAI errors for this client only."""
        try:
            return await work
        except ApiError:
            raise
        except ValueError as e:  # the backend's word on a bad request (e.g. over the context length)
            raise ApiError(400, str(e)) from None
        except Exception as e:  # keep serving
            log.error("request failed: %s: %s", type(e).__name__, e)
            raise ApiError(500, f"internal error: {type(e).__name__}", "server_error") from None

    def sse(events: AsyncIterator[str]) -> StreamingResponse:
        return StreamingResponse(events, media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    @app.get("/health")
    async def health() -> dict:
        return {"status": "ok"}

    @app.get("/v1/models", response_model=ModelList)
    @app.get("/models", include_in_schema=False)
    async def models() -> dict:
        return service.models()

    @app.post("/v1/completions", response_model=Completion,
              responses={200: {"content": {"text/event-stream": {}}, "description": "JSON, or SSE when streaming"}})
    async def completions(body: CompletionRequest) -> Any:
        if body.stream:
            return sse(service.stream_completion(body))
        return await answer(service.completions(body))

    @app.post("/v1/chat/completions", response_model=ChatCompletion,
              responses={200: {"content": {"text/event-stream": {}}, "description": "JSON, or SSE when streaming"}})
    async def chat(body: ChatCompletionRequest) -> Any:
        if body.stream:
            return sse(service.stream_chat(body))
        return await answer(service.chat(body))

    @app.post("/v1/flanlab/loglikelihood", response_model=LoglikelihoodResponse)
    async def loglikelihood(body: LoglikelihoodBody) -> dict:
        return await answer(service.loglikelihood(body))

    return app


class Server:
    """uvicorn serving :func:`create_app` on a socket bound at construction (``port=0``: a free
    one, see :attr:`port`); :meth:`start` serves from a thread, :meth:`run` in the foreground."""

    def __init__(self, lm: Any, *, host: str = "127.0.0.1", port: int = 8000, model_name: str | None = None,
                 api_key_env: str | None = None, batch_window_ms: float = 20.0, continuous: bool = True) -> None:
        import uvicorn

        api_key = os.environ.get(api_key_env) if api_key_env else None
        if api_key_env and not api_key:
            raise ValueError(f"--api-key-env {api_key_env}: the environment variable is not set")
        if api_key:
            register_secret(api_key)
        self.lm = lm
        self.batcher = Batcher(lm, window_s=batch_window_ms / 1000, continuous=continuous)
        self.app = create_app(lm, model_name=model_name, api_key=api_key, batcher=self.batcher)
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.socket = socket.socket(family, socket.SOCK_STREAM)
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.socket.bind((host, port))
        self.host, self.port = host, self.socket.getsockname()[1]
        # uvicorn's own logging config would replace ours; access lines are off (they carry paths only).
        self.server = uvicorn.Server(uvicorn.Config(self.app, log_config=None, access_log=False, lifespan="off",
                                                    timeout_graceful_shutdown=5, ws="none"))
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """The API root, e.g. ``http://127.0.0.1:8000/v1``."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/v1"

    def start(self, timeout: float = 60.0) -> Server:
        """Serve from a daemon thread; returns once uvicorn accepts connections."""
        self.batcher.start()
        self._thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.socket]},
                                        name="flanlab-serve-http", daemon=True)
        self._thread.start()
        end = time.monotonic() + timeout
        while not self.server.started:
            if not self._thread.is_alive() or time.monotonic() > end:
                raise RuntimeError("the server did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        """Stop serving (open streams get a few seconds to finish), then the model worker."""
        self.server.should_exit = True
        if self._thread is not None:
            self._thread.join(30)
        self.batcher.stop()
        self.socket.close()

    def run(self) -> None:
        """Serve in the foreground until interrupted (SIGINT / SIGTERM)."""
        self.batcher.start()
        log.info("serving %s at %s", self.lm.name, self.url)
        try:
            self.server.run(sockets=[self.socket])
        finally:
            self.batcher.stop()
            self.socket.close()

    def __enter__(self) -> Server:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def make_server(lm: Any, **kwargs: Any) -> Server:
    """A bound, not yet serving :class:`Server` (keyword arguments as its constructor's)."""
    return Server(lm, **kwargs)


def serve(lm: Any, **kwargs: Any) -> None:
    """Serve until interrupted."""
    Server(lm, **kwargs).run()
