from __future__ import annotations

from typing import Literal

import pytest

from flanlab.core.config import (
    SCHEMAS,
    ConfigError,
    Schema,
    apply_overrides,
    dump_config,
    load_config,
    parse_overrides,
)


class Optim(Schema):
    name: Literal["adafactor", "adamw"] = "adafactor"
    lr: float = 5e-4
    betas: list[float] = [0.9, 0.99]


class Train(Schema):
    steps: int
    optim: Optim = Optim()
    tags: list[str] = []


class Top(Schema):
    kind: Literal["test-top"] = "test-top"
    name: str
    train: Train


if "test-top" not in SCHEMAS:
    SCHEMAS.register("test-top", Top)


def write(tmp_path, text, name="c.yaml"):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_load_with_nested_overrides(tmp_path):
    p = write(tmp_path, "kind: test-top\nname: a\ntrain:\n  steps: 3\n  optim:\n    lr: 0.1\n")
    cfg = load_config(p, ["train.optim.lr=1e-4", "train.steps=10", "train.tags=[x, y]", "train.optim.name=adamw"])
    assert isinstance(cfg, Top)
    assert cfg.train.optim.lr == pytest.approx(1e-4)
    assert cfg.train.steps == 10
    assert cfg.train.tags == ["x", "y"]
    assert cfg.train.optim.name == "adamw"
    # the resolved config round-trips through YAML
    again = write(tmp_path, dump_config(cfg), "again.yaml")
    assert load_config(again) == cfg


def test_override_creates_missing_mapping(tmp_path):
    p = write(tmp_path, "kind: test-top\nname: a\ntrain:\n  steps: 3\n")
    cfg = load_config(p, ["train.optim.lr=0.5"])
    assert cfg.train.optim.lr == 0.5


def test_unknown_key_names_key_file_line_and_suggestion(tmp_path):
    p = write(tmp_path, "kind: test-top\nname: a\ntrain:\n  steps: 3\n  optim:\n    lrr: 0.1\n")
    with pytest.raises(ConfigError) as e:
        load_config(p)
    msg = str(e.value)
    assert "train.optim.lrr" in msg and str(p) in msg and ":6:" in msg
    assert "did you mean 'lr'" in msg


def test_unknown_key_from_override(tmp_path):
    p = write(tmp_path, "kind: test-top\nname: a\ntrain:\n  steps: 3\n")
    with pytest.raises(ConfigError, match=r"unknown key 'train\.stepz'.*did you mean 'steps'"):
        load_config(p, ["train.stepz=4"])


def test_wrong_type_names_key_expected_type_and_file(tmp_path):
    p = write(tmp_path, "kind: test-top\nname: a\ntrain:\n  steps: many\n")
    with pytest.raises(ConfigError) as e:
        load_config(p)
    msg = str(e.value)
    assert "train.steps" in msg and "expected int" in msg and str(p) in msg and ":4:" in msg


def test_wrong_literal_lists_choices(tmp_path):
    p = write(tmp_path, "kind: test-top\nname: a\ntrain:\n  steps: 1\n  optim: {name: sgd}\n")
    with pytest.raises(ConfigError, match=r"train\.optim\.name.*'adafactor' \| 'adamw'"):
        load_config(p)


def test_missing_required_field(tmp_path):
    p = write(tmp_path, "kind: test-top\ntrain:\n  optim: {}\n")
    with pytest.raises(ConfigError) as e:
        load_config(p)
    msg = str(e.value)
    assert "missing required key 'name' (expected str)" in msg
    assert "missing required key 'train.steps' (expected int)" in msg
    assert str(p) in msg


def test_unknown_kind_suggests(tmp_path):
    p = write(tmp_path, "kind: test-tpo\nname: a\n")
    with pytest.raises(ConfigError, match=r"did you mean 'test-top'"):
        load_config(p)


def test_missing_kind_and_bad_yaml_and_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="missing required key 'kind'"):
        load_config(write(tmp_path, "name: a\n"))
    with pytest.raises(ConfigError, match=r"bad\.yaml: line \d+ invalid YAML"):
        load_config(write(tmp_path, "a: 1\nb: [1, 2\n", "bad.yaml"))
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="expected a mapping"):
        load_config(write(tmp_path, "- 1\n- 2\n", "list.yaml"))


def test_parse_overrides_values():
    parsed = dict((".".join(k), v) for k, v in parse_overrides(["a=1", "b=1e-4", "c=true", "d=hello", "e=[1,2]"]))
    assert parsed == {"a": 1, "b": 1e-4, "c": True, "d": "hello", "e": [1, 2]}
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        parse_overrides(["novalue"])


def test_override_through_scalar_is_an_error():
    with pytest.raises(ConfigError, match="'a' is not a mapping"):
        apply_overrides({"a": 1}, ["a.b=2"], source="f.yaml")
