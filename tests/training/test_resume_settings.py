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
