"""``flanlab quickstart`` names a --data-dir that does not exist instead of asking for one."""

from __future__ import annotations

from flanlab.cli import main


def test_missing_data_dir_is_named(tmp_path, capsys):
    missing = tmp_path / "nope"
    assert main(["quickstart", "--data-dir", str(missing), "--runs-dir", str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err
    assert f"data folder {missing} does not exist (from --data-dir)" in err
    assert not (tmp_path / "runs").exists()
