import json
import os
import subprocess
import sys

import pytest

from flanlab.core.io import (
    OutputError,
    append_jsonl,
    atomic_open,
    atomic_write_json,
    atomic_write_text,
    read_jsonl,
)


def test_atomic_write_replaces(tmp_path):
    p = tmp_path / "out.json"
    atomic_write_json(p, {"a": 1})
    atomic_write_json(p, {"a": 2})
    assert json.loads(p.read_text()) == {"a": 2}
    assert [f.name for f in tmp_path.iterdir()] == ["out.json"]
    umask = os.umask(0)
    os.umask(umask)
    assert p.stat().st_mode & 0o777 == 0o666 & ~umask


def test_exception_mid_write_keeps_old_file(tmp_path):
    p = tmp_path / "out.txt"
    atomic_write_text(p, "old")
    with pytest.raises(RuntimeError), atomic_open(p) as f:
        f.write("new but partial")
        raise RuntimeError("crash")
    assert p.read_text() == "old"
    assert [f.name for f in tmp_path.iterdir()] == ["out.txt"]


def test_killed_process_mid_write_keeps_old_file(tmp_path):
    """A real crash: the writer process is killed (os._exit) while the temp file is half written."""
    p = tmp_path / "out.txt"
    atomic_write_text(p, "old")
    code = (
        "import os, sys\n"
        "from flanlab.core.io import atomic_open\n"
        f"with atomic_open({str(p)!r}) as f:\n"
        "    f.write('x' * 100000); f.flush()\n"
        "    os._exit(9)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code])
    assert proc.returncode == 9
    assert p.read_text() == "old"


def test_read_only_folder_gives_clear_error(tmp_path):
    if os.geteuid() == 0:
        # root ignores permission bits; use a path under a file instead, which fails for anyone.
        blocker = tmp_path / "file"
        blocker.write_text("x")
        with pytest.raises(OutputError, match=r"cannot write .*earlier outputs are kept"):
            atomic_write_text(blocker / "out.txt", "data")
        return
    ro = tmp_path / "ro"
    ro.mkdir()
    (ro / "keep.txt").write_text("keep")
    ro.chmod(0o500)
    try:
        with pytest.raises(OutputError, match="permission denied"):
            atomic_write_text(ro / "keep.txt", "new")
        assert (ro / "keep.txt").read_text() == "keep"
    finally:
        ro.chmod(0o700)


def test_jsonl_append_and_torn_tail(tmp_path):
    p = tmp_path / "rows.jsonl"
    append_jsonl(p, [{"i": 1}, {"i": 2}])
    with open(p, "a") as f:
        f.write('{"i": 3')  # a crash mid-line
    assert read_jsonl(p) == [{"i": 1}, {"i": 2}]
    p.write_text('{"i": 1}\nnot json\n{"i": 3}\n')
    with pytest.raises(ValueError, match=r"rows\.jsonl:2: invalid JSON"):
        read_jsonl(p)


@pytest.mark.parametrize("positioned", [True, False], ids=["pread", "seek"])
def test_read_at_and_write_at_from_several_threads(monkeypatch, tmp_path, positioned):
    """Writes and reads at offsets (os.pwrite/os.pread, or seek under a lock where the OS lacks
    them) land where asked, also when threads read at once."""
    from concurrent.futures import ThreadPoolExecutor

    from flanlab.core import io as io_mod

    monkeypatch.setattr(io_mod, "_POSITIONED", positioned and io_mod._POSITIONED)
    chunks = [bytes([i]) * (100 + i) for i in range(64)]
    starts = [sum(map(len, chunks[:i])) for i in range(len(chunks))]
    with open(tmp_path / "f", "w+b", buffering=0) as f:
        for i in reversed(range(len(chunks))):  # out of order: each lands at its own offset
            io_mod.write_at(f, chunks[i], starts[i])
        with ThreadPoolExecutor(4) as pool:
            got = list(pool.map(lambda i: io_mod.read_at(f, starts[i], len(chunks[i])), range(len(chunks))))
        assert got == chunks
        assert io_mod.read_at(f, starts[-1], 10_000) == chunks[-1]  # fewer at the end
