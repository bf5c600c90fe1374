"""Bad input, fuzzed with hypothesis: task files, benchmark files, templates, configs and model
outputs through every answer extractor. Always a clear error (a UserError naming the file) or a
scored "no answer" — never a crash, a hang or a silently wrong score."""

from __future__ import annotations

import json
import re
import string
from pathlib import Path

import pytest
from hypothesis import assume, event, example, given, settings
from hypothesis import strategies as st

from flanlab.core.config import ConfigError, load_config
from flanlab.core.errors import UserError
from flanlab.core.io import read_jsonl
from tests.conftest import hypothesis_examples

# How many examples, whether they are random, and the database come from the profile (tests/conftest.py):
# the same examples on every CI run, ten times as many fresh ones with HYPOTHESIS_PROFILE=explore.
FUZZ = settings()
HANG_GUARD = pytest.mark.timeout(120)  # a hang fails the test instead of stalling CI

# Text that looks like what breaks parsers: delimiters, quotes, escapes, braces, odd unicode.
NASTY = st.text(alphabet=st.sampled_from(list(',\t\n\r"\'\\{}[]:;#|-0123456789 abcAB') + ["é", "\u2028", "\x00", "😀"]),
                max_size=200)
ENCODINGS = st.sampled_from(["utf-8", "latin-1", "utf-16", "cp1252"])


def _bytes(text: str, encoding: str) -> bytes:
    return text.encode(encoding, errors="replace")


# ------------------------------------------------------------------------------- task files
def _family():
    from flanlab.tasks.template import parse_family

    return parse_family("family: qa\nfields: [question, answer]\ntemplates:\n"
                        "  - inputs: \"{{ question }}\"\n    targets: \"{{ answer }}\"\n", "qa.yaml")


def _check_task_file(path: Path, **kw) -> None:
    from flanlab.tasks.sources import FileSource
    from flanlab.tasks.task import Task, render

    task = Task("qa", FileSource({"train": path}, **kw), _family())
    try:
        rows = list(task.examples())
        rendered = list(render(task, "zs_noopt", limit=5))
    except UserError as e:
        assert str(path) in str(e), str(e)  # the error names the file
        return
    assert all(isinstance(r, dict) for r in rows)
    assert all(isinstance(r.inputs, str) and isinstance(r.targets, str) for r in rendered)


@HANG_GUARD
@FUZZ
@given(body=NASTY, suffix=st.sampled_from(["jsonl", "json", "csv", "tsv"]), encoding=ENCODINGS)
def test_task_files_with_garbage(tmp_path_factory, body, suffix, encoding):
    path = tmp_path_factory.mktemp("task") / f"train.{suffix}"
    path.write_bytes(_bytes(body, encoding))
    _check_task_file(path)


@HANG_GUARD
@FUZZ
@given(rows=st.lists(st.dictionaries(st.sampled_from(["question", "answer", "other"]),
                                     st.one_of(st.none(), st.integers(), st.floats(allow_nan=True), st.booleans(),
                                               NASTY, st.lists(st.integers(), max_size=3),
                                               st.dictionaries(st.text(max_size=3), st.integers(), max_size=2)),
                                     max_size=3), max_size=5),
       wrap=st.sampled_from(["jsonl", "json-list", "json-examples", "json-scalar"]))
# Found by explore: a \ud800 escape decodes to a lone surrogate, which crashed rendering (UTF-8 encode).
@example(rows=[{"question": "\ud800", "answer": "a"}], wrap="jsonl")
@example(rows=[{"question": "q", "answer": ["\udfff"]}], wrap="json-examples")
def test_task_files_with_wrong_types(tmp_path_factory, rows, wrap):
    folder = tmp_path_factory.mktemp("task")
    if wrap == "jsonl":
        path = folder / "train.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    else:
        path = folder / "train.json"
        data = {"json-list": rows, "json-examples": {"examples": rows}, "json-scalar": len(rows)}[wrap]
        path.write_text(json.dumps(data), encoding="utf-8")
    _check_task_file(path)


def test_task_files_empty_huge_and_headerless(tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_bytes(b"")
    _check_task_file(empty)
    huge = tmp_path / "huge.jsonl"
    huge.write_text(json.dumps({"question": "x" * 5_000_000, "answer": "y"}) + "\n", encoding="utf-8")
    _check_task_file(huge)
    tsv = tmp_path / "cot.tsv"
    tsv.write_bytes(b"q\ta\textra\tcolumns\nonly-one-field\n\xff\xfe broken\tx\n")
    _check_task_file(tsv, columns=["question", "answer"], unescape=True)


# ------------------------------------------------------------------------------- benchmark files
BENCH_FILES = {
    "mmlu": ("mmlu/test/astro_test.csv", "arithmetic"),
    "gsm8k": ("gsm8k/test.jsonl", "main"),
    "bbh": ("bbh/tasks/yes_no.json", "yes_no"),
    "mgsm": ("mgsm/mgsm_en.tsv", "en"),
    "tydiqa": ("tydiqa/tydiqa-goldp-v1.1-dev.json", "english"),
}


def _check_benchmark(root: Path, name: str, subtask: str) -> None:
    from flanlab.evaluation.benchmarks import get_benchmark

    bench = get_benchmark(name, root)
    try:
        subs = bench.subtasks()
        for sub in subs:
            for ex in bench.examples(sub):
                assert isinstance(ex.target, str)
    except UserError as e:
        assert str(root) in str(e) or name in str(e), str(e)


@HANG_GUARD
@FUZZ
@given(name=st.sampled_from(sorted(BENCH_FILES)), body=NASTY, encoding=ENCODINGS,
       json_rows=st.lists(st.dictionaries(st.sampled_from(["question", "answer", "input", "target", "data"]),
                                          st.one_of(st.none(), st.integers(), NASTY, st.lists(st.integers(), max_size=2)),
                                          max_size=3), max_size=3),
       as_json=st.booleans())
def test_benchmark_files_with_garbage(tmp_path_factory, name, body, encoding, json_rows, as_json):
    root = tmp_path_factory.mktemp("bench")
    rel, sub = BENCH_FILES[name]
    path = root / rel
    path.parent.mkdir(parents=True)
    if as_json and rel.endswith((".json", ".jsonl")):
        data = "\n".join(json.dumps(r) for r in json_rows) if rel.endswith("l") else json.dumps(
            {"examples": json_rows, "data": json_rows})
        path.write_text(data, encoding="utf-8")
    else:
        path.write_bytes(_bytes(body, encoding))
    _check_benchmark(root, name, sub)


# ------------------------------------------------------------------------------- templates
TEMPLATE_TOKENS = ["{{", "}}", "{%", "%}", "{#", "#}", "question", "answr", " if ", " for ", " in ", "endif",
                   "endfor", "|upper", "|attr('__class__')", ".__class__", "(", ")", "'", '"', "[", "]", " ",
                   "\n", "Q: ", "x", "0", "options_", "range(9)", "*", "**"]


@HANG_GUARD
@FUZZ
@given(parts=st.lists(st.sampled_from(TEMPLATE_TOKENS), max_size=20))
def test_templates_render_or_fail_clearly(parts):
    from flanlab.tasks.sandbox import placeholders, render

    text = "".join(parts)
    try:
        names = placeholders(text)
        out = render(text, {"question": "Why?", "options_": ""})
    except UserError:
        return
    assert isinstance(out, str) and names <= {"question", "options_", "range", "x"} | names


# ------------------------------------------------------------------------------- configs
def _config_files():
    from flanlab.evaluation.config import EvalConfig
    from flanlab.mixture.config import MixtureConfig
    from flanlab.training.config import TrainConfig

    return {"mixture": MixtureConfig, "train": TrainConfig, "eval": EvalConfig}


YAML_VALUES = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6), st.floats(allow_nan=False, width=32),
              st.text(string.ascii_letters + "_./-", max_size=12)),
    lambda inner: st.one_of(st.lists(inner, max_size=3),
                            st.dictionaries(st.sampled_from(["name", "lr", "steps", "model", "members", "seed",
                                                             "train", "optim", "data", "unknown_key", "batch_size"]),
                                            inner, max_size=4)),
    max_leaves=12,
)


@HANG_GUARD
@FUZZ
@given(kind=st.sampled_from(["mixture", "train", "eval"]),
       body=st.dictionaries(st.sampled_from(["name", "model", "members", "data", "optim", "train", "seed",
                                             "benchmarks", "strategies", "limit", "typo_key", "rule", "caps"]),
                            YAML_VALUES, max_size=6),
       raw=st.one_of(st.none(), NASTY))
def test_configs_with_unknown_keys_and_wrong_types(tmp_path_factory, kind, body, raw):
    import yaml

    schema = _config_files()[kind]
    path = tmp_path_factory.mktemp("cfg") / "c.yaml"
    text = f"# fuzz\nkind: {kind}\n" + (raw if raw is not None else yaml.safe_dump(body))
    path.write_text(text, encoding="utf-8")
    try:
        cfg = load_config(path, schema=schema)
    except ConfigError as e:
        assert str(path) in str(e), str(e)
        return
    assert cfg.kind == kind


def test_config_errors_name_key_line_and_expected_type(tmp_path):
    path = tmp_path / "train.yaml"
    path.write_text("# x\nkind: train\nname: t\nmodel: {name: m}\ndata: {mixture: d}\n"
                    "optim:\n  lr: fast\ntrain:\n  stepz: 3\n", encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(path, schema=_config_files()["train"])
    msg = str(info.value)
    assert f"{path}:7" in msg and "'optim.lr'" in msg and "float" in msg
    assert f"{path}:9" in msg and "unknown key 'train.stepz'" in msg and "did you mean 'steps'" in msg


# ------------------------------------------------------------------------------- answer extractors
def _benchmarks():
    from flanlab.evaluation.benchmarks import Example, get_benchmark

    # (benchmark, style, example) covering every filter the benchmark specs use.
    out = []
    for name, target in (("mmlu", "B"), ("bbh", "(B)"), ("gsm8k", "42"), ("mgsm", "42"), ("tydiqa", "Paris")):
        bench = get_benchmark(name, Path("/nonexistent"))
        for style in bench.spec.styles:
            out.append((bench, style, Example("s", 0, {}, target, (target,) if name == "tydiqa" else ())))
    return out


OUTPUTS = st.one_of(
    st.just(""), st.text(max_size=300), NASTY,
    st.lists(st.sampled_from(["The answer is", "(A)", "(B)", "B", "42", "-3.5", "1,000", "$", ".", "\n", " ",
                              "So the answer is", "answer", "is", "Q:", "A:", "yes", "no"]), max_size=40).map(" ".join),
)


@HANG_GUARD
@FUZZ
@given(output=OUTPUTS)
def test_every_extractor_scores_or_says_no_answer(output):
    from flanlab.evaluation.filters import load_filters

    for bench, style, ex in _benchmarks():
        answer = bench.extract(output, style)
        assert answer is None or (isinstance(answer, str) and answer.strip())
        scores = bench.score(answer, ex)
        assert set(scores.values()) <= {0.0, 1.0} or bench.spec.metric == "squad"
        assert all(0.0 <= v <= 1.0 for v in scores.values())
        if answer is None:
            assert scores["correct"] == 0.0  # "no answer" is never counted right
    assert load_filters()  # every filter is used by some style above
    used = {bench.spec.styles[s].filter for bench, s, _ in _benchmarks()}
    assert used <= set(load_filters())


@HANG_GUARD
@FUZZ
@given(noise=st.text(alphabet=st.sampled_from(list(" abcdefgh.,;\n")), max_size=200),
       n=st.integers(-10**6, 10**6), letter=st.sampled_from("ABCD"), decoys=st.integers(0, 30))
def test_last_stated_answer_wins_among_many_candidates(noise, n, letter, decoys):
    """Many candidate answers: the one the spec says (the last 'the answer is') is extracted, not a
    decoy — a wrong pick would be a silently wrong score."""
    from flanlab.evaluation.filters import apply_filter

    assume("answer is" not in noise.lower())
    wrong = (n + 1) if n != -1 else 5
    decoy = " ".join(f"the answer is {wrong}." for _ in range(decoys))
    assert apply_filter("answer_is_number", f"{decoy}{noise} The answer is {n}.") == str(n)
    other = "ABCD"[("ABCD".index(letter) + 1) % 4]
    decoy = " ".join(f"the answer is ({other})." for _ in range(decoys))
    assert apply_filter("mc_answer_is", f"{decoy}{noise} The answer is ({letter}).") == letter
    assert apply_filter("answer_is", f"{decoy}{noise} So the answer is ({letter}).") == letter


@HANG_GUARD
@pytest.mark.parametrize("output", [
    "x" * 2_000_000,
    "the answer is " * 200_000,
    "1," * 500_000,
    "(" * 1_000_000 + "A",
    "-" * 1_000_000 + "5",
    "\n" * 1_000_000,
    "9" * 100_000,
])
def test_very_long_outputs_do_not_hang(output):
    for bench, style, ex in _benchmarks():
        answer = bench.extract(output, style)
        bench.score(answer, ex)


# ------------------------------------------------------------------------------- predictions (flanlab score)
PRED_VALUES = st.one_of(st.none(), st.booleans(), st.integers(-3, 200), st.floats(allow_nan=True), NASTY,
                        st.lists(st.one_of(NASTY, st.integers(), st.none()), max_size=3),
                        st.dictionaries(st.text(max_size=2), st.integers(), max_size=1))


PLAUSIBLE_ROW = st.fixed_dictionaries({"subtask": st.just("arithmetic"), "index": st.integers(0, 165),
                                      "output": st.one_of(OUTPUTS, st.lists(OUTPUTS, min_size=1, max_size=3))})


@HANG_GUARD
@settings(max_examples=hypothesis_examples(40))
# Half the files are plausible rows only (the scoring path; a duplicate or an index past the end still
# fails), half mix in rows with a bad field and lines that are not objects.
@given(rows=st.one_of(
    st.lists(PLAUSIBLE_ROW, min_size=1, max_size=6),
    st.lists(st.one_of(PLAUSIBLE_ROW,
                       st.fixed_dictionaries({"subtask": st.sampled_from(["arithmetic", "nope", "Arithmetic"]),
                                              "index": PRED_VALUES, "output": PRED_VALUES}),
                       PRED_VALUES), min_size=1, max_size=6)))
# Found by random runs: an unknown subtask's error named neither the file nor the line.
@example(rows=[{"subtask": "nope", "index": 0, "output": "A"}])
@example(rows=[{"subtask": "arithmetic", "index": 0, "output": "A"}, {"subtask": "nope", "index": 1, "output": "B"}])
@example(rows=[{"subtask": None, "index": 0, "output": "A"}])
@example(rows=[{"subtask": "arithmetic", "index": 3, "output": "A"}, {"subtask": "arithmetic", "index": "3", "output": "B"}])
@example(rows=[{"subtask": "arithmetic", "index": "²", "output": "A"}])
@example(rows=[{"subtask": "arithmetic", "index": 160, "output": "A"}])
@example(rows=[{"subtask": "arithmetic", "index": 0, "output": "\u2028"}])  # found by explore: a raw U+2028
@example(rows=[{"subtask": "arithmetic", "index": 0, "output": "\ud800"}])  # found by explore: a lone surrogate
def test_score_predictions_with_garbage(mmlu_data, tmp_path_factory, rows, capsys):
    """``flanlab score`` on a fuzzed predictions file: exit 0 with every row scored, or exit 2
    with one line naming the file and the line at fault (and no run folder left behind)."""
    from flanlab.cli import main

    folder = tmp_path_factory.mktemp("score")
    preds = folder / "preds.jsonl"
    preds.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    rc = main(["score", "--benchmark", "mmlu", "--strategy", "direct_gen", "--predictions", str(preds),
               "--data-dir", str(mmlu_data), "--runs-dir", str(folder / "runs"), "--run-name", "s"])
    err = capsys.readouterr().err
    event(f"exit {rc}")  # --hypothesis-show-statistics: how often the scoring path itself ran
    if rc == 2:
        assert re.search(r"preds\.jsonl:\d+: ", err) and "Traceback" not in err, err
        assert err.count("\n") == 1 and not (folder / "runs" / "s").exists(), err
        return
    assert rc == 0
    scored = read_jsonl(folder / "runs" / "s" / "examples.jsonl", skip_torn_tail=False)
    assert len(scored) == len(rows)
    for r in scored:
        assert r["correct"] in (0.0, 1.0) and (r["answer"] is not None or r["correct"] == 0.0)


def test_jsonl_strings_may_hold_unicode_line_separators(tmp_path, mmlu_data, capsys):
    """JSON strings may hold U+2028, U+2029, U+0085 unescaped (flanlab's own writers emit them raw):
    JSONL readers split lines at \\n only, never with str.splitlines()."""
    from flanlab.cli import main
    from flanlab.evaluation.benchmarks import get_benchmark

    text = "a\u2028b\u2029c\x85d\x0ce"
    task = tmp_path / "train.jsonl"
    task.write_text(json.dumps({"question": text, "answer": text}, ensure_ascii=False) + "\n", encoding="utf-8")
    from flanlab.tasks.sources import FileSource
    from flanlab.tasks.task import Task

    assert [dict(r) for r in Task("qa", FileSource({"train": task}), _family()).examples()] == \
        [{"question": text, "answer": text}]
    gsm = mmlu_data / "gsm8k" / "test.jsonl"
    gsm.parent.mkdir()
    gsm.write_text(json.dumps({"question": text, "answer": f"{text}\n#### 4"}, ensure_ascii=False) + "\n",
                   encoding="utf-8")
    [ex] = get_benchmark("gsm8k", mmlu_data).examples("main")
    assert ex.target == "4"
    preds = tmp_path / "preds.jsonl"
    preds.write_text(json.dumps({"subtask": "main", "index": 0, "output": f"{text} The answer is 4."},
                                ensure_ascii=False) + "\n", encoding="utf-8")
    rc = main(["score", "--benchmark", "gsm8k", "--strategy", "cot", "--predictions", str(preds),
               "--data-dir", str(mmlu_data), "--runs-dir", str(tmp_path / "runs"), "--run-name", "s"])
    assert rc == 0, capsys.readouterr().err
    [row] = read_jsonl(tmp_path / "runs" / "s" / "examples.jsonl")
    assert row["correct"] == 1.0


def test_lone_surrogate_escapes_are_refused_naming_file_line_and_field(tmp_path):
    from flanlab.tasks.sources import FileSource
    from flanlab.tasks.task import Task

    path = tmp_path / "train.jsonl"
    path.write_text('{"question": "ok", "answer": "a"}\n{"question": "x\\ud83d y", "answer": "b"}\n', encoding="utf-8")
    with pytest.raises(UserError, match=rf"{path}:2: field 'question' holds a lone surrogate \\ud83d"):
        list(Task("qa", FileSource({"train": path}), _family()).examples())
    # A pair of escapes is one real character and loads.
    path.write_text('{"question": "\\ud83d\\ude00", "answer": "b"}\n', encoding="utf-8")
    assert [dict(r) for r in Task("qa", FileSource({"train": path}), _family()).examples()] == \
        [{"question": "😀", "answer": "b"}]


@pytest.mark.parametrize(("command", "body", "needle"), [
    (["mix", "{cfg}", "--out", "{tmp}/o"], "kind: mixture\nname: m\nmembers: 3\nsede: 1\n", "members"),
    (["train", "{cfg}", "--run-name", "{tmp}/r"], "kind: train\nname: t\nmodel: {name: m}\ndata: {mixture: d}\n"
     "train: {steps: many}\n", "train.steps"),
    (["eval", "--config", "{cfg}", "--runs-dir", "{tmp}/runs"], "kind: eval\nmodel: {name: m}\nlimit: [1]\n"
     "benchmark: [mmlu]\n", "limit"),
    (["mix", "{cfg}", "--out", "{tmp}/o"], "kind: mixture\nname: [unclosed\n", "invalid YAML"),
    (["train", "{cfg}"], "\xff\xfe", "not UTF-8"),
])
def test_bad_configs_are_one_line_through_the_cli(tmp_path, capsys, command, body, needle):
    from flanlab.cli import main

    cfg = tmp_path / "bad.yaml"
    cfg.write_bytes(body.encode("latin-1") if body == "\xff\xfe" else body.encode("utf-8"))
    args = [a.replace("{cfg}", str(cfg)).replace("{tmp}", str(tmp_path)) for a in command]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and str(cfg) in err and needle in err, err
