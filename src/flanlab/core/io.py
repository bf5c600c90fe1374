"""Atomic, durable file writes: a reader never sees a half-written file.

Write to a temporary file in the same folder, flush and fsync it, then rename over the target
(atomic on POSIX), then fsync the folder so the rename itself survives a crash. Also reads and
writes at a byte offset (:func:`read_at`, :func:`write_at`).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import tempfile
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

__all__ = [
    "OutputError",
    "append_jsonl",
    "atomic_open",
    "atomic_write_bytes",
    "atomic_write_json",
    "atomic_write_jsonl",
    "atomic_write_text",
    "read_at",
    "read_jsonl",
    "write_at",
]


class OutputError(OSError):
    """Writing an output failed (disk full, read-only folder, ...); the message says where and why."""


def _explain(path: Path, err: OSError) -> OutputError:
    reason = {
        errno.ENOSPC: "no space left on the device",
        errno.EROFS: "the file system is read-only",
        errno.EACCES: "permission denied",
        errno.EDQUOT: "disk quota exceeded",
    }.get(err.errno or 0, err.strerror or str(err))
    return OutputError(err.errno or 0, f"cannot write {path}: {reason}; earlier outputs are kept as they were")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def atomic_open(path: str | Path, mode: str = "w", encoding: str | None = "utf-8") -> Iterator[IO[Any]]:
    """Open a temporary sibling of ``path`` for writing; on success it replaces ``path`` atomically.

    If the block raises, the temporary file is removed and ``path`` keeps its old content.
    """
    path = Path(path)
    binary = "b" in mode
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as e:
        raise _explain(path, e) from e
    try:
        with os.fdopen(fd, "wb" if binary else "w", encoding=None if binary else encoding) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        # mkstemp makes 0600 files; give outputs the mode an ordinary open() would (0666 - umask).
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    except BaseException as e:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(e, OSError) and not isinstance(e, OutputError):
            raise _explain(path, e) from e
        raise


# os.pread/os.pwrite read and write at an offset without the file position, so threads never race
# on it; where the OS lacks them (Windows) a seek and a read or write under one lock stand in.
_POSITIONED = hasattr(os, "pread") and hasattr(os, "pwrite")
_SEEK_LOCK = threading.Lock()


def read_at(f: IO[bytes], start: int, size: int) -> bytes:
    """``size`` bytes of the unbuffered binary file ``f`` from byte ``start`` (fewer at its end);
    safe from several threads."""
    if _POSITIONED:
        return os.pread(f.fileno(), size, start)
    with _SEEK_LOCK:
        f.seek(start)
        return f.read(size)


def write_at(f: IO[bytes], data: bytes, start: int) -> None:
    """Write all of ``data`` into the unbuffered binary file ``f`` from byte ``start``."""
    view = memoryview(data)
    while view:  # a write may take fewer bytes than it was given
        if _POSITIONED:
            done = os.pwrite(f.fileno(), view, start)
        else:
            with _SEEK_LOCK:
                f.seek(start)
                done = f.write(view)
        start += done
        view = view[done:]


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_open(path, "wb", encoding=None) as f:
        f.write(data)


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    with atomic_open(path, "w") as f:
        f.write(text)


def atomic_write_json(path: str | Path, obj: Any, indent: int = 2) -> None:
    """Write ``obj`` as JSON to ``path`` atomically."""
    atomic_write_text(path, json.dumps(obj, indent=indent, ensure_ascii=False, sort_keys=False) + "\n")


def atomic_write_jsonl(path: str | Path, rows: Iterable[dict[str, Any]]) -> None:
    """Write ``rows`` as JSONL (one object per line) to ``path`` atomically."""
    with atomic_open(path, "w") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")


def _drop_torn_tail(path: Path) -> None:
    """Cut a torn last line (a crash mid-append) so the next row starts on a line of its own;
    otherwise the two would fuse into one invalid line in the middle of the file."""
    try:
        with open(path, "rb+") as f:
            size = f.seek(0, os.SEEK_END)
            if size == 0:
                return
            f.seek(size - 1)
            if f.read(1) == b"\n":
                return
            # Find the last newline, reading backwards in blocks (lines may be long).
            pos = size
            while pos > 0:
                start = max(0, pos - 65536)
                f.seek(start)
                block = f.read(pos - start)
                nl = block.rfind(b"\n")
                if nl != -1:
                    f.truncate(start + nl + 1)
                    return
                pos = start
            f.truncate(0)
    except FileNotFoundError:
        return


def append_jsonl(path: str | Path, rows: Iterable[dict[str, Any]]) -> None:
    """Append rows to a JSONL file, each line whole and fsynced (a crash loses at most the last line)."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        _drop_torn_tail(path)
        with open(path, "a", encoding="utf-8") as f:
            for row in rows:
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
            f.flush()
            os.fsync(f.fileno())
    except OSError as e:
        raise _explain(path, e) from e


def read_jsonl(path: str | Path, *, skip_torn_tail: bool = True) -> list[dict[str, Any]]:
    """Read a JSONL file. A torn last line (a crash mid-append) is dropped when ``skip_torn_tail``;
    any other bad line is an error naming the file and line."""
    path = Path(path)
    rows: list[dict[str, Any]] = []
    with open(path, encoding="utf-8") as f:
        lines = f.readlines()
    for i, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as e:
            if skip_torn_tail and i == len(lines) and not line.endswith("\n"):
                break
            raise ValueError(f"{path}:{i}: invalid JSON ({e.msg} at column {e.colno})") from None
    return rows
