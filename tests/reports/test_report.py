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
        "steps": 40, "final_loss": 1.23456, "tokens_real": 20480, "packing_efficiency": 0.9}}))
    _eval_run(run / "eval_before", {"navigate": 0.2, "snarks": 0.5, "date_understanding": 0.3}, 0.25)
    _eval_run(run / "eval_after", {"navigate": 0.4, "snarks": 0.6, "date_understanding": 0.35}, 0.3,
              nested=False)
    return run


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
    # before/after/delta in percent, per-subtask breakdown, plots linked
    assert "| bbh | 33.3 | 45.0 | +11.7 |" in md
    assert "| mmlu | 25.0 | 30.0 | +5.0 |" in md
    assert "| navigate | 20.0 | 40.0 |" in md
    assert "![Held-out score per benchmark](plots/summary.png)" in md
    assert "| Flan-T5-Small (80M) | 28.7 | 29.1 |" in md  # paper mmlu_direct, bbh_direct
    assert "| this run: after | 30.0 | 45.0 |" in md
    assert "| pipe | 40 | 1.235 | 20,480 | 90.0% |" in md
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
    run = _pipeline_run(tmp_path)
    assert main(["report", str(run)]) == 0
    page = (run / "report.html").read_text()
    probe = tmp_path / "probe.html"
    probe.write_text(page.replace("</body>", _PROBE + "</body>"))
    dom = _chromium("--virtual-time-budget=5000", "--dump-dom", probe.as_uri(), user_dir=tmp_path / "u1").stdout
    found = re.search(r"IMAGES=([^;]*);ROWS=(\d+)", dom)
    assert found, dom[-2000:]
    sizes = [tuple(map(int, s.split("x"))) for s in found.group(1).split(",")]
    assert len(sizes) == 2 and all(w > 100 and h > 100 for w, h in sizes)
    # summary (bbh, mmlu) + bbh subtasks + Table 5 (11 paper rows + before/after) + finetuning
    assert int(found.group(2)) == 2 + 3 + 13 + 1
    assert "<td>navigate</td><td>20.0</td><td>40.0</td>" in dom
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
    assert "| benchmark | a | b |" in md
    assert "| bbh | 50.0 | – |" in md and "| bbh (direct) | – | 40.0 |" in md
    assert "| normalized average (paper's 6 columns; * partial) | – | 12.5* |" in md
