"""A persistent request cache (SQLite) in front of any LM, so interrupted evaluations resume.

Key: sha256 of the model's fingerprint, the call (``ll`` / ``gen``) and the request's fields. Work
is done and committed in chunks, so a crash loses at most the chunk in flight.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from flanlab.core.errors import UserError
from flanlab.core.io import OutputError
from flanlab.inference.base import LM, GenerateRequest, LoglikelihoodRequest, LoglikelihoodResult

__all__ = ["CachedLM", "RequestCache", "lm_fingerprint"]


def lm_fingerprint(lm: Any) -> str:
    """What identifies ``lm``'s outputs: its ``fingerprint`` attribute if it has one, else its class and name."""
    return str(getattr(lm, "fingerprint", None) or f"{type(lm).__name__}:{lm.name}")


class RequestCache:
    """A key → JSON value table in one SQLite file (WAL mode; safe across threads of one process)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("CREATE TABLE IF NOT EXISTS requests (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
            self._db.commit()
        except sqlite3.DatabaseError as e:
            raise UserError(f"{self.path}: cannot open the request cache as SQLite ({e})") from None
        self._lock = threading.Lock()

    def get_many(self, keys: Sequence[str]) -> dict[str, Any]:
        found: dict[str, Any] = {}
        with self._lock:
            for i in range(0, len(keys), 500):
                chunk = list(keys[i:i + 500])
                marks = ",".join("?" * len(chunk))
                for key, value in self._db.execute(f"SELECT key, value FROM requests WHERE key IN ({marks})", chunk):
                    found[key] = json.loads(value)
        return found

    def put_many(self, items: dict[str, Any]) -> None:
        with self._lock:
            try:
                self._db.executemany(
                    "INSERT OR REPLACE INTO requests (key, value) VALUES (?, ?)",
                    [(k, json.dumps(v)) for k, v in items.items()],
                )
                self._db.commit()
            except sqlite3.OperationalError as e:  # disk full, read-only folder, ...
                self._db.rollback()
                raise OutputError(f"cannot write the request cache {self.path}: {e}; "
                                  "the requests cached before are kept") from None

    def __len__(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM requests").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._db.close()


class CachedLM:
    """Wraps an LM: answers cached requests from disk and computes (then stores) only the rest.

    ``chunk``: requests computed between commits; large enough that prefix sharing inside a chunk
    still pays off.
    """

    def __init__(self, lm: LM, path: str | Path, *, chunk: int = 1024) -> None:
        self.lm = lm
        self.name = lm.name
        self.cache = path if isinstance(path, RequestCache) else RequestCache(path)
        self.chunk = chunk
        self.hits = 0
        self.misses = 0
        self._fp = lm_fingerprint(lm)

    @property
    def fingerprint(self) -> str:
        return self._fp

    def _key(self, call: str, request: Any) -> str:
        payload = json.dumps([self._fp, call, dataclasses.asdict(request)], sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()

    def _run(self, call: str, requests: Sequence[Any], compute, encode, decode) -> list[Any]:
        keys = [self._key(call, r) for r in requests]
        found = self.cache.get_many(keys)
        out: list[Any] = [decode(found[k]) if k in found else None for k in keys]
        todo = [i for i, k in enumerate(keys) if k not in found]
        self.hits += len(requests) - len(todo)
        self.misses += len(todo)
        for start in range(0, len(todo), self.chunk):
            part = todo[start:start + self.chunk]
            results = compute([requests[i] for i in part])
            self.cache.put_many({keys[i]: encode(res) for i, res in zip(part, results, strict=True)})
            for i, res in zip(part, results, strict=True):
                out[i] = res
        return out

    def loglikelihood(self, requests: Sequence[LoglikelihoodRequest]) -> list[LoglikelihoodResult]:
        return self._run(
            "ll", requests, self.lm.loglikelihood,
            lambda r: [r.logprob, r.is_greedy], lambda v: LoglikelihoodResult(float(v[0]), bool(v[1])),
        )

    def generate(self, requests: Sequence[GenerateRequest]) -> list[list[str]]:
        return self._run("gen", requests, self.lm.generate, list, list)
