"""End to end through the real CLI: eval on a tiny random Llama over every benchmark and
strategy, the dry run, resuming, and score on a predictions file."""

from __future__ import annotations

import json

import pytest

from flanlab.cli import main

ALL = "mmlu,bbh,tydiqa,mgsm,mgsm_en,gsm8k"
STRATEGIES = "direct,direct_gen,cot,zs_cot,self_consistency"


def _read(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def test_dry_run_writes_every_request_without_a_model(tiny_data, tmp_path):
    rc = main(["eval", "--model", "no/such-model", "--data-dir", str(tiny_data), "--benchmarks", ALL,
               "--strategies", STRATEGIES, "--dry-run", "--runs-dir", str(tmp_path), "--run-name", "dry"])
    assert rc == 0
    rows = _read(tmp_path / "dry" / "requests.jsonl")
    # mmlu 2 + bbh 2 + gsm8k 2 + mgsm (en 2 + de 1) * 2 variants = 12 examples x 5 strategies;
    # tydiqa finnish + indonesian, 1 each (the first is the exemplar) x 2 direct strategies.
    assert len(rows) == 12 * 5 + 4
    ll = [r for r in rows if r["benchmark"] == "mmlu" and r["strategy"] == "direct"]
    assert ll[0]["kind"] == "loglikelihood" and ll[0]["continuations"] == [" A", " B", " C", " D"]
    assert ll[0]["context"].endswith("Which planet is largest?\nA. Mars\nB. Jupiter\nC. Venus\nD. Earth\nAnswer:")
    gen = next(r for r in rows if r["benchmark"] == "bbh" and r["strategy"] == "cot")
    assert gen["prompt"].endswith("Q: Is 4 even?\nA: Let's think step by step.") and gen["stop"]
    sc = next(r for r in rows if r["strategy"] == "self_consistency")
    assert sc["n"] == 16 and sc["temperature"] == 0.7
    assert {"benchmark", "subtask", "index", "strategy"} <= set(gen)
    results = json.loads((tmp_path / "dry" / "results.json").read_text())
    assert results["requests"] == len(rows)


@pytest.mark.slow
def test_eval_every_benchmark_and_strategy_then_resume(tiny_llama_dir, tiny_data, tmp_path, capsys):
    args = ["eval", "--model", str(tiny_llama_dir), "--data-dir", str(tiny_data), "--benchmarks", ALL,
            "--strategies", STRATEGIES, "--limit", "1", "--samples", "2", "--max-new-tokens", "4",
            "--runs-dir", str(tmp_path), "--run-name", "e2e", "--seed", "0"]
    assert main(args) == 0
    run = tmp_path / "e2e"
    records = _read(run / "examples.jsonl")
    # limit 1: mmlu, bbh, gsm8k 1 each, mgsm and mgsm_en 2 languages each = 7 x 5 strategies, tydiqa 2 x 2.
    assert len(records) == 7 * 5 + 4
    for r in records:
        assert {"benchmark", "subtask", "index", "strategy", "outputs", "answer", "target", "correct"} <= set(r)
    sc = [r for r in records if r["strategy"] == "self_consistency"]
    assert all(len(r["outputs"]) == 2 and len(r["answers"]) == 2 for r in sc)
    mmlu = next(r for r in records if r["benchmark"] == "mmlu" and r["strategy"] == "direct")
    assert len(mmlu["logprobs"]) == 4 and mmlu["answer"] in "ABCD"
    assert mmlu["correct"] == float(mmlu["answer"] == "B")
    results = json.loads((run / "results.json").read_text())
    assert set(results["scores"]) == {"mmlu", "bbh", "tydiqa", "mgsm", "mgsm_en", "gsm8k"}
    assert set(results["scores"]["bbh"]) == {"direct", "direct_gen", "cot", "zs_cot", "self_consistency"}
    assert results["scores"]["tydiqa"]["direct"]["n"] == 2 and "f1" in results["scores"]["tydiqa"]["direct"]
    assert results["scores"]["mmlu"]["direct"]["categories"].keys() == {"STEM"}
    assert results["normalized_average"]["columns_present"] == 6
    assert results["sent"] == 39
    md = (run / "results.md").read_text()
    assert "| Flan-T5-XL | 3B | 52.4 |" in md and "## This run on the paper's columns" in md
    assert results["scores"]["gsm8k"]["self_consistency"]["samples"] == 2 and "| maj@2" in md
    assert "## The paper's rows (for scale, not a like-for-like comparison)" in capsys.readouterr().out
    assert "Normalized average (the paper's six columns" in md  # all 6 columns present
    assert results["scores"]["mmlu"]["direct"]["chance"] == 25.0 and results["scores"]["gsm8k"]["cot"]["chance"] == 0.0

    # Rerunning the same command resumes: nothing is sent again, the results are the same.
    assert main(args) == 0
    again = json.loads((run / "results.json").read_text())
    assert again["sent"] == 0 and again["scores"] == results["scores"]


def test_score_predictions_file(tiny_data, tmp_path):
    preds = tmp_path / "preds.jsonl"
    rows = [
        {"subtask": "main", "index": 0, "output": " Tom has 3 + 2 = 5 apples. The answer is 5.\n\nQ: junk 7"},
        {"subtask": "main", "index": 1, "output": " The answer is $1,400."},
    ]
    preds.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    rc = main(["score", "--benchmark", "gsm8k", "--strategy", "cot", "--predictions", str(preds),
               "--data-dir", str(tiny_data), "--runs-dir", str(tmp_path), "--run-name", "scored"])
    assert rc == 0
    out = _read(tmp_path / "scored" / "examples.jsonl")
    assert [r["answer"] for r in out] == ["5", "1400"] and [r["correct"] for r in out] == [1.0, 0.0]
    assert out[0]["outputs"] == [" Tom has 3 + 2 = 5 apples. The answer is 5."]  # cut at "\n\nQ:"
    assert out[0]["prompt"].endswith("Q: Tom has 3 apples and buys 2. How many?\nA:")
    results = json.loads((tmp_path / "scored" / "results.json").read_text())
    assert results["scores"]["gsm8k"]["cot"]["score"] == 50.0
    assert "| gsm8k | cot | 50.0 | [9.4, 90.5] | 2 | 0.0 | wilson |" in (tmp_path / "scored" / "results.md").read_text()
    assert results["scores"]["gsm8k"]["cot"]["ci95"] == [9.45, 90.55]


def test_score_bbh_and_self_consistency_lists(tiny_data, tmp_path):
    preds = tmp_path / "bbh.jsonl"
    rows = [
        {"subtask": "yes_no", "index": 0, "output": ["So the answer is yes.", "So the answer is no.",
                                                   "So the answer is yes."]},
        {"subtask": "yes_no", "index": 1, "output": ["So the answer is B.", "So the answer is (A).",
                                                   "no idea", "So the answer is (B)."]},
    ]
    preds.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    rc = main(["score", "--benchmark", "bbh", "--strategy", "self_consistency", "--predictions", str(preds),
               "--data-dir", str(tiny_data), "--runs-dir", str(tmp_path), "--run-name", "sc"])
    assert rc == 0
    out = _read(tmp_path / "sc" / "examples.jsonl")
    assert [r["answer"] for r in out] == ["yes", "B"] and [r["correct"] for r in out] == [1.0, 1.0]
    agg = json.loads((tmp_path / "sc" / "results.json").read_text())["scores"]["bbh"]["self_consistency"]
    # Chance: item 0 is a yes/no label task (2 distinct targets), item 1 lists 2 options.
    assert agg["chance"] == 50.0 and agg["ci_method"] == "wilson"
    assert agg["ci95"] == [34.24, 100.0]  # Wilson 2/2
    assert agg["subtask_stats"] == {"yes_no": {"ci95": [34.24, 100.0], "n": 2, "ci_method": "wilson", "chance": 50.0}}


def test_score_bad_predictions_name_the_line(tiny_data, tmp_path, capsys):
    preds = tmp_path / "bad.jsonl"
    preds.write_text('{"subtask": "main", "index": 0, "output": "5"}\n{"subtask": "main"}\n', encoding="utf-8")
    rc = main(["score", "--benchmark", "gsm8k", "--strategy", "cot", "--predictions", str(preds),
               "--data-dir", str(tiny_data), "--runs-dir", str(tmp_path)])
    assert rc == 2
    assert "bad.jsonl:2: missing index, output" in capsys.readouterr().err


def test_unknown_strategy_and_benchmark_are_user_errors(tiny_data, tmp_path, capsys):
    base = ["eval", "--model", "m", "--data-dir", str(tiny_data), "--dry-run", "--runs-dir", str(tmp_path)]
    assert main([*base, "--strategies", "cott"]) == 2
    assert "unknown strategy 'cott'; did you mean 'cot'" in capsys.readouterr().err
    assert main([*base, "--benchmarks", "mmlux"]) == 2
    assert "unknown benchmark 'mmlux'" in capsys.readouterr().err


def test_reusing_a_run_folder_for_another_model_is_refused(tiny_data, tmp_path, capsys):
    base = ["eval", "--data-dir", str(tiny_data), "--benchmarks", "gsm8k", "--dry-run",
            "--runs-dir", str(tmp_path), "--run-name", "r"]
    assert main([*base, "--model", "model-a"]) == 0
    assert main([*base, "--model", "model-b"]) == 2
    assert "model.name: 'model-a' -> 'model-b'" in capsys.readouterr().err


def test_dry_run_counts_tokens(tiny_llama_dir, tiny_data, tmp_path):
    rc = main(["eval", "--model", "m", "--data-dir", str(tiny_data), "--benchmarks", "gsm8k", "--strategies",
               "zs_cot", "--dry-run", "--tokenizer", str(tiny_llama_dir), "--runs-dir", str(tmp_path),
               "--run-name", "tok"])
    assert rc == 0
    rows = _read(tmp_path / "tok" / "requests.jsonl")
    assert len(rows) == 2 and all(r["tokens"] > 10 for r in rows)
    results = json.loads((tmp_path / "tok" / "results.json").read_text())
    assert results["prompt_tokens"] == {"gsm8k/zs_cot": sum(r["tokens"] for r in rows)}
