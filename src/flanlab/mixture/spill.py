"""A stream's shuffle buffer with its memory bounded: rows past a byte bound wait on disk."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import NamedTuple

from flanlab.core.io import read_at, write_at
from flanlab.mixture.sources import Rendered

__all__ = ["RowSpill"]


class _File:
    """One unnamed temporary file of spilled rows (removed by the OS when closed, or when a killed
    build's process ends) and how many of its rows are still waiting. Rows are written at its end
    and read back anywhere (:func:`~flanlab.core.io.write_at`, :func:`~flanlab.core.io.read_at`)."""

    def __init__(self, folder: Path) -> None:
        self.f = tempfile.TemporaryFile(dir=folder, buffering=0)  # noqa: SIM115 (closed by RowSpill)
        self.end = 0
        self.waiting = 0

    def append(self, data: bytes) -> int:
        """Write ``data`` at the end; where it starts."""
        at = self.end
        write_at(self.f, data, at)
        self.end += len(data)
        return at

    def read(self, offset: int, size: int) -> bytes:
        data = read_at(self.f, offset, size)
        if len(data) != size:
            raise OSError(f"{self.f.name}: read {len(data)} of {size} spilled bytes at {offset}")
        return data


class _Spilled(NamedTuple):
    file: _File
    offset: int
    size: int  # bytes of inputs then targets, UTF-8
    split: int  # bytes of inputs
    template_id: str


class RowSpill:
    """Rows that enter a stream's shuffle buffer while the texts it holds already take ``limit``
    bytes wait in a temporary file in ``folder`` and leave as they came (same text, lone
    surrogates included).

    Python keeps a text at 1, 2 or 4 bytes a character, so 4,096 long few-shot rows would take
    over 100 MB, and only builds large enough to fill the buffer would pay it: with the spill a
    stream holds at most ``limit`` bytes of texts whatever the build's size. Writing a row and
    reading it back costs less than compressing it. A new file is started every ``file_bytes``
    bytes and a file is closed once none of its rows waits, so the disk used stays near what
    waits (a buffer of n rows keeps a row for ~n draws), not the stream's size.
    """

    def __init__(self, folder: Path, limit: int, file_bytes: int = 64 << 20) -> None:
        self.folder, self.limit, self.file_bytes = folder, limit, file_bytes
        self.held = 0  # bytes of the texts of the rows kept in memory
        self.files: list[_File] = []  # files with rows waiting, the one written last at the end
        self.spilled = 0  # rows written to disk (for tests and probes)

    def put(self, row: Rendered) -> Rendered | _Spilled:
        """The row itself while the texts held stay within the bound, else where it waits on disk."""
        size = sys.getsizeof(row.inputs) + sys.getsizeof(row.targets)
        if self.held + size <= self.limit:
            self.held += size
            return row
        inputs = row.inputs.encode("utf-8", "surrogatepass")
        data = inputs + row.targets.encode("utf-8", "surrogatepass")
        if not self.files or self.files[-1].end >= self.file_bytes:
            if self.files and self.files[-1].waiting == 0:
                self.files.pop().f.close()
            self.files.append(_File(self.folder))
        file = self.files[-1]
        item = _Spilled(file, file.append(data), len(data), len(inputs), row.template_id)
        file.waiting += 1
        self.spilled += 1
        return item

    def take(self, item: Rendered | _Spilled) -> Rendered:
        """The row ``put`` returned ``item`` for."""
        if not isinstance(item, _Spilled):
            self.held -= sys.getsizeof(item.inputs) + sys.getsizeof(item.targets)
            return item
        file = item.file
        data = file.read(item.offset, item.size)
        file.waiting -= 1
        if file.waiting == 0 and file is not self.files[-1]:
            file.f.close()
            self.files.remove(file)
        return Rendered(data[: item.split].decode("utf-8", "surrogatepass"),
                        data[item.split:].decode("utf-8", "surrogatepass"), item.template_id)

    def close(self) -> None:
        """Close (and so remove) every file."""
        for file in self.files:
            file.f.close()
        self.files.clear()
