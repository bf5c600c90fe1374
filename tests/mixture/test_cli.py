import json
from pathlib import Path

import pytest

from flanlab.cli import main
from flanlab.mixture.shards import iter_mixture
from tests.mixture.helpers import toy_mixture, write_config

REPO = Path(__file__).resolve().parents[2]
BIGBENCH = Path.home() / ".cache" / "flanlab" / "downloads" / "bigbench-1.0.0.tar.gz"


def test_mix_then_stats_end_to_end(tmp_path, capsys):
    cfg = toy_mixture(tmp_path)
    out = tmp_path / "out"
    assert main(["mix", str(cfg), "--out", str(out), "--examples", "600", "--workers", "2"]) == 0
    assert "| alpha | niv2 | qa | 360 | 60.00% |" in capsys.readouterr().out
    assert main(["mix", "stats", str(out)]) == 0
    printed = capsys.readouterr().out
    stats = json.loads((out / "stats.json").read_text())
    assert {r["task"]: r["examples"] for r in stats["tasks"]} == {"alpha": 360, "beta": 120, "gamma": 120}
    assert [(s["submixture"], s["share"]) for s in stats["submixtures"]] == [("niv2", 0.8), ("cot", 0.2)]
    assert "| niv2 | 2 | 480 | 80.00% |" in printed and "mean_input_words" in printed
    png = (out / "shares.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    # Rerunning the same command finds it complete; config overrides change the mixture.
    assert main(["mix", str(cfg), "--out", str(out), "--examples", "600"]) == 0
    assert "already complete" in capsys.readouterr().err
    assert main(["mix", str(cfg), "seed=9", "--out", str(out), "--examples", "600"]) == 2
    assert "--overwrite" in capsys.readouterr().err


def test_user_errors_are_one_line(tmp_path, capsys):
    cfg = write_config(tmp_path, "name: x\nrule: sometimes\nmembers:\n  - {file: a.jsonl}\n")
    assert main(["mix", str(cfg), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "rule" in err and "examples_proportional" in err and "Traceback" not in err
    assert main(["mix", "stats", str(tmp_path / "nothing")]) == 2
    assert "not found" in capsys.readouterr().err
    cfg = write_config(tmp_path, "name: x\nmembers:\n  - {file: a.jsonl, task: b}\n")
    assert main(["mix", str(cfg), "--out", str(tmp_path / "o")]) == 2
    assert "exactly one of task, file, mixture" in capsys.readouterr().err


@pytest.fixture
def catalog_data(shared_data):
    if not BIGBENCH.is_file():
        pytest.skip(f"BIG-bench sdist not cached at {BIGBENCH}")
    return shared_data


@pytest.mark.slow
def test_real_tasks_guard_and_determinism(tmp_path, catalog_data, capsys):
    base = """name: real
seed: 3
examples: 400
shard_size: 150
members:
  - {task: cot_aqua, formats: [zs_cot, fs_cot]}
  - {task: cot_qasc, formats: [zs_cot]}
  - {task: "bigbench.logical_*", formats: [zs_opt]}
  - {task: bigbench.hindu_knowledge, formats: [zs_opt]}
"""
    cfg = write_config(tmp_path, base)
    args = ["--data-dir", str(catalog_data), "--examples", "400"]
    assert main(["mix", str(cfg), "--out", str(tmp_path / "a"), *args]) == 0
    assert main(["mix", str(cfg), "--out", str(tmp_path / "b"), "--workers", "2", *args]) == 0
    a = json.loads((tmp_path / "a" / "manifest.json").read_text())
    b = json.loads((tmp_path / "b" / "manifest.json").read_text())
    assert a["shards"] == b["shards"]
    # The glob skipped the BBH sources (logical_deduction/*) instead of refusing them.
    assert set(a["tasks"]) == {"cot_aqua", "cot_qasc", "bigbench.hindu_knowledge", "bigbench.logical_args",
                               "bigbench.logical_fallacy_detection", "bigbench.logical_sequence"}
    # BIG-bench JSON tasks are their own submixture (never NIv2), with NIv2's rate and cap.
    bb = {k: t for k, t in a["tasks"].items() if t["submixture"] == "bigbench"}
    assert set(bb) == {k for k in a["tasks"] if k.startswith("bigbench.")}
    weight = sum(min(t["available"], 5000) for t in bb.values())  # cap: 5,000
    for t in bb.values():
        assert abs(t["examples"] - 320 * t["available"] / weight) < 1
    # Rates over cot (0.05) and bigbench (0.2) → 20% / 80%; CoT splits evenly over zs_cot
    # and fs_cot, and zs_cot between aqua and qasc by their sizes (2,728 and 1,084).
    assert a["submixtures"]["cot"]["examples"] == 80 and a["submixtures"]["bigbench"]["examples"] == 320
    assert a["tasks"]["cot_aqua"]["formats"] == {"zs_cot": 29, "fs_cot": 40}
    rows = list(iter_mixture(tmp_path / "a", verify=True))
    fs = [r for r in rows if r["format"] == "fs_cot"]
    assert len(fs) == 40 and all("The answer is" in r["targets"] for r in fs)
    capsys.readouterr()
    # Naming a BBH source explicitly is refused, with its name, unless allowed by name.
    refused = write_config(tmp_path, base + "  - {task: bigbench.date_understanding, formats: [zs_opt]}\n", "r.yaml")
    assert main(["mix", str(refused), "--out", str(tmp_path / "r"), *args]) == 2
    err = capsys.readouterr().err
    assert "'bigbench.date_understanding' (heldout:bbh)" in err and "allow_heldout" in err
    allowed = write_config(tmp_path, "name: ok\nmembers:\n  - {task: bigbench.date_understanding, formats: [zs_opt]}\n"
                           "allow_heldout: [bigbench.date_understanding]\n", "ok.yaml")
    assert main(["mix", str(allowed), "--out", str(tmp_path / "ok"), *args]) == 0
