"""SIGKILL during ``flanlab mix``: a killed build is never taken for a finished mixture (no
manifest: readers and ``flanlab train`` refuse it), and rerunning the command resumes it to the same
bytes as an uninterrupted build."""

from __future__ import annotations

import hashlib

import pytest

from flanlab.cli import main
from flanlab.mixture.shards import IncompleteMixtureError, iter_mixture, read_manifest
from tests.mixture.helpers import toy_mixture
from tests.reliability.conftest import sigkill, start, wait_stopped

EXAMPLES = "12000"


def _digests(folder) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.glob("shard-*"))}


def _assert_incomplete(out, tmp_path, tiny_llama_dir, capsys) -> None:
    assert not (out / "manifest.json").exists()
    with pytest.raises(IncompleteMixtureError, match="no manifest.json"):
        read_manifest(out)
    with pytest.raises(IncompleteMixtureError):
        next(iter_mixture(out))
    from tests.training.helpers import write_config

    cfg = write_config(tmp_path / "train.yaml", tiny_llama_dir, out)
    capsys.readouterr()
    assert main(["train", str(cfg), "--run-name", str(tmp_path / "train-on-partial")]) == 2
    assert "no manifest.json" in capsys.readouterr().err


@pytest.mark.slow
def test_sigkill_mid_mix_is_never_complete_and_resumes(tmp_path, tiny_llama_dir, capsys):
    cfg = toy_mixture(tmp_path, sizes=(3000, 400, 200), extra="shard_size: 300\n")
    cfg.write_text(cfg.read_text().replace("shard_size: 400\n", ""), encoding="utf-8")
    clean, out = tmp_path / "clean", tmp_path / "out"
    assert main(["mix", str(cfg), "--out", str(clean), "--examples", EXAMPLES]) == 0
    args = ["mix", str(cfg), "--out", str(out), "--examples", EXAMPLES]

    # Kill 1: in phase 1, once the first stream is rendered.
    proc = start(args, tmp_path / "kill1.log", stop_at={"glob": str(out / ".work" / "streams"), "pattern": "*.json",
                                                      "count": 1})
    wait_stopped(proc, "a rendered stream")
    sigkill(proc)
    _assert_incomplete(out, tmp_path, tiny_llama_dir, capsys)

    # Kill 2: the rerun resumes; kill it in phase 2, once some shards are written.
    proc = start(args, tmp_path / "kill2.log", stop_at={"glob": str(out), "pattern": "shard-*", "count": 2})
    wait_stopped(proc, "written shards")
    sigkill(proc)
    shards = len(list(out.glob("shard-*")))
    assert shards == 2, "the kill lands right after the second shard"
    _assert_incomplete(out, tmp_path, tiny_llama_dir, capsys)
    with capsys.disabled():
        print(f"mix kill: {shards}/40 shards on disk at the second kill")

    # The third run finishes; same bytes as the clean build, and nothing left of the work folder.
    assert main(args) == 0
    assert _digests(out) == _digests(clean) and len(_digests(out)) == 40
    assert (out / "manifest.json").read_bytes() == (clean / "manifest.json").read_bytes()
    assert not (out / ".work").exists() and not list(out.glob(".*.tmp"))
    assert sum(1 for _ in iter_mixture(out, verify=True)) == int(EXAMPLES)
