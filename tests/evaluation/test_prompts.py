"""Every benchmark's prompt construction against hand-checked strings (and the real BBH files)."""

from __future__ import annotations

import json

import pytest

from flanlab.evaluation.benchmarks import DataError, get_benchmark, parse_bbh_prompt
from flanlab.evaluation.specs import load_strategies

S = load_strategies()


def test_mmlu_direct_is_the_hendrycks_prompt(tiny_data):
    b = get_benchmark("mmlu", tiny_data)
    ex = b.examples("astronomy")[0]
    p = b.prompt(ex, S["direct"])
    assert p.text == (
        "The following are multiple choice questions (with answers) about astronomy.\n\n"
        "What is the Sun?\nA. A star\nB. A planet\nC. A moon\nD. A comet\nAnswer: A\n\n"
        "Is Mars red, or blue?\nA. Red\nB. Blue\nC. Green\nD. White\nAnswer: A\n\n"
        "Which planet is largest?\nA. Mars\nB. Jupiter\nC. Venus\nD. Earth\nAnswer:"
    )
    assert p.continuations == (" A", " B", " C", " D")
    assert ex.target == "B"
    assert b.prompt(ex, S["direct_gen"]).continuations == ()  # generated, then filtered


def test_mmlu_cot_uses_the_flan_exemplars(tiny_data):
    b = get_benchmark("mmlu", tiny_data)
    ex = b.examples("astronomy")[1]
    assert b.prompt(ex, S["cot"]).text.endswith(
        "The answer is (A).\n\nQ: How many moons has Earth?\n(A) 0 (B) 1 (C) 2 (D) 3\nA: Let's think step by step.")
    zs = b.prompt(ex, S["zs_cot"]).text
    assert zs == ("The following are multiple choice questions (with answers) about astronomy.\n\n"
                  "Q: How many moons has Earth?\n(A) 0 (B) 1 (C) 2 (D) 3\nA: Let's think step by step.")


def test_mmlu_real_data_shape(shared_data):
    b = get_benchmark("mmlu", shared_data)
    assert len(b.subtasks()) == 57
    assert sum(len(b.examples(s)) for s in b.subtasks()) == 14042
    text = b.prompt(b.examples("abstract_algebra")[0], S["direct"]).text
    assert text.count("\nAnswer:") == 6 and text.endswith("D. 6\nAnswer:")


def test_bbh_prompts_from_prompt_file(tiny_data):
    b = get_benchmark("bbh", tiny_data)
    first, second = b.examples("yes_no")
    assert b.prompt(first, S["cot"]).text == (
        "Answer yes or no.\n\n"
        "Q: Is 2 even?\nA: Let's think step by step.\n2 divided by 2 is 1. So the answer is yes.\n\n"
        "Q: Is 3 even?\nOptions:\n(A) yes\n(B) no\nA: Let's think step by step. 3 is odd.\nSo the answer is (B).\n\n"
        "Q: Is 4 even?\nA: Let's think step by step.")
    assert b.prompt(second, S["direct"]).text == (
        "Answer yes or no.\n\nQ: Is 2 even?\nA: yes\n\nQ: Is 3 even?\nOptions:\n(A) yes\n(B) no\nA: (B)\n\n"
        "Q: Is 5 even?\nOptions:\n(A) yes\n(B) no\nA:")
    assert b.prompt(first, S["zs_cot"]).text == "Answer yes or no.\n\nQ: Is 4 even?\nA: Let's think step by step."


def test_bbh_real_prompt_files_byte_for_byte(shared_data):
    """For all 27 subtasks, the CoT prompt is the official file after '-----' plus the query."""
    b = get_benchmark("bbh", shared_data)
    assert len(b.subtasks()) == 27
    for sub in b.subtasks():
        official = (shared_data / "bbh/cot-prompts" / f"{sub}.txt").read_text(encoding="utf-8")
        body = official.split("-----\n", 1)[1].rstrip("\n")
        ex = b.examples(sub)[0]
        assert b.prompt(ex, S["cot"]).text == body + f"\n\nQ: {ex.fields['input']}\nA: Let's think step by step."
        direct = b.prompt(ex, S["direct"]).text
        assert "Let's think step by step" not in direct
        assert direct.count("\nA: ") == 3 and direct.endswith(f"Q: {ex.fields['input']}\nA:")
    date = b.official_prompt("date_understanding")
    assert date.answers == ("(D)", "(B)", "(B)")
    assert b.official_prompt("sports_understanding").answers == ("yes", "no", "yes")
    assert b.official_prompt("word_sorting").answers[-1] == "arson aspect census mugho newt parthia seismography"


def test_bbh_bad_prompt_file_names_it():
    with pytest.raises(DataError, match="x.txt: expected a canary line"):
        parse_bbh_prompt("no separator here", "x.txt")


def test_gsm8k_prompts(tiny_data):
    b = get_benchmark("gsm8k", tiny_data)
    ex0, ex1 = b.examples("main")
    assert (ex0.target, ex1.target) == ("5", "1500")
    cot = b.prompt(ex0, S["cot"]).text
    assert cot.startswith(
        "Q: There are 15 trees in the grove. Grove workers will plant trees in the grove today. After they are "
        "done, there will be 21 trees. How many trees did the grove workers plant today?\nA: There are 15 trees "
        "originally. Then there were 21 trees after some more were planted. So there must have been 21 - 15 = 6. "
        "The answer is 6.\n\nQ: If there are 3 cars")
    assert cot.count("\n\nQ: ") == 8 and cot.endswith("\n\nQ: Tom has 3 apples and buys 2. How many?\nA:")
    assert "Q: Olivia has $23. She bought five bagels for $3 each. How much money does she have left?\n" \
           "A: The answer is 8.\n\n" in b.prompt(ex0, S["direct"]).text
    assert b.prompt(ex0, S["zs_cot"]).text == "Q: Tom has 3 apples and buys 2. How many?\nA: Let's think step by step."


def test_mgsm_native_and_english_exemplars(tiny_data):
    native = get_benchmark("mgsm", tiny_data)
    ex = native.examples("de")[0]
    assert native.prompt(ex, S["cot"]).text == (
        "Frage: Roger hat 5 Bälle und kauft 6. Wie viele?\n"
        "Schritt-für-Schritt-Antwort: 5 + 6 = 11. Die Antwort lautet 11.\n\n"
        "Frage: 3 Autos und 2 weitere kommen. Wie viele?\n"
        "Schritt-für-Schritt-Antwort: 3 + 2 = 5. Die Antwort lautet 5.\n\n"
        "Frage: Anna hat 2 Stifte und bekommt 2. Wie viele?\nSchritt-für-Schritt-Antwort:")
    english = get_benchmark("mgsm_en", tiny_data)
    assert english.prompt(ex, S["cot"]).text == (
        "Question: Roger has 5 balls and buys 6. How many?\nStep-by-Step Answer: 5 + 6 = 11. The answer is 11.\n\n"
        "Question: 3 cars and 2 more arrive. How many?\nStep-by-Step Answer: 3 + 2 = 5. The answer is 5.\n\n"
        "Question: Anna hat 2 Stifte und bekommt 2. Wie viele?\nStep-by-Step Answer:")
    assert native.prompt(ex, S["direct"]).text.startswith(
        "Frage: Roger hat 5 Bälle und kauft 6. Wie viele?\nSchritt-für-Schritt-Antwort: 11\n\n")
    assert ex.target == "4"


def test_mgsm_real_exemplars(shared_data):
    b = get_benchmark("mgsm", shared_data)
    assert b.subtasks() == ["bn", "de", "en", "es", "fr", "ja", "ru", "sw", "te", "th", "zh"]
    ex = b.examples("zh")[0]
    text = b.prompt(ex, S["cot"]).text
    assert text.startswith("问题：罗杰有 5 个网球。") and text.endswith(ex.fields["question"] + "\n逐步解答：")
    assert text.count("\n\n") == 8


def test_tydiqa_one_shot_and_exemplar_left_out(tiny_data):
    b = get_benchmark("tydiqa", tiny_data)
    assert b.data.spec.default_subtasks == ["arabic", "bengali", "finnish", "indonesian", "korean", "russian",
                                       "swahili", "telugu"]
    assert b.default_subtasks() == ["finnish", "indonesian"]  # those of the 8 in this small file
    (ex,) = b.examples("finnish")  # finnish-1 is the exemplar (no train file), so it is not scored
    assert ex.index == 1 and ex.golds == ("Helsinki",)
    assert b.prompt(ex, S["direct"]).text == (
        "Helsinki on Suomen pääkaupunki ja suurin kaupunki.\n\nQ: Mikä on Suomen pääkaupunki?\n\nA: Helsinki\n\n"
        "Helsinki on Suomen pääkaupunki ja suurin kaupunki.\n\nQ: Mikä on Suomen suurin kaupunki?\n\nA:")
    (en,) = b.examples("english")
    assert en.golds == ("France", "the French Republic")
    assert not b.supports("cot")


def test_tydiqa_train_file_gives_the_exemplar(tiny_data):
    train = {"data": [{"title": "t", "paragraphs": [{"context": "Oulu on kaupunki.", "qas": [
        {"id": "finnish-9", "question": "Mikä Oulu on?", "answers": [{"text": "kaupunki", "answer_start": 8}]}]}]}]}
    (tiny_data / "tydiqa/tydiqa-goldp-v1.1-train.json").write_text(json.dumps(train), encoding="utf-8")
    b = get_benchmark("tydiqa", tiny_data)
    exs = b.examples("finnish")
    assert [e.index for e in exs] == [0, 1]
    assert b.prompt(exs[0], S["direct"]).text.startswith("Oulu on kaupunki.\n\nQ: Mikä Oulu on?\n\nA: kaupunki\n\n")


def test_missing_local_file_is_named(tmp_path):
    b = get_benchmark("gsm8k", tmp_path)
    with pytest.raises(DataError, match=r"gsm8k/test.jsonl not found"):
        b.examples("main")


def test_malformed_mmlu_row_names_file_and_line(tiny_data):
    (tiny_data / "mmlu/test/astronomy_test.csv").write_text("q,a,b,c,d,B\nbad,row\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"astronomy_test.csv:2: expected 6 columns"):
        get_benchmark("mmlu", tiny_data).examples("astronomy")


def test_a_style_and_strategy_defined_only_in_yaml_make_requests(tiny_data, tmp_path):
    """A new prompt style is a YAML entry of the benchmark file and a new strategy a YAML entry of
    the strategies file: no Python changes, and the request carries the style's stop and budget."""
    import yaml

    from flanlab.evaluation.plan import request_for
    from flanlab.evaluation.specs import DATA, load_benchmark_spec

    spec = yaml.safe_load((DATA / "benchmarks" / "gsm8k.yaml").read_text(encoding="utf-8"))
    spec["templates"]["terse_exemplar"] = "{{ question }} => {{ answer }}"
    spec["templates"]["terse_query"] = "{{ question }} =>"
    spec["styles"]["terse"] = {"exemplars": "file:gsm8k_exemplars.yaml", "exemplar": "terse_exemplar", "query": "terse_query",
                               "joiner": "\n", "filter": "last_number", "stop": ["\n"], "max_new_tokens": 7}
    folder = tmp_path / "benchmarks"
    folder.mkdir()
    (folder / "gsm8k.yaml").write_text(yaml.safe_dump(spec, allow_unicode=True), encoding="utf-8")
    (tmp_path / "strategies.yaml").write_text(
        "terse_2:\n  style: terse\n  exemplars: true\n  mode: generate\n  samples: 2\n  temperature: 0.5\n"
        "  vote: majority\n", encoding="utf-8")
    strategy = load_strategies(tmp_path / "strategies.yaml", folder)["terse_2"]
    bench = get_benchmark("gsm8k", tiny_data, spec=load_benchmark_spec("gsm8k", folder))
    req = request_for(bench, bench.examples("main")[0], strategy)
    lines = req.prompt.split("\n")
    assert len(lines) == 9 and lines[0].endswith("=> 6") and " => " in lines[7]
    assert lines[-1] == "Tom has 3 apples and buys 2. How many? =>"
    assert (req.kind, req.stop, req.max_new_tokens, req.n, req.temperature) == ("generate", ("\n",), 7, 2, 0.5)
    assert bench.extract("12 => 5", "terse") == "5"
    # The shipped styles still render as before, from the same file.
    assert request_for(bench, bench.examples("main")[0], S["cot"]).prompt == \
        request_for(get_benchmark("gsm8k", tiny_data), bench.examples("main")[0], S["cot"]).prompt


def test_a_style_naming_a_missing_template_or_source_is_refused(tmp_path, tiny_data):
    import yaml

    from flanlab.evaluation.specs import DATA, SpecError, load_benchmark_spec

    spec = yaml.safe_load((DATA / "benchmarks" / "gsm8k.yaml").read_text(encoding="utf-8"))
    spec["styles"]["bad"] = {"query": "nope", "filter": "last_number"}
    (tmp_path / "gsm8k.yaml").write_text(yaml.safe_dump(spec), encoding="utf-8")
    with pytest.raises(SpecError, match=r"gsm8k.yaml: key styles.bad.query: no template 'nope'"):
        load_benchmark_spec("gsm8k", tmp_path)
    spec["styles"]["bad"] = {"query": "query", "exemplars": "elsewhere", "exemplar": "cot_exemplar",
                             "filter": "last_number"}
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "gsm8k.yaml").write_text(yaml.safe_dump(spec), encoding="utf-8")
    with pytest.raises(DataError, match=r"styles.bad.exemplars: unknown exemplar source 'elsewhere'.*file:NAME"):
        get_benchmark("gsm8k", tiny_data, spec=load_benchmark_spec("gsm8k", tmp_path / "x"))
