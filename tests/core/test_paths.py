"""The data dir is read from the environment once, where a setting enters (a config field or a
command's flag), and travels as a typed ``Path | None`` from there."""

from __future__ import annotations

from pathlib import Path

from flanlab.core.paths import DATA_DIR_ENV, data_dir


def test_config_fields_convert_and_fill_the_data_dir_once(monkeypatch, tmp_path):
    from flanlab.evaluation.config import EvalConfig
    from flanlab.training.config import DataConfig

    monkeypatch.delenv(DATA_DIR_ENV, raising=False)
    assert EvalConfig(model={"name": "m"}).data_dir is None
    assert EvalConfig(model={"name": "m"}, data_dir=str(tmp_path)).data_dir == tmp_path
    monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path / "env"))
    cfg = EvalConfig(model={"name": "m"})
    assert cfg.data_dir == tmp_path / "env" and isinstance(cfg.data_dir, Path)
    # A value in the config wins over the environment; the environment is not read again later.
    assert DataConfig(mixture="m", data_dir="~/d").data_dir == Path("~/d").expanduser()
    monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path / "other"))
    assert cfg.data_dir == tmp_path / "env"
    assert data_dir(None) == tmp_path / "other" and data_dir(tmp_path) == tmp_path


def test_stage_apis_take_the_data_dir_as_given(monkeypatch, tmp_path):
    from flanlab.tasks.catalog import build_catalog

    (tmp_path / "bbh" / "tasks").mkdir(parents=True)
    (tmp_path / "bbh" / "tasks" / "toy.json").write_text('{"examples": [{"input": "q", "target": "a"}]}')
    monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path))
    # None means no data dir: the environment is the CLI's and the configs' business, not the stage's.
    assert "bbh.toy" not in build_catalog(None, bigbench=False).names()
    assert "bbh.toy" in build_catalog(tmp_path, bigbench=False).names()
