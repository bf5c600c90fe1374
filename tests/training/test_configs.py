"""Shipped training configs: each names its command on line 1 and validates; accelerate configs parse."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from flanlab.core.config import load_config, load_yaml
from flanlab.training.config import TrainConfig

CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "train"


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_config_validates_and_names_its_command(path):
    first = path.read_text().splitlines()[0]
    assert first.startswith("# flanlab ")
    if load_yaml(path).get("kind") == "train":
        assert isinstance(load_config(path), TrainConfig)


@pytest.mark.parametrize("path", sorted((CONFIGS / "accelerate").glob("*.yaml")), ids=lambda p: p.name)
def test_accelerate_configs_parse(path):
    text = path.read_text()
    assert text.splitlines()[0].startswith("# accelerate launch --config_file configs/train/accelerate/")
    data = yaml.safe_load(text)
    assert data["distributed_type"] in {"MULTI_GPU", "FSDP", "DEEPSPEED"}
    assert data["num_processes"] >= data["num_machines"] >= 1
    if data["distributed_type"] == "DEEPSPEED":
        assert data["deepspeed_config"]["zero_stage"] in (2, 3)
    # accelerate's own config class accepts every key
    from accelerate.commands.config.config_args import ClusterConfig

    ClusterConfig(**{k: v for k, v in data.items() if k in ClusterConfig.__dataclass_fields__})
