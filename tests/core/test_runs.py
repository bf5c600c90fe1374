"""Run folders: a folder is resumed only under the settings it records."""

from __future__ import annotations

import pytest

from flanlab.core.errors import UserError
from flanlab.core.runs import RunDir, check_same_settings, setting_differences


def test_setting_differences_are_dotted_and_honour_ignored_keys():
    old = {"model": {"name": "a", "batch_size": 4}, "samples": 3, "limit": None, "list": [1, 2]}
    new = {"model": {"name": "b", "batch_size": 8}, "samples": 3, "limit": 5, "list": (1, 2)}
    assert setting_differences(old, new) == ["limit", "model.batch_size", "model.name"]
    assert setting_differences(old, new, ignore=["model.batch_size", "limit"]) == ["model.name"]
    assert setting_differences(old, new, ignore=["model"]) == ["limit"]
    assert setting_differences({"a": 1}, {"a": 1, "added_later": True}) == []


def test_locate_creates_nothing_and_check_refuses_other_settings(tmp_path):
    run = RunDir.locate("x", tmp_path)
    assert not run.path.exists()
    check_same_settings(run, {"seed": 1})  # no recorded config: a new run
    run = RunDir.create("x", tmp_path)
    run.write_config({"seed": 1, "model": {"name": "m", "cache": None}})
    check_same_settings(run, {"seed": 1, "model": {"name": "m", "cache": "c.sqlite"}}, ignore=["model.cache"])
    with pytest.raises(UserError) as e:
        check_same_settings(run, {"seed": 2, "model": {"name": "n", "cache": None}}, what="evaluation")
    msg = str(e.value)
    assert msg.startswith(f"{run.path}: holds an evaluation made with other settings")
    assert "model.name: 'm' -> 'n'; seed: 1 -> 2" in msg and "--no-resume" in msg and "--run-name" in msg
    assert "\n" not in msg
