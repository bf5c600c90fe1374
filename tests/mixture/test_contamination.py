import json

import pytest

from flanlab.cli import main
from flanlab.mixture.contamination import EvalIndex, EvalText, ngrams, normalize_tokens, read_eval_sets
from tests.mixture.helpers import write_config, write_task

GSM = ("Janet's ducks lay 16 eggs per day. She eats three for breakfast every morning and bakes muffins "
       "for her friends every day with four.")
MGSM_ZH = ("珍妮特的鸭子每天下 16 颗蛋。她每天早上早餐时吃 3 颗，每天用 4 颗为自己的朋友做松饼。"
           "剩下的鸭蛋她每天拿去农贸市场卖，每颗新鲜鸭蛋卖 2 美元。")
TYDI_CONTEXT = ("The Nile is a major north-flowing river in northeastern Africa and flows into the Mediterranean "
                "Sea after a long journey through many countries.")


def eval_dir(root):
    (root / "mmlu" / "test").mkdir(parents=True)
    (root / "mmlu" / "test" / "astronomy_test.csv").write_text(
        '"Which planet of the solar system has the largest number of known moons as of the year 2023, '
        'according to NASA?",Earth,Mars,Saturn,Venus,C\n', encoding="utf-8")
    (root / "bbh" / "tasks").mkdir(parents=True)
    (root / "bbh" / "tasks" / "snarks.json").write_text(json.dumps({"examples": [
        {"input": "Which statement is sarcastic? Options: (A) I love waiting in line at the bank for hours "
                  "on a sunny day (B) I hate waiting", "target": "(A)"}]}), encoding="utf-8")
    (root / "gsm8k").mkdir()
    (root / "gsm8k" / "test.jsonl").write_text(json.dumps({"question": GSM, "answer": "#### 18"}) + "\n")
    (root / "mgsm").mkdir()
    (root / "mgsm" / "mgsm_zh.tsv").write_text(f"{MGSM_ZH}\t18\n", encoding="utf-8")
    (root / "tydiqa").mkdir()
    # The official TyDiQA-GoldP dev file name; a question's language is its id's prefix.
    (root / "tydiqa" / "tydiqa-goldp-v1.1-dev.json").write_text(json.dumps({"data": [{"paragraphs": [{
        "context": TYDI_CONTEXT, "qas": [{"id": "english-1", "question": "Where does the Nile flow?",
                                          "answers": [{"text": "the Mediterranean Sea", "answer_start": 85}]}]}]}]}))
    return root


def test_normalization_and_readers(tmp_path):
    assert normalize_tokens("Hello, WORLD!  It's 2023.") == ["hello", "world", "it", "s", "2023"]
    assert normalize_tokens("鸭子每天")[:2] == ["鸭", "子"]
    # Scripts without spaces are matched on 3 × 13 characters: a 13-character phrase is not enough.
    short = EvalIndex([EvalText("mgsm", "zh:1", MGSM_ZH)], n=13)
    assert (short.lookup(ngrams("问：" + MGSM_ZH[:30], 13)[0]) < 0).all()
    assert (short.lookup(ngrams("问：" + MGSM_ZH, 13)[0]) >= 0).any()
    texts = list(read_eval_sets(eval_dir(tmp_path)))
    assert {t.benchmark for t in texts} == {"mmlu", "bbh", "gsm8k", "mgsm", "tydiqa"}
    index = EvalIndex([*texts, EvalText("mmlu", "short", "too short")], n=13)
    assert index.too_short == {"mmlu": 1} and index.sizes["mmlu"] == 2


def test_finds_planted_overlaps_and_none_on_a_clean_mixture(tmp_path, capsys):
    data = eval_dir(tmp_path / "data")
    write_task(tmp_path / "clean.jsonl", "clean", 300)
    with open(tmp_path / "leaky.jsonl", "w", encoding="utf-8") as f:
        # Case and punctuation differ from the evaluation text: normalization still matches.
        f.write(json.dumps({"inputs": "Q: " + GSM.upper().replace(".", " ;"), "targets": "18"}) + "\n")
        f.write(json.dumps({"inputs": "Read: " + TYDI_CONTEXT, "targets": "the sea"}) + "\n")
        f.write(json.dumps({"inputs": "问题：" + MGSM_ZH, "targets": "18"}) + "\n")
        f.write(json.dumps({"inputs": "an unrelated question about cats", "targets": "no"}) + "\n")
    clean_cfg = write_config(tmp_path, "name: clean\nmembers:\n  - {file: clean.jsonl, submixture: cot}\n",
                             "clean.yaml")
    leaky_cfg = write_config(tmp_path, "name: leaky\nrule: fixed\nsubmixture_rates: proportional\nmembers:\n"
                             "  - {file: clean.jsonl, submixture: cot}\n  - {file: leaky.jsonl, submixture: cot}\n",
                             "leaky.yaml")
    assert main(["mix", str(clean_cfg), "--out", str(tmp_path / "clean")]) == 0
    assert main(["mix", str(leaky_cfg), "--out", str(tmp_path / "leaky")]) == 0
    capsys.readouterr()

    args = ["--data-dir", str(data), "--fail-on-overlap"]
    assert main(["mix", "check-contamination", str(tmp_path / "clean"), *args]) == 0
    report = json.loads((tmp_path / "clean" / "contamination.json").read_text())
    assert report["overlaps"] == [] and report["scanned"] == 300
    assert report["eval_sets"] == {"mmlu": 1, "bbh": 1, "gsm8k": 1, "mgsm": 1, "tydiqa": 1}
    assert "(none)" in capsys.readouterr().out

    assert main(["mix", "check-contamination", str(tmp_path / "leaky"), *args]) == 1
    report = json.loads((tmp_path / "leaky" / "contamination.json").read_text())
    found = {(o["task"], o["benchmark"]): o for o in report["overlaps"]}
    assert set(found) == {("leaky", "gsm8k"), ("leaky", "tydiqa"), ("leaky", "mgsm")}
    # Fixed equal weights: leaky's 4 rows fill half of 304 examples, so each planted row appears 38 times.
    assert all(o["examples"] == 38 and o["eval_examples"] == 1 for o in found.values())
    sample = found[("leaky", "gsm8k")]["samples"][0]
    assert sample["eval_id"] == "main:0" and len(sample["ngram"].split()) == 13
    assert sample["ngram"] in " ".join(normalize_tokens(GSM))
    assert "| leaky | gsm8k | 38 | 1 |" in (tmp_path / "leaky" / "contamination.md").read_text()


def test_incomplete_folder_is_refused(tmp_path, capsys):
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "shard-00000-of-00002.jsonl").write_text('{"inputs": "a", "targets": "b"}\n')
    assert main(["mix", "check-contamination", str(tmp_path / "half"), "--data-dir", str(tmp_path)]) == 2
    assert "no manifest.json" in capsys.readouterr().err


@pytest.mark.slow
def test_real_bbh_source_is_flagged(tmp_path, shared_data, capsys):
    from pathlib import Path

    if not (Path.home() / ".cache" / "flanlab" / "downloads" / "bigbench-1.0.0.tar.gz").is_file():
        pytest.skip("BIG-bench sdist not cached")
    cfg = write_config(tmp_path, """name: leak
examples: 300
allow_heldout: [bigbench.date_understanding]
members:
  - {task: bigbench.date_understanding, formats: [zs_opt]}
  - {task: cot_qasc, formats: [zs_cot]}
""")
    out = tmp_path / "out"
    assert main(["mix", str(cfg), "--out", str(out), "--data-dir", str(shared_data)]) == 0
    assert main(["mix", "check-contamination", str(out), "--data-dir", str(shared_data),
                 "--benchmarks", "bbh", "gsm8k"]) == 0
    report = json.loads((out / "contamination.json").read_text())
    found = {(o["task"], o["benchmark"]): o for o in report["overlaps"]}
    # BBH's date_understanding is drawn from BIG-bench's: most allowed examples are caught; the
    # CoT task (QASC) overlaps nothing.
    assert set(found) == {("bigbench.date_understanding", "bbh")}
    hit = found[("bigbench.date_understanding", "bbh")]
    assert hit["examples"] > 150 and all(s["eval_id"].startswith("date_understanding:") for s in hit["samples"])
