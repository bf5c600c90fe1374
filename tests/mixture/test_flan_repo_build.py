"""A mixture built with a FLAN checkout: flan/v2's templates, the token budgets, and the share of
input inversions flan/v2's own template lists give. Reads the real ../shared/reference/FLAN."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from flanlab.core.config import load_config
from flanlab.mixture.build import build_mixture
from flanlab.mixture.config import MixtureConfig
from flanlab.mixture.shards import iter_mixture

FLAN = Path(__file__).resolve().parents[3] / "shared" / "reference" / "FLAN"
pytestmark = pytest.mark.skipif(not (FLAN / "flan" / "v2" / "templates.py").is_file(),
                                reason=f"no google-research/FLAN checkout at {FLAN}")


def _data(root: Path) -> Path:
    """Local Muffin rows (the hub's schema) for rte and WMT16 de-en; a few rte premises are far over
    the 2,048-token input budget."""
    rng = random.Random(0)
    words = ["alpha", "beta", "gamma", "delta", "river", "hill", "stone", "cloud"]

    def text(n: int) -> str:
        return " ".join(rng.choice(words) for _ in range(n))

    for name, rows in {
        "rte": [{"sentence1": text(3000 if i % 25 == 0 else rng.randint(5, 60)), "sentence2": text(8),
                 "label": i % 2, "idx": i} for i in range(150)],
        "wmt16_translate_deen": [{"translation": {"de": f"satz {i} " + text(10), "en": f"sentence {i} " + text(10)}}
                                 for i in range(150)],
    }.items():
        folder = root / "muffin" / name
        folder.mkdir(parents=True)
        (folder / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return root


def _config(tmp_path: Path, tokenizer: Path, examples: int) -> MixtureConfig:
    cfg = tmp_path / "mix.yaml"
    cfg.write_text(f"""# flanlab mix mix.yaml --out OUT
kind: mixture
name: flan-fidelity
seed: 3
examples: {examples}
tokenizer: {tokenizer}
flan_repo: {FLAN}
formats: [zs_opt, zs_noopt, fs_opt, fs_noopt]
members:
  - {{task: muffin/rte}}
  - {{task: muffin/wmt16_translate_deen}}
""")
    return load_config(cfg, [], schema=MixtureConfig)


def _expected_inverted(flan, fmt: str) -> float:
    """The share of inversions flan/v2's lists give a format: templates drawn uniformly; few-shot
    with options mixes template-mix (its in_template_mix templates) and x-shot (all) by their
    T_NAME_TO_NUM_CASES weights."""
    from dataclasses import replace

    inv = replace(flan, inverted=True)
    if fmt == "zs_opt":
        return len(inv.zero_shot()) / len(flan.zero_shot())
    if fmt == "zs_noopt":
        return len(inv.no_options()) / len(flan.no_options())
    every, inverted = flan.few_shot(fmt == "fs_opt"), {i for i, _ in inv.few_shot(fmt == "fs_opt")}
    x_share = sum(i in inverted for i, _ in every) / len(every)
    if fmt == "fs_noopt":
        return x_share
    mix = [i for i, p in every if p.in_template_mix]
    cases = flan.repo.num_cases.get(flan.t_name, {})
    w_mix, w_x = cases.get("five_shot", 1), cases.get("x_shot", 1)
    return (w_mix * sum(i in inverted for i in mix) / len(mix) + w_x * x_share) / (w_mix + w_x)


@pytest.mark.slow
def test_built_mixture_respects_the_budget_and_flan_v2_inversion_share(tmp_path, tiny_llama_dir):
    from transformers import AutoTokenizer

    from flanlab.tasks.catalog import build_catalog

    data = _data(tmp_path / "data")
    config = _config(tmp_path, tiny_llama_dir, 2400)
    result = build_mixture(config, tmp_path / "out", config_path=tmp_path / "mix.yaml", data_dir=data)
    manifest = result.manifest
    assert manifest["templates"] == f"flan/v2 from {FLAN.resolve()}"
    assert manifest["budgets"] == "flan (tokenizer)"
    tok = AutoTokenizer.from_pretrained(str(tiny_llama_dir))
    rows = list(iter_mixture(tmp_path / "out"))
    assert len(rows) == 2400
    lengths = [len(tok(r["inputs"], add_special_tokens=False)["input_ids"]) for r in rows]
    assert max(lengths) <= 2048 and max(len(tok(r["targets"], add_special_tokens=False)["input_ids"])
                                        for r in rows) <= 512
    assert sorted(lengths)[-1] > 1000  # the long premises were there, and were cut to the budget
    assert all(r["template_id"].startswith(("flan:rte:", "flan:wmt16_translate:")) for r in rows)
    # The inverted share equals the one flan/v2's template lists give, stream by stream.
    reg = build_catalog(data, bigbench=False, flan_repo=FLAN)
    want_num = 0.0
    inverted_ids = {}
    for name in ("muffin/rte", "muffin/wmt16_translate_deen"):
        flan = reg.get(name).family.flan
        inverted_ids[name] = {t.id for t in reg.get(name + ":inverted").family.templates}
        for fmt, n in manifest["tasks"][name]["formats"].items():
            want_num += n * _expected_inverted(flan, fmt)
    got = sum(r["template_id"] in inverted_ids[r["task"]] for r in rows) / len(rows)
    want = want_num / len(rows)
    assert abs(got - want) < 0.02, (got, want)
    assert "muffin/rte:inverted" not in manifest["tasks"]  # the view is never mixed twice


def test_dry_run_counts_tasks_and_variants_apart_and_says_where_data_is(tmp_path, capsys):
    from flanlab.cli import main

    data = _data(tmp_path / "data")
    cfg = tmp_path / "dry.yaml"
    cfg.write_text("# flanlab mix dry.yaml --dry-run\nkind: mixture\nname: dry\nmembers:\n"
                   "  - {task: 'muffin/*'}\n  - {task: 'cot_*'}\n")
    assert main(["mix", str(cfg), "--dry-run", "--top", "0", "--data-dir", str(data)]) == 0
    ours = capsys.readouterr().out
    # 52 hub-mapped Muffin datasets, qrecc (the one dialog on the hub) and the 9 CoT tasks; their
    # :inverted variants are counted apart.
    assert "(62 tasks + 53 variants; templates: flanlab" in ours
    assert main(["mix", str(cfg), "--dry-run", "--top", "0", "--data-dir", str(data), "--flan-repo", str(FLAN)]) == 0
    out = capsys.readouterr().out
    header = next(line for line in out.splitlines() if line.startswith("# dry"))
    assert "templates: flan/v2 from" in header
    rows = {line.split("|")[1].strip(): line for line in out.splitlines() if line.startswith("| muffin/")
            or line.startswith("| cot_")}
    assert "muffin/rte:inverted" not in rows  # a view of muffin/rte's own inversions: not mixed twice
    assert "| local |" in rows["muffin/rte"] and "| hub |" in rows["muffin/cb"]
    assert "cot_ii" in rows["cot_gsm8k:inverted"]


@pytest.mark.slow
def test_few_shot_examples_flan_v2_drops_are_replaced_with_the_same_bytes_for_any_worker_count(
        tmp_path, tiny_llama_dir):
    """A few-shot rte example whose premise alone is over the 1,920-token exemplars-plus-query budget
    has no exemplar that fits: flan/v2 drops it. The build drops it too and draws a replacement, so
    the stream still fills its planned count, and 1 or 2 workers write the same shards."""
    data = _data(tmp_path / "data")
    long_starts = []
    for line in (data / "muffin" / "rte" / "train.jsonl").read_text().splitlines():
        words = json.loads(line)["sentence1"].split()
        if len(words) > 2000:
            long_starts.append(" ".join(words[:25]))
    assert long_starts
    cfg = tmp_path / "mix.yaml"
    cfg.write_text(f"""kind: mixture
name: drops
seed: 5
examples: 150
tokenizer: {tiny_llama_dir}
flan_repo: {FLAN}
formats: [fs_opt]
members:
  - {{task: muffin/rte}}
""")
    config = load_config(cfg, [], schema=MixtureConfig)
    shards = []
    for workers in (1, 2):
        out = tmp_path / f"out{workers}"
        manifest = build_mixture(config, out, config_path=cfg, data_dir=data, workers=workers).manifest
        rows = list(iter_mixture(out))
        assert len(rows) == 150 == manifest["tasks"]["muffin/rte"]["examples"]
        assert manifest["tasks"]["muffin/rte"]["dropped_unfit"] >= 1
        assert not [r for r in rows if any(s in r["inputs"] for s in long_starts)]
        shards.append([s["sha256"] for s in manifest["shards"]])
    assert shards[0] == shards[1]
