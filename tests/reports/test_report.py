"""``flanlab report``: run folders → report.md, plots and a self-contained report.html."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from flanlab.cli import main
from flanlab.reports.collect import flatten_scores, load_run
from flanlab.reports.paper import load_paper_rows, paper_column


def _eval_run(folder: Path, bbh: dict[str, float], mmlu: float, nested: bool = True) -> Path:
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text(yaml.safe_dump({"kind": "eval", "model": {"name": "tiny"}}))
    if nested:
        results = {
            "model": {"name": "tiny"},
            "benchmarks": {
                "bbh": {"accuracy": sum(bbh.values()) / len(bbh), "n": 30,
                        "subtasks": {k: {"accuracy": v, "n": 10} for k, v in bbh.items()}},
                "mmlu": {"accuracy": mmlu, "n": 57},
            },
            "seconds": 12.5,
        }
    else:  # a list of records, the other shape evaluation may write
        results = {"results": [{"benchmark": "bbh", "subtask": k, "metric": "accuracy", "value": v}
                               for k, v in bbh.items()]
                   + [{"benchmark": "mmlu", "metric": "accuracy", "value": mmlu}]}
    (folder / "results.json").write_text(json.dumps(results))
    return folder


def _pipeline_run(tmp_path: Path) -> Path:
    run = tmp_path / "pipe"
    run.mkdir()
    (run / "config.yaml").write_text(yaml.safe_dump({"kind": "run", "name": "pipe", "model": {"name": "tiny"}}))
    (run / "results.json").write_text(json.dumps({"stages": {}, "train": {
        "steps": 40, "final_loss": 1.23456, "tokens_real": 20480, "tokens_target": 12000,
        "packing_efficiency": 0.9}}))
    _eval_run(run / "eval_before", {"navigate": 0.2, "snarks": 0.5, "date_understanding": 0.3}, 0.25)
    _eval_run(run / "eval_after", {"navigate": 0.4, "snarks": 0.6, "date_understanding": 0.35}, 0.3,
              nested=False)
    return run


# A real `flanlab eval` run folder: BBH-style subtasks in a tiny data dir, records scored by hand,
# results.json / results.md written by evaluation's own Results (so they carry n, intervals, chance).
_SUBTASKS = {
    # subtask: (inputs, target) per item; navigate is a Yes/No label task, snarks lists two options
    "navigate": [(f"Walk {i} steps. Back home?", "Yes" if i % 2 else "No") for i in range(10)],
    "snarks": [(f"Which is sarcastic {i}?\nOptions:\n(A) a\n(B) b", "(A)" if i % 3 else "(B)") for i in range(10)],
}


def _bbh_data(root: Path) -> Path:
    for sub, items in _SUBTASKS.items():
        (root / "bbh" / "tasks").mkdir(parents=True, exist_ok=True)
        (root / "bbh" / "tasks" / f"{sub}.json").write_text(json.dumps(
            {"examples": [{"input": q, "target": t} for q, t in items]}))
    return root


def _flanlab_eval_run(folder: Path, data: Path, right: dict[str, set[int]], model: str) -> Path:
    """An eval run as `flanlab eval` writes it; ``right``: the items answered correctly per subtask."""
    from flanlab.core.io import append_jsonl
    from flanlab.core.runs import RunDir
    from flanlab.evaluation.benchmarks import get_benchmark
    from flanlab.evaluation.results import Results

    bbh = get_benchmark("bbh", data)
    records = []
    for sub, items in _SUBTASKS.items():
        for i, (q, target) in enumerate(items):
            wrong = "No" if target == "Yes" else "Yes" if target == "No" else "(C)"
            answer = target if i in right.get(sub, set()) else wrong
            records.append({"benchmark": "bbh", "subtask": sub, "index": i, "strategy": "direct",
                            "prompt": f"Answer the question.\n\nQ: example\nA: Yes\n\nQ: {q}\nA:",
                            "stop": ["\n\n"], "outputs": [f" {answer}"], "answers": [answer], "answer": answer,
                            "target": target, "correct": float(answer == target)})
    run = RunDir.create(str(folder))
    (folder / "config.yaml").write_text(yaml.safe_dump({"kind": "eval", "model": {"name": model}}))
    append_jsonl(folder / "examples.jsonl", records)
    res = Results(model, {"bbh": bbh})
    res.add(records)
    res.write(run)
    return folder


def _story_run(tmp_path: Path) -> Path:
    """A pipeline run with both evaluations, training metrics and a mixture manifest."""
    data = _bbh_data(tmp_path / "data")
    run = tmp_path / "story"
    run.mkdir()
    (run / "config.yaml").write_text(yaml.safe_dump({"kind": "run", "name": "story", "model": {"name": "tiny-base"}}))
    (run / "results.json").write_text(json.dumps({"stages": {}, "train": {
        "steps": 20, "final_loss": 1.5, "tokens_real": 4096, "packing_efficiency": 0.95}}))
    # navigate: 2/10 → 9/10 (7 improved, none worsened); snarks: 5/10 → 5/10 (two swapped each way).
    _flanlab_eval_run(run / "eval_before", data, {"navigate": {0, 1}, "snarks": {0, 1, 2, 3, 4}}, "tiny-base")
    _flanlab_eval_run(run / "eval_after", data, {"navigate": set(range(9)), "snarks": {0, 1, 2, 5, 6}},
                      "story/train/final")
    (run / "train").mkdir()
    rows = [{"step": 0, "heldout_loss": 2.5}] + [{"step": s, "loss": 3.0 - 0.05 * s} for s in (5, 10, 15, 20)]
    rows += [{"step": 10, "heldout_loss": 2.1}, {"step": 20, "heldout_loss": 1.9}]
    (run / "train" / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (run / "mixture").mkdir()
    (run / "mixture" / "manifest.json").write_text(json.dumps({
        "examples": 100,
        "submixtures": {"cot": {"examples": 60, "share": 0.6, "tasks": 2},
                        "bigbench": {"examples": 40, "share": 0.4, "tasks": 3}},
        "tasks": {"cot_gsm8k": {"submixture": "cot", "examples": 35, "share": 0.35, "epochs": 0.5},
                  "cot_esnli": {"submixture": "cot", "examples": 25, "share": 0.25, "epochs": 0.1},
                  "bigbench.a": {"submixture": "bigbench", "examples": 20, "share": 0.2, "epochs": 1.0},
                  "bigbench.b": {"submixture": "bigbench", "examples": 12, "share": 0.12, "epochs": 1.0},
                  "bigbench.c": {"submixture": "bigbench", "examples": 8, "share": 0.08, "epochs": 2.0}}}))
    return run


def test_report_tells_the_story_with_n_intervals_and_chance(tmp_path):
    run = _story_run(tmp_path)
    before = json.loads((run / "eval_before" / "results.json").read_text())["scores"]["bbh"]["direct"]
    # What evaluation writes: n, a Wilson interval (equal-size subtasks: the mean of subtask means is
    # the mean over items), the chance level (navigate Yes/No and snarks' two options: 50 %).
    assert before["score"] == 35.0 and before["n"] == 20 and before["chance"] == 50.0
    assert before["ci_method"] == "wilson" and before["ci95"] == [18.12, 56.71]  # Wilson 7/20
    assert before["subtask_stats"]["navigate"]["ci95"] == [5.67, 50.98]  # Wilson 2/10
    assert "| bbh | direct | 35.0 | [18.1, 56.7] | 20 | 50.0 | wilson |" in (run / "eval_before" / "results.md").read_text()

    assert main(["report", str(run)]) == 0
    md = (run / "report.md").read_text()
    # Summary: chance, every score with its interval and n, the paired difference with its interval.
    assert "| benchmark | chance | before | after | Δ after − before [95 % CI] |" in md
    d = "+35.0 [+4.2, +57.9] n=20 (borderline)"
    assert f"| bbh (direct) | 50.0 | 35.0 [18.1, 56.7] n=20 | 70.0 [48.1, 85.5] n=20 | {d} |" in md
    # Only 1 of the paper's 6 columns: no normalized average figure, only a note.
    assert "normalized average (the paper's 6 columns)" not in md and "partial (1 of 6)" in md
    # Before vs after on the same items: 9 improved, 2 worsened. Newcombe's interval excludes 0 but the
    # exact McNemar test (p = 2·P(X ≤ 2 | 11, ½) = 0.0654) does not agree: no gain is claimed.
    assert ("| bbh (direct) | 20 | 35.0 | 70.0 | +35.0 [+4.2, +57.9] | 9 / 2 | 0.0654 | borderline (interval "
            "excludes 0, exact McNemar p = 0.0654): not claimed; newcombe |") in md
    # Per subtask: navigate is a clear gain (7 of 7 changed items improved, p = 0.0156), snarks no clear
    # change (two swaps each way: its interval includes 0).
    assert "| navigate | 50.0 | 20.0 [5.7, 51.0] n=10 | 90.0 [59.6, 98.2] n=10 | +70.0 [+26.6, +86.5] n=10 (gain) |" in md
    assert "| snarks | 50.0 | 50.0 [23.7, 76.3] n=10 | 50.0 [23.7, 76.3] n=10 | +0.0 [-37.3, +37.3] n=10 " \
           "(no clear change) |" in md
    # The story: loss curves, mixture composition, held-out prompts side by side.
    assert "held-out loss 2.500 at step 0 → 1.900 at step 20 (fell: -0.600)" in md
    assert "![Loss per step](plots/loss.png)" in md
    assert "| cot | 2 | 60 | 60.0% |" in md and "| cot_gsm8k | cot | 35 | 35.0% | 0.5 |" in md
    assert "### bbh (direct) / navigate #2" in md  # the first navigate item whose answer changed
    assert "| answer | Yes | No |" in md and "| scored | wrong | right |" in md
    assert "```\nQ: Walk 2 steps. Back home?\nA:\n```" in md
    # The paper's rows apart, with their scale; ours in their own table.
    assert "## The paper's numbers, for scale (not a like-for-like comparison)" in md
    assert "| Flan-PaLM 540B (540B) | 57.9 |" in md
    assert "| before: tiny-base | 35.0 [18.1, 56.7] n=20 |" in md and "| chance (these items) | 50.0 |" in md
    assert "this run: " not in md
    pngs = sorted(p.name for p in (run / "plots").iterdir())
    assert pngs == ["breakdown-bbh-direct.png", "loss.png", "summary.png"]
    page = (run / "report.html").read_text()
    assert "<pre>Q: Walk 2 steps. Back home?\nA:</pre>" in page
    assert "35.0 [18.1, 56.7] n=20" in page


def test_flatten_both_shapes_skip_counts():
    nested = {"benchmarks": {"bbh": {"accuracy": 0.5, "n": 3, "subtasks": {"navigate": {"accuracy": 1.0}}}},
              "seconds": 3}
    assert {(s.benchmark, s.subtask, s.metric, s.value) for s in flatten_scores(nested)} == {
        ("bbh", "", "accuracy", 0.5), ("bbh", "navigate", "accuracy", 1.0)}
    flat = {"results": [{"benchmark": "mgsm", "subtask": "de", "metric": "exact_match", "value": 0.1,
                         "strategy": "cot"}]}
    (s,) = flatten_scores(flat)
    assert (s.benchmark, s.subtask, s.setting, s.value) == ("mgsm", "de", "cot", 0.1)


def test_headline_averages_subtasks_when_no_aggregate(tmp_path):
    run = load_run(_eval_run(tmp_path / "e", {"a": 0.2, "b": 0.4}, 0.5, nested=False))
    assert run.headline() == {("bbh", ""): pytest.approx(0.3), ("mmlu", ""): 0.5}


def test_paper_rows_come_from_evaluation_table5():
    rows = load_paper_rows()
    flan_xxl = next(r for r in rows if r.model.startswith("Flan-T5-XXL"))
    assert flan_xxl.scores["bbh_direct"] == 45.3 and flan_xxl.scores["mmlu_cot"] == 48.6
    assert paper_column("bbh", "") == "bbh_direct" and paper_column("mmlu", "cot") == "mmlu_cot"


def test_report_cli_pipeline_run(tmp_path):
    run = _pipeline_run(tmp_path)
    assert main(["report", str(run)]) == 0
    md = (run / "report.md").read_text()
    # before/after/delta in percent, per-subtask breakdown, plots linked. These foreign results.json
    # shapes carry no per-item records: the report says so instead of inventing an interval.
    na = "(n unknown, no interval)"
    assert f"| bbh | – | 33.3 {na} | 45.0 {na} | +11.7 (no interval: no per-item records) |" in md
    assert f"| mmlu | – | 25.0 {na} | 30.0 {na} | +5.0 (no interval: no per-item records) |" in md
    assert f"| navigate | – | 20.0 {na} | 40.0 {na} | +20.0 (no interval: no per-item records) |" in md
    assert "Before vs after on the same items" not in md
    assert "![Held-out score per benchmark, with 95 % intervals and the chance level](plots/summary.png)" in md
    assert "| Flan-T5-Small (80M) | 28.7 | 29.1 |" in md  # paper mmlu_direct, bbh_direct
    assert f"| after: tiny | 30.0 {na} | 45.0 {na} |" in md
    assert "| pipe | 40 | 1.235 | 12,000 | 20,480 | 90.0% |" in md
    pngs = sorted(p.name for p in (run / "plots").iterdir())
    assert pngs == ["breakdown-bbh.png", "summary.png"]
    assert all((run / "plots" / p).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in pngs)
    page = (run / "report.html").read_text()
    assert "src=\"http" not in page and "<link" not in page and "<script" not in page
    assert len(re.findall(r'<img src="data:image/png;base64,', page)) == 2


def test_report_errors_name_the_folder(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["report", str(empty)]) == 2
    assert f"{empty}: no results.json" in capsys.readouterr().err
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "results.json").write_text("{\n  oops")
    assert main(["report", str(bad)]) == 2
    assert f"{bad / 'results.json'}:2: invalid JSON" in capsys.readouterr().err
    assert main(["report", str(bad), str(empty)]) == 2
    assert "--out" in capsys.readouterr().err


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# The inline script is the test's, added to a copy: the report itself ships no script.
_PROBE = """<script>
window.addEventListener('load', () => {
  const imgs = [...document.images].map(i => i.naturalWidth + 'x' + i.naturalHeight);
  const rows = document.querySelectorAll('table tbody tr').length;
  const out = document.createElement('pre');
  out.id = 'probe';
  out.textContent = 'IMAGES=' + imgs.join(',') + ';ROWS=' + rows;
  document.body.appendChild(out);
});
</script>"""


def _chromium(*args: str, user_dir: Path) -> subprocess.CompletedProcess:
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={user_dir}"]
    return subprocess.run([CHROMIUM, *flags, *args], capture_output=True, text=True, timeout=120)


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (make test installs it)")
def test_html_renders_in_headless_chromium(tmp_path):
    run = _story_run(tmp_path)
    assert main(["report", str(run)]) == 0
    page = (run / "report.html").read_text()
    probe = tmp_path / "probe.html"
    probe.write_text(page.replace("</body>", _PROBE + "</body>"))
    dom = _chromium("--virtual-time-budget=5000", "--dump-dom", probe.as_uri(), user_dir=tmp_path / "u1").stdout
    found = re.search(r"IMAGES=([^;]*);ROWS=(\d+)", dom)
    assert found, dom[-2000:]
    sizes = [tuple(map(int, s.split("x"))) for s in found.group(1).split(",")]
    assert len(sizes) == 3 and all(w > 100 and h > 100 for w, h in sizes)  # summary, breakdown, loss
    # summary 1 + before/after 1 + subtasks 2 + finetuning 1 + mixture 2 + 5 + two examples of 4 rows
    # + Table 5 (11 paper rows) + this run (before, after, chance)
    assert int(found.group(2)) == 1 + 1 + 2 + 1 + 2 + 5 + 2 * 4 + 11 + 3
    assert ("<td>navigate</td><td>50.0</td><td>20.0 [5.7, 51.0] n=10</td><td>90.0 [59.6, 98.2] n=10</td>"
            "<td>+70.0 [+26.6, +86.5] n=10 (gain)</td>") in dom
    assert "<pre>Q: Walk 2 steps. Back home?\nA:</pre>" in dom
    shot = tmp_path / "shot.png"
    _chromium(f"--screenshot={shot}", "--window-size=1000,1400", "--hide-scrollbars", (run / "report.html").as_uri(),
              user_dir=tmp_path / "u2")
    from PIL import Image

    pixels = Image.open(shot).convert("L")
    lo, hi = pixels.getextrema()
    assert hi - lo > 100  # not blank: text and plots drew
    assert len(set(pixels.resize((100, 140)).tobytes())) > 20  # many grey levels: text, lines, bars


def test_compare_two_eval_runs_with_normalized_average(tmp_path):
    a = _eval_run(tmp_path / "a", {"navigate": 0.5}, 0.25)
    b = tmp_path / "b"
    b.mkdir()
    # the shape `flanlab eval` writes: percent, per strategy, its normalized average
    (b / "results.json").write_text(json.dumps({
        "model": "m", "scores": {"bbh": {"direct": {"score": 40.0, "n": 2, "subtasks": {"navigate": 40.0}}}},
        "normalized_average": {"value": None, "partial": 12.5, "columns_present": 1}, "seconds": {"run": 1}}))
    out = tmp_path / "cmp"
    assert main(["report", str(a), str(b), "--out", str(out), "--title", "a vs b"]) == 0
    md = (out / "report.md").read_text()
    assert md.startswith("# a vs b")
    assert "| benchmark | chance | a | b |" in md
    assert "| bbh | – | 50.0 (n unknown, no interval) | – |" in md and "| bbh (direct) | – | – | 40.0 n=2 |" in md
    # a partial normalized average is never shown as a figure
    assert "12.5" not in md and "partial (1 of 6)" in md


def test_pipeline_summary_carries_intervals_and_the_paired_difference(tmp_path):
    from flanlab.reports.story import before_after, before_after_markdown

    run = _story_run(tmp_path)
    summary = before_after(run)
    assert summary["stages"]["eval_before"] == {"bbh/direct": 35.0}
    assert summary["stats"]["eval_after"]["bbh/direct"] == {"n": 20, "ci95": [48.1, 85.45], "ci_method": "wilson",
                                                            "chance": 50.0}
    d = summary["paired"]["bbh/direct"]
    assert (d["improved"], d["worsened"], d["ci95"], d["excludes_zero"], d["significant"]) == (
        9, 2, [4.16, 57.89], True, False)
    md = before_after_markdown(summary)
    assert "| benchmark | chance | before | after | after − before |" in md
    assert ("| bbh/direct | 50.0 | 35.0 [18.1, 56.7] n=20 | 70.0 [48.1, 85.5] n=20 | "
            "+35.0 [+4.2, +57.9], McNemar p=0.0654: borderline, not claimed |") in md


def test_two_eval_runs_are_compared_on_the_same_items(tmp_path):
    data = _bbh_data(tmp_path / "data")
    a = _flanlab_eval_run(tmp_path / "base", data, {"navigate": {0, 1}, "snarks": set(range(5))}, "base")
    b = _flanlab_eval_run(tmp_path / "tuned", data, {"navigate": set(range(9)), "snarks": set(range(5))}, "tuned")
    out = tmp_path / "cmp"
    assert main(["report", str(a), str(b), "--out", str(out)]) == 0
    md = (out / "report.md").read_text()
    assert "| benchmark | chance | base | tuned | Δ tuned − base [95 % CI] |" in md
    # 7 improved, none worsened (McNemar p = 2/2^7 = 0.0156): a gain on which both tests agree.
    assert "| bbh (direct) | 50.0 | 35.0 [18.1, 56.7] n=20 | 70.0 [48.1, 85.5] n=20 | +35.0 [" in md
    row = next(line for line in md.splitlines() if line.startswith("| bbh (direct) | 20 |"))
    assert "| 7 / 0 | 0.0156 | gain (interval excludes 0), McNemar p < 0.05;" in row
    assert "|  | base | tuned |" in md  # the prompts side by side, under the runs' names
