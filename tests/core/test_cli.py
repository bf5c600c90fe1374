import subprocess
import sys

from flanlab.cli import main
from flanlab.core.runs import RunDir
from flanlab.core.seed import seed_everything


def test_help_lists_commands(capsys):
    assert main([]) == 0
    out = capsys.readouterr().out
    for command in ["config", "doctor"]:
        assert command in out


def test_config_show_prints_resolved(tmp_path, capsys):
    import tests.core.test_config  # noqa: F401  (registers the test schema)

    p = tmp_path / "c.yaml"
    p.write_text("kind: test-top\nname: a\ntrain:\n  steps: 3\n")
    assert main(["config", "show", str(p), "train.steps=7", "train.optim.lr=0.01"]) == 0
    out = capsys.readouterr().out
    assert "steps: 7" in out and "lr: 0.01" in out and "name: adafactor" in out


def test_config_error_is_one_clear_line(tmp_path, capsys):
    import tests.core.test_config  # noqa: F401

    p = tmp_path / "c.yaml"
    p.write_text("kind: test-top\nname: a\ntrain:\n  steps: x\n")
    assert main(["config", "show", str(p)]) == 2
    err = capsys.readouterr().err
    assert "error:" in err and "train.steps" in err and "expected int" in err and "Traceback" not in err


def test_doctor_runs_offline(tmp_path):
    # timeout: a guard that the hub probe cannot hang, not a timing assertion; generous, because
    # importing torch and transformers alone can take a minute on a loaded machine.
    proc = subprocess.run(
        [sys.executable, "-m", "flanlab", "doctor", "--data-dir", str(tmp_path), "--timeout", "2"],
        capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    for word in ["torch", "transformers", "datasets", "GPU", "hub reachable", "data dir", "cache"]:
        assert word in proc.stdout


def test_run_dir_and_seed(tmp_path):
    run = RunDir.create("r1", runs_dir=tmp_path)
    run.write_config({"a": 1})
    run.write_results({"score": 0.5})
    assert run.read_results() == {"score": 0.5}
    assert (tmp_path / "r1" / "config.yaml").read_text() == "a: 1\n"
    import random

    import numpy as np
    import torch

    seed_everything(3)
    a = (random.random(), np.random.rand(), torch.rand(1).item())
    seed_everything(3)
    assert a == (random.random(), np.random.rand(), torch.rand(1).item())
