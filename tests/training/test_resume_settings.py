"""``flanlab train`` resumes a run folder only under the settings it records, checked before writing."""

from __future__ import annotations

from pathlib import Path

from flanlab.cli import main
from flanlab.core.config import dump_config, load_config
from flanlab.training.config import TrainConfig

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "train" / "smollm2_lora.yaml"


def test_changed_lr_or_model_refuses_to_resume_and_keeps_config(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text(dump_config(load_config(CONFIG, ["optim.lr=1e-3"], schema=TrainConfig)))
    before = (run / "config.yaml").read_text()
    for override in (["optim.lr=5e-4"], ["model.name=gemma3-270m", "optim.lr=1e-3"]):
        assert main(["train", str(CONFIG), *override, "--run-name", str(run)]) == 2
        err = capsys.readouterr().err
        assert "--no-resume" in err and ("optim.lr: 0.001 -> 0.0005" in err or "model.name" in err)
        assert (run / "config.yaml").read_text() == before
        assert sorted(p.name for p in run.iterdir()) == ["config.yaml"]  # no log, no checkpoints


def test_constant_rate_run_extends_and_reports_target_tokens(tmp_path, tiny_llama_dir, capsys):
    import json

    from tests.training.helpers import copy_task_rows, write_config, write_mixture

    mix = write_mixture(tmp_path / "mix", copy_task_rows(60))
    cfg = write_config(tmp_path / "c.yaml", tiny_llama_dir, mix, train={"steps": 2, "save_every": 2},
                       optim={"schedule": "constant", "warmup_steps": 0})
    run = tmp_path / "run"
    assert main(["train", str(cfg), "--run-name", str(run)]) == 0
    # A constant rate does not depend on train.steps: extending the run resumes it.
    assert main(["train", str(cfg), "train.steps=3", "--run-name", str(run)]) == 0
    results = json.loads((run / "results.json").read_text())
    assert results["steps"] == 3
    assert 0 < results["tokens_target"] < results["tokens_real"]  # loss-carrying tokens only
    assert main(["train", str(cfg), "train.steps=3", "optim.schedule=cosine", "--run-name", str(run)]) == 2
    assert "optim.schedule: 'constant' -> 'cosine'" in capsys.readouterr().err
