"""A loopback HTTP proxy for tests: forwards POSTs to a real ``flanlab serve`` and, on the first
attempt of chosen requests, injects a server error, a rate limit, a slow answer or one slower than
the client's timeout. Retries (any later attempt of the same body) pass through untouched."""

from __future__ import annotations

import hashlib
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx

# Fault schedule by (sha256 of the body) % 8; the rest pass through.
FAULTS = {0: "503", 1: "500-echo", 2: "429", 3: "slow", 4: "too-slow"}


class FaultyProxy:
    """``url`` → ``upstream``, injecting ``FAULTS`` on first attempts; counts everything."""

    def __init__(self, upstream: str, *, client_timeout: float, slow_s: float = 0.3) -> None:
        self.upstream = upstream.rstrip("/")
        self.client_timeout = client_timeout
        self.slow_s = slow_s
        self.attempts: Counter[str] = Counter()  # body digest → attempts seen
        self.answered: Counter[str] = Counter()  # body digest → 200s sent back
        self.injected: Counter[str] = Counter()  # fault name → count
        self.lock = threading.Lock()
        self.http = httpx.Client(timeout=120, limits=httpx.Limits(max_connections=128))
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.http.close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, fmt: str, *args: Any) -> None:
                pass

            def _reply(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
                try:
                    self.send_response(status)
                    for k, v in {"Content-Type": "application/json", **(headers or {})}.items():
                        self.send_header(k, v)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except OSError:
                    pass  # the client gave up (timeout) and closed the connection

            def do_POST(self) -> None:  # noqa: N802
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                digest = hashlib.sha256(self.path.encode() + raw).hexdigest()
                with proxy.lock:
                    proxy.attempts[digest] += 1
                    first = proxy.attempts[digest] == 1
                fault = FAULTS.get(int(digest, 16) % 8) if first else None
                if fault:
                    with proxy.lock:
                        proxy.injected[fault] += 1
                auth = self.headers.get("Authorization", "")
                if fault == "503":
                    return self._reply(503, b'{"error": {"message": "overloaded"}}')
                if fault == "500-echo":
                    # A careless server that echoes the request's credentials in its error.
                    key = auth.removeprefix("Bearer ")
                    return self._reply(500, f'{{"error": "internal", "auth": "{auth}", "key": "{key}"}}'.encode())
                if fault == "429":
                    return self._reply(429, b'{"error": "rate limited"}', {"Retry-After": "0.05"})
                if fault == "slow":
                    time.sleep(proxy.slow_s)
                if fault == "too-slow":
                    time.sleep(proxy.client_timeout + 0.5)
                try:
                    up = proxy.http.post(proxy.upstream + self.path[len("/v1"):], content=raw,
                                         headers={"Content-Type": "application/json", "Authorization": auth})
                except (httpx.HTTPError, RuntimeError):  # upstream gone or the proxy closing
                    return self._reply(502, b'{"error": "bad gateway"}')
                if up.status_code == 200 and fault != "too-slow":
                    with proxy.lock:
                        proxy.answered[digest] += 1
                self._reply(up.status_code, up.content)

        return Handler
