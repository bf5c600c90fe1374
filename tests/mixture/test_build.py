import hashlib
import json
from collections import Counter

import pytest

from flanlab.core.config import load_config
from flanlab.core.errors import UserError
from flanlab.mixture import build as build_mod
from flanlab.mixture.build import build_mixture
from flanlab.mixture.config import MixtureConfig
from flanlab.mixture.resolve import HeldOutError
from flanlab.mixture.shards import IncompleteMixtureError, iter_mixture, read_manifest
from tests.mixture.helpers import toy_mixture, write_config, write_task


def build(cfg, out, **kw):
    return build_mixture(load_config(cfg, kw.pop("overrides", ()), schema=MixtureConfig), out,
                         config_path=cfg, **kw)


def digests(folder):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.glob("shard-*"))}


def test_counts_follow_caps_and_rates(tmp_path):
    cfg = toy_mixture(tmp_path)
    result = build(cfg, tmp_path / "out", examples=2000)
    m = result.manifest
    # Submixtures: NIv2 0.2 and CoT 0.05 renormalized → 0.8 / 0.2. Inside NIv2 the cap of 300 makes
    # alpha (1000 examples) weigh 300 against beta's 100 → 0.6 / 0.2 of the mixture.
    assert {k: v["examples"] for k, v in m["tasks"].items()} == {"alpha": 1200, "beta": 400, "gamma": 400}
    assert m["submixtures"]["niv2"]["share"] == 0.8 and m["submixtures"]["cot"]["share"] == 0.2
    rows = list(iter_mixture(tmp_path / "out", verify=True))
    assert Counter(r["task"] for r in rows) == {"alpha": 1200, "beta": 400, "gamma": 400}
    assert set(rows[0]) == {"inputs", "targets", "task", "template_id", "format", "submixture"}
    # Each shard is a fair sample of the mixture: alpha's count in the first 400 rows is within
    # 4 standard deviations of 240 (hypergeometric sd ≈ 8.8).
    first = Counter(r["task"] for r in rows[:400])
    assert abs(first["alpha"] - 240) < 4 * 8.8
    # gamma (50 examples, 400 drawn) repeats its examples 8 times, each under its own epoch.
    gamma = Counter(r["inputs"] for r in rows if r["task"] == "gamma")
    assert len(gamma) == 50 and set(gamma.values()) == {8}
    # alpha draws 1200 of 1000: every example once, 200 twice.
    alpha = Counter(r["inputs"] for r in rows if r["task"] == "alpha")
    assert len(alpha) == 1000 and Counter(alpha.values()) == {1: 800, 2: 200}
    assert m["tasks"]["alpha"]["lengths"]["input_words"]["count"] == 1200
    assert [s["examples"] for s in m["shards"]] == [400] * 5


def test_same_bytes_across_runs_and_workers(tmp_path):
    cfg = toy_mixture(tmp_path)
    a = build(cfg, tmp_path / "a", examples=1500)
    b = build(cfg, tmp_path / "b", examples=1500, workers=2)
    assert digests(tmp_path / "a") == digests(tmp_path / "b")
    assert (tmp_path / "a" / "manifest.json").read_bytes() == (tmp_path / "b" / "manifest.json").read_bytes()
    assert [s["sha256"] for s in a.manifest["shards"]] == [s["sha256"] for s in b.manifest["shards"]]
    # Another seed gives another mixture.
    build(cfg, tmp_path / "c", examples=1500, overrides=["seed=8"])
    assert digests(tmp_path / "c") != digests(tmp_path / "a")
    assert not (tmp_path / "a" / ".work").exists()


@pytest.mark.parametrize("positioned", [True, False], ids=["pread", "seek"])
def test_rows_spilled_from_the_shuffle_buffer_leave_as_they_came(monkeypatch, tmp_path, positioned):
    """Past BUFFER_BYTES of held text, rows wait on disk: the same rows in the same order, any
    script and lone surrogates included, files closed as their rows leave, and the same shards
    (with os.pread/os.pwrite, and with seek where the OS lacks them)."""
    import random

    from flanlab.core import io as io_mod
    from flanlab.mixture.schedule import shuffle_buffer
    from flanlab.mixture.sources import Rendered
    from flanlab.mixture.spill import RowSpill

    monkeypatch.setattr(io_mod, "_POSITIONED", positioned and io_mod._POSITIONED)

    texts = ["plain ascii", "café ☕", "日本語のテキスト" * 40, "emoji 😀 and a lone \ud800 surrogate", ""]
    rows = [Rendered(texts[i % 5] + str(i), texts[(i * 3) % 5], f"t{i % 3}") for i in range(300)]
    spill = RowSpill(tmp_path, 20_000, file_bytes=4_000)
    files_seen = set()

    def put(row):
        out = spill.put(row)
        files_seen.update(id(f) for f in spill.files)
        assert len(spill.files) <= 8  # files whose rows have all left are closed
        return out

    got = list(map(spill.take, shuffle_buffer(map(put, rows), 64, random.Random(1))))
    assert got == list(shuffle_buffer(rows, 64, random.Random(1)))
    assert 0 < spill.spilled < len(rows) and spill.held == 0 and len(files_seen) > 3
    spill.close()
    assert spill.files == [] and list(tmp_path.iterdir()) == []  # unnamed files: nothing left behind
    (tmp_path / "cfg").mkdir()
    cfg = toy_mixture(tmp_path / "cfg")
    spills: list[RowSpill] = []
    monkeypatch.setattr(build_mod, "RowSpill", lambda *a: spills.append(RowSpill(*a)) or spills[-1])
    monkeypatch.setattr(build_mod, "BUFFER_BYTES", 2_000)
    build(cfg, tmp_path / "spilled", examples=1500)
    assert sum(s.spilled for s in spills) > 1000 and all(s.files == [] for s in spills)
    monkeypatch.setattr(build_mod, "BUFFER_BYTES", 8 << 20)
    build(cfg, tmp_path / "held", examples=1500)
    assert digests(tmp_path / "spilled") == digests(tmp_path / "held")


@pytest.mark.slow
def test_same_bytes_with_four_workers_and_all_formats(tmp_path):
    cfg = toy_mixture(tmp_path)
    one = build(cfg, tmp_path / "one", examples=1500)
    four = build(cfg, tmp_path / "four", examples=1500, workers=4)
    assert digests(tmp_path / "one") == digests(tmp_path / "four")
    rows = list(iter_mixture(tmp_path / "one"))
    for fmt in ("jsonl.zst", "parquet"):
        out = tmp_path / fmt
        r1 = build(cfg, out, examples=1500, overrides=[f"output_format={fmt}"])
        r2 = build(cfg, tmp_path / f"{fmt}-2", examples=1500, workers=2, overrides=[f"output_format={fmt}"])
        assert [s["sha256"] for s in r1.manifest["shards"]] == [s["sha256"] for s in r2.manifest["shards"]]
        assert list(iter_mixture(out, verify=True)) == rows
    assert one.manifest["tasks"] == four.manifest["tasks"]


def test_heldout_guard_refuses_and_names_the_task(tmp_path):
    write_task(tmp_path / "mmlu_like.jsonl", "mmlu_like", 20)
    write_task(tmp_path / "ok.jsonl", "ok", 20)
    body = """name: guarded
members:
  - {file: ok.jsonl, submixture: cot}
  - {file: mmlu_like.jsonl, submixture: cot, tags: ["heldout:mmlu"]}
"""
    cfg = write_config(tmp_path, body)
    with pytest.raises(HeldOutError, match=r"'mmlu_like' \(heldout:mmlu\)") as e:
        build(cfg, tmp_path / "out")
    assert "allow_heldout" in str(e.value)
    assert not (tmp_path / "out" / "manifest.json").exists()
    cfg = write_config(tmp_path, body + "allow_heldout: [mmlu_like]\n")
    assert build(cfg, tmp_path / "out").manifest["tasks"]["mmlu_like"]["examples"] == 20


def test_interrupted_run_leaves_no_manifest_and_resumes(tmp_path, monkeypatch):
    cfg = toy_mixture(tmp_path)
    clean = build(cfg, tmp_path / "clean", examples=2000)
    real = build_mod.assemble_shard
    calls = []

    def crash_on_third(job):
        calls.append(job["index"])
        if len(calls) == 3:
            raise KeyboardInterrupt  # as if the run were stopped mid-way
        return real(job)

    monkeypatch.setattr(build_mod, "assemble_shard", crash_on_third)
    out = tmp_path / "out"
    with pytest.raises(KeyboardInterrupt):
        build(cfg, out, examples=2000)
    assert not (out / "manifest.json").exists() and len(list(out.glob("shard-*"))) == 2
    with pytest.raises(IncompleteMixtureError, match="no manifest.json"):
        read_manifest(out)
    monkeypatch.setattr(build_mod, "assemble_shard", real)
    # A crash between a shard's rename and its record: the shard is not trusted, it is rebuilt.
    (out / ".work" / "shards" / "00001.json").unlink()
    # A kill in the middle of an atomic write leaves its temporary sibling behind.
    stale = out / f".{clean.manifest['shards'][2]['file']}.k1ll3d.tmp"
    stale.write_text('{"half": ')
    resumed = build(cfg, out, examples=2000)
    assert resumed.resumed_streams == 3 and resumed.resumed_shards == 1
    assert digests(out) == digests(tmp_path / "clean") and resumed.manifest == clean.manifest
    assert not stale.exists() and not list(out.glob(".*.tmp"))
    again = build(cfg, out, examples=2000)
    assert again.already_complete
    # A finished folder whose shard was truncated afterwards is rebuilt, not reported complete.
    shard = out / again.manifest["shards"][0]["file"]
    shard.write_bytes(shard.read_bytes()[:100])
    rebuilt = build(cfg, out, examples=2000)
    assert not rebuilt.already_complete and digests(out) == digests(tmp_path / "clean")


def test_out_folder_rules(tmp_path):
    cfg = toy_mixture(tmp_path)
    out = tmp_path / "out"
    build(cfg, out, examples=500)
    with pytest.raises(UserError, match="different config.*--overwrite"):
        build(cfg, out, examples=600)
    assert build(cfg, out, examples=600, overwrite=True).manifest["examples"] == 600
    assert len(list(out.glob("shard-*"))) == 2  # the old run's shards are gone
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    with pytest.raises(UserError, match="not a mixture folder"):
        build(cfg, other, examples=500)


def test_token_length_statistics(tmp_path):
    from flanlab.inference.tiny import make_tiny_tokenizer

    tok = make_tiny_tokenizer()
    tok.save_pretrained(tmp_path / "tok")
    cfg = toy_mixture(tmp_path, extra="token_stats_every: 1\n")
    m = build(cfg, tmp_path / "out", examples=300, tokenizer=str(tmp_path / "tok")).manifest
    lengths = m["lengths"]
    assert set(lengths) == {"input_words", "target_words", "input_tokens", "target_tokens"}
    assert lengths["input_tokens"]["count"] == 300
    rows = list(iter_mixture(tmp_path / "out"))
    expected = sum(len(tok(r["inputs"], add_special_tokens=False)["input_ids"]) for r in rows) / 300
    assert lengths["input_tokens"]["mean"] == pytest.approx(expected, abs=1e-3)
    # The default samples every 16th example of each stream; word statistics still count all.
    (tmp_path / "s").mkdir()
    sampled = build(toy_mixture(tmp_path / "s"), tmp_path / "out-s", examples=300,
                    tokenizer=str(tmp_path / "tok")).manifest
    per_stream = [f for t in sampled["tasks"].values() for f in t["formats"].values()]
    assert sampled["lengths"]["input_tokens"]["count"] == sum(-(-n // 16) for n in per_stream)
    assert sampled["lengths"]["input_words"]["count"] == 300


def test_bad_file_member_names_file_and_line(tmp_path):
    (tmp_path / "bad.jsonl").write_text('{"inputs": "a", "targets": "b"}\n{oops\n')
    cfg = write_config(tmp_path, "name: bad\nmembers:\n  - {file: bad.jsonl, submixture: cot}\n")
    with pytest.raises(UserError, match=r"bad.jsonl:2: invalid JSON"):
        build(cfg, tmp_path / "out")
    cfg = write_config(tmp_path, "name: bad\nmembers:\n  - {file: missing.jsonl, submixture: cot}\n")
    with pytest.raises(UserError, match=r"members.0.file: .*missing.jsonl not found"):
        build(cfg, tmp_path / "out")


@pytest.mark.slow
def test_killed_process_leaves_no_manifest_and_rerun_completes(tmp_path):
    import os
    import subprocess
    import sys

    from tests.reliability.conftest import sigkill, start, wait_stopped

    cfg = toy_mixture(tmp_path, sizes=(5000, 1000, 200))
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "flanlab", "mix", str(cfg), "--out", str(out), "--examples", "20000"]
    # The child freezes itself once the plan is written, then dies there: a kill at a fixed point.
    proc = start(cmd[3:], tmp_path / "killed.log", stop_at={"glob": str(out / ".work"), "pattern": "plan.json",
                                                            "count": 1})
    wait_stopped(proc, "the plan")
    sigkill(proc)
    assert not (out / "manifest.json").exists()
    with pytest.raises(IncompleteMixtureError):
        read_manifest(out)
    rerun = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "FLANLAB_PROGRESS": "0"})
    assert rerun.returncode == 0, rerun.stderr
    clean = build(cfg, tmp_path / "clean", examples=20000)
    assert digests(out) == digests(tmp_path / "clean")
    assert json.loads((out / "manifest.json").read_text()) == clean.manifest


def test_sub_mixture_member_gets_its_rate(tmp_path):
    toy_mixture(tmp_path)  # writes alpha/beta/gamma and mix.yaml (the inner mixture)
    write_task(tmp_path / "delta.jsonl", "delta", 300)
    outer = write_config(tmp_path, """name: outer
seed: 1
members:
  - {file: delta.jsonl, submixture: flan2021}
  - {mixture: mix.yaml, rate: 1.0}
""", "outer.yaml")
    m = build(outer, tmp_path / "out", examples=1000).manifest
    # flan2021's default rate 0.4 against the sub-mixture's explicit 1.0 → 2/7 and 5/7; inside,
    # the toy mixture keeps its own shares (alpha 0.6, beta 0.2, gamma 0.2).
    counts = {k: v["examples"] for k, v in m["tasks"].items()}
    assert counts == {"delta": 286, "alpha": 428, "beta": 143, "gamma": 143}
    cyclic = write_config(tmp_path, "name: loop\nmembers:\n  - {mixture: loop.yaml}\n", "loop.yaml")
    with pytest.raises(UserError, match="includes itself"):
        build(cyclic, tmp_path / "loop")


def test_light_tokenizer_is_the_tokenizer_transformers_loads(tmp_path, monkeypatch):
    """Workers load tokenizer.json with `tokenizers` alone only after AutoTokenizer was seen to load
    the same tokenizer; counts, truncation and statistics then agree."""
    from pathlib import Path

    from transformers import AutoTokenizer

    from flanlab.tasks.budget import HFCounter

    folder = Path.home() / ".cache" / "flanlab" / "models" / "smollm2-135m"
    if not (folder / "tokenizer.json").is_file():
        pytest.skip("smollm2-135m not cached (flanlab models)")
    monkeypatch.setenv("FLANLAB_CACHE_DIR", str(tmp_path / "cache"))
    light = build_mod._light_tokenizer(str(folder))
    assert light is not None
    verdicts = json.loads((tmp_path / "cache" / "mixture" / "tokenizer-verdicts.json").read_text())
    assert list(verdicts.values()) == [True]
    full, fast = HFCounter(AutoTokenizer.from_pretrained(str(folder))), HFCounter(light)
    text = "Q: Which is bigger, 17 or 71? Ünïcode 文字 <|im_end|>\n\n" * 200
    assert fast.count(text) == full.count(text)
    for n in (1, 7, 100, 999):
        assert fast.truncate(text, n) == full.truncate(text, n)
    assert build_mod._token_lengths(fast, [text, "hi"]) == build_mod._token_lengths(full, [text, "hi"])
    # A verdict of "different" keeps transformers' loader.
    key = next(iter(verdicts))
    (tmp_path / "cache" / "mixture" / "tokenizer-verdicts.json").write_text(json.dumps({key: False}))
    assert build_mod._light_tokenizer(str(folder)) is None


def test_small_tasks_share_render_jobs_without_changing_bytes(tmp_path, monkeypatch):
    # _groups: every stream once and in order; a job reaches the least size unless it is the last.
    quotas = [5, 700, 400, 3000, 1, 1]
    tasks = [[{"index": 2 * i + k, "quota": q} for k in range(2)] for i, q in enumerate(quotas)]
    groups = build_mod._groups(tasks, 10_000)
    assert [j["index"] for g in groups for j in g] == list(range(12))
    assert [sum(j["quota"] for j in g) for g in groups] == [1410, 6800, 4]  # tasks of 10, 1400 | 800, 6000 | 2, 2
    assert build_mod._groups(tasks, 2_600_000) == [[j for t in tasks for j in t]]  # least: 1/256 of the build
    # The same bytes whatever the jobs: tasks alone, grouped, and grouped over 2 workers.
    cfg = toy_mixture(tmp_path)
    real, jobs = build_mod.render_task, []
    monkeypatch.setattr(build_mod, "render_task", lambda job: jobs.append(len(job["streams"])) or real(job))
    grouped = build(cfg, tmp_path / "grouped", examples=1500)
    assert sorted(jobs) == [1, 2]  # alpha and beta (900 + 300 examples) share a job; gamma's 300 alone
    monkeypatch.setattr(build_mod, "GROUP_MIN", 1)
    jobs.clear()
    alone = build(cfg, tmp_path / "alone", examples=1500)
    assert jobs == [1, 1, 1]
    monkeypatch.setattr(build_mod, "render_task", real)
    monkeypatch.setattr(build_mod, "GROUP_MIN", 1000)
    two = build(cfg, tmp_path / "two", examples=1500, workers=2)
    assert digests(tmp_path / "grouped") == digests(tmp_path / "alone") == digests(tmp_path / "two")
    assert grouped.manifest == alone.manifest == two.manifest
