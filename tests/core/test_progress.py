"""Progress a log can read: without a terminal, long stages log a plain line at least every 30 s."""

from __future__ import annotations

import logging
import time

from flanlab.core import log as flog


def test_heartbeat_lines_without_a_terminal(monkeypatch, caplog):
    monkeypatch.setattr(flog.console, "_force_terminal", False)
    monkeypatch.setenv("FLANLAB_PROGRESS", "1")  # the test suite turns progress off
    monkeypatch.setenv("FLANLAB_PROGRESS_EVERY", "0.05")
    caplog.set_level(logging.INFO, logger="flanlab.progress")
    with flog.progress() as bar:
        task = bar.add_task("train x step 3 loss 1.234 (mean of 1 steps) 99 tok/s", total=10)
        bar.update(task, completed=3)
        time.sleep(0.3)  # several heartbeats, without any update in between
    lines = [r.getMessage() for r in caplog.records if r.name == "flanlab.progress"]
    assert len(lines) >= 3
    assert lines[0].startswith("train x step 3 loss 1.234") and "3/10 (30%)" in lines[0] and "eta" in lines[0]
    assert "tok/s" in lines[0] and "elapsed" in lines[0]


def test_default_heartbeat_is_30_seconds_and_off_on_a_terminal(monkeypatch):
    assert flog.HEARTBEAT_S == 30.0
    monkeypatch.setenv("FLANLAB_PROGRESS", "1")
    monkeypatch.setattr(flog.console, "_force_terminal", True)
    assert flog.progress()._heartbeat_s is None
