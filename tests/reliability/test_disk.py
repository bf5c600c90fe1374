"""A full disk or a read-only output folder: one clear message (exit 2, no traceback), and what was
written before is kept. Simulated with tiny tmpfs mounts (needs root / CAP_SYS_ADMIN; skipped
visibly otherwise, except the read-only case, which falls back to a chmod-ed folder for non-root)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path

import pytest

from flanlab.cli import main
from flanlab.core.io import read_jsonl
from tests.mixture.helpers import toy_mixture


class Mount:
    """A tmpfs mounted at ``path`` for one test."""

    def __init__(self, path: Path, size: str) -> None:
        self.path = path
        path.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                              capture_output=True, text=True)
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip() or done.returncode})")

    def remount(self, options: str) -> None:
        subprocess.run(["mount", "-o", f"remount,{options}", str(self.path)], check=True)

    def umount(self) -> None:
        subprocess.run(["umount", "-l", str(self.path)], check=False)


@pytest.fixture
def tmpfs(tmp_path):
    mounts: list[Mount] = []

    def make(size: str) -> Mount:
        mounts.append(Mount(tmp_path / f"fs{len(mounts)}", size))
        return mounts[-1]

    yield make
    for m in mounts:
        m.umount()


def _eval(model, data, runs, name, *extra) -> list[str]:
    return ["eval", "--model", str(model), "--data-dir", str(data), "--benchmarks", "mmlu", "--strategies",
            "direct", "--runs-dir", str(runs), "--run-name", name, "--seed", "0", *extra]


def _one_clear_line(err: str, *needles: str) -> None:
    assert "Traceback" not in err
    line = next(ln for ln in err.splitlines() if ln.startswith("flanlab "))
    for needle in needles:
        assert needle in line, line


def test_eval_full_disk_keeps_records_and_resumes(tiny_llama_dir, mmlu_data, tmpfs, tmp_path, capsys):
    fs = tmpfs("64k")
    args = _eval(tiny_llama_dir, mmlu_data, fs.path, "run", "--cache", str(tmp_path / "cache.sqlite"))
    assert main(args) == 2
    _one_clear_line(capsys.readouterr().err, "examples.jsonl", "no space left on the device")
    records = read_jsonl(fs.path / "run" / "examples.jsonl")  # whole lines only (a torn tail is skipped)
    assert 64 <= len(records) < 160
    assert not (fs.path / "run" / "results.json").exists()
    fs.remount("size=2m")  # space freed: the same command resumes
    assert main(args) == 0
    res = json.loads((fs.path / "run" / "results.json").read_text())
    assert res["sent"] == 160 - len(records)
    final = read_jsonl(fs.path / "run" / "examples.jsonl", skip_torn_tail=False)
    assert final[: len(records)] == records and len(final) == 160
    assert len({(r["subtask"], r["index"]) for r in final}) == 160


def test_eval_request_cache_on_a_full_disk(tiny_llama_dir, mmlu_data, tmpfs, capsys):
    fs = tmpfs("64k")
    assert main(_eval(tiny_llama_dir, mmlu_data, fs.path, "run")) == 2
    _one_clear_line(capsys.readouterr().err, "cannot write the request cache", "requests.sqlite", "full")


def test_train_full_disk_keeps_earlier_checkpoints(tiny_llama_dir, tmpfs, tmp_path, capsys):
    from tests.training.helpers import copy_task_rows, write_config, write_mixture

    mix = write_mixture(tmp_path / "mix", copy_task_rows(100))
    cfg = write_config(tmp_path / "c.yaml", tiny_llama_dir, mix, train={"steps": 6, "save_every": 2})
    fs = tmpfs("256k")
    assert main(["train", str(cfg), "--run-name", str(fs.path / "run")]) == 2
    _one_clear_line(capsys.readouterr().err, "cannot write", "step-000002", "No space left")
    assert list((fs.path / "run" / "checkpoints").iterdir()) == []  # no half checkpoint left to resume from
    # Room for one checkpoint (1.8 MB) but not two: the first is kept, complete, and resumed from.
    fs.remount("size=3m")
    run = fs.path / "run"
    assert main(["train", str(cfg), "--run-name", str(run)]) == 2
    _one_clear_line(capsys.readouterr().err, "cannot write", "step-000004")
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["step-000002"]
    fs.remount("size=16m")
    assert main(["train", str(cfg), "--run-name", str(run)]) == 0
    assert "resumed from" in (run / "log.txt").read_text()
    assert json.loads((run / "results.json").read_text())["steps"] == 6


def _digests(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


def _read_only_view(folder: Path, view: Path) -> str:
    """A read-only bind mount of ``folder`` at ``view`` (root), else ``folder`` itself chmod-ed
    read-only (non-root); returns the reason the error message should give."""
    if os.geteuid() == 0:
        view.mkdir()
        subprocess.run(["mount", "--bind", str(folder), str(view)], check=True)
        subprocess.run(["mount", "-o", "remount,bind,ro", str(view)], check=True)
        return "read-only"
    folder.chmod(0o555)
    return "permission denied"


def test_mix_read_only_folder_keeps_the_finished_mixture(tmp_path, capsys):
    cfg = toy_mixture(tmp_path)
    out = tmp_path / "mix"
    assert main(["mix", str(cfg), "--out", str(out), "--examples", "600"]) == 0
    before = _digests(out)
    view = tmp_path / "ro"
    reason = _read_only_view(out, view)
    target = view if os.geteuid() == 0 else out
    capsys.readouterr()
    try:
        assert main(["mix", str(cfg), "seed=9", "--out", str(target), "--examples", "600", "--overwrite"]) == 2
        _one_clear_line(capsys.readouterr().err, str(target), reason)
        assert _digests(out) == before  # shards and manifest untouched
    finally:
        if os.geteuid() == 0:
            subprocess.run(["umount", "-l", str(view)], check=False)
        else:
            out.chmod(0o755)


def test_mix_full_disk_is_not_a_finished_mixture(tmpfs, tmp_path, capsys):
    cfg = toy_mixture(tmp_path)
    fs = tmpfs("64k")
    out = fs.path / "mix"
    assert main(["mix", str(cfg), "--out", str(out), "--examples", "3000"]) == 2
    _one_clear_line(capsys.readouterr().err, "no space left on the device")
    assert not (out / "manifest.json").exists()
    fs.remount("size=8m")
    assert main(["mix", str(cfg), "--out", str(out), "--examples", "3000"]) == 0
    assert json.loads((out / "manifest.json").read_text())["examples"] == 3000
