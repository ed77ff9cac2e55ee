"""Local table files survive a graceful stop and are dropped after a crash."""

from pathlib import Path

from waybill_watch.worker.datadir import clean_shutdown_marker, prepare_data_dir


def test_first_start_creates_the_dir(tmp_path: Path) -> None:
    data = tmp_path / "worker"
    assert prepare_data_dir(data) is False
    assert data.is_dir()


def test_graceful_stop_keeps_tables(tmp_path: Path) -> None:
    (tmp_path / "app-data" / "tables").mkdir(parents=True)
    clean_shutdown_marker(tmp_path).touch()
    assert prepare_data_dir(tmp_path) is False
    assert (tmp_path / "app-data" / "tables").is_dir()
    assert not clean_shutdown_marker(tmp_path).exists()  # the next crash must be noticed


def test_crash_drops_tables(tmp_path: Path) -> None:
    (tmp_path / "app-data" / "tables").mkdir(parents=True)
    (tmp_path / "stray.txt").write_text("x")
    assert prepare_data_dir(tmp_path) is True
    assert list(tmp_path.iterdir()) == []
