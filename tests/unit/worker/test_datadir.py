"""A full or read-only data dir is named as such: quix-streams reads RocksDB's ``IO error``
as a lock held by another process and retries, so the log said "cannot acquire a lock"."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from quixstreams.exceptions.assignment import PartitionAssignmentError

from waybill_watch.worker import datadir
from waybill_watch.worker.datadir import (
    QUIX_PARTITION_LOGGER,
    LockRetryExplainer,
    disk_error,
    explain_lock_retries,
    problem,
)


def fake_statvfs(flag: int = 0, free_blocks: int = 1 << 20) -> Any:
    return lambda _: SimpleNamespace(f_flag=flag, f_bavail=free_blocks, f_frsize=4096)


def test_a_writable_dir_has_no_problem_and_keeps_no_probe(tmp_path: Path) -> None:
    assert problem(tmp_path) is None
    assert list(tmp_path.iterdir()) == []


def test_read_only_full_and_missing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert problem(tmp_path / "missing") is not None
    monkeypatch.setattr(os, "statvfs", fake_statvfs(flag=os.ST_RDONLY))
    assert problem(tmp_path) == "is on a read-only file system"
    monkeypatch.setattr(os, "statvfs", fake_statvfs(free_blocks=10))
    assert problem(tmp_path) == "is full (40960 bytes free)"


def test_an_unwritable_dir_says_why(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_space(self: Path, *args: Any, **kwargs: Any) -> Any:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Path, "open", no_space)
    assert problem(tmp_path) == "cannot be written (No space left on device)"


def test_the_disk_error_behind_a_partition_assignment_error() -> None:
    try:
        try:
            raise OSError("Read-only file system (os error 30)")  # as rocksdict raises it
        except OSError as cause:
            raise PartitionAssignmentError("Error during partition assignment") from cause
    except PartitionAssignmentError as exc:
        found = disk_error(exc)
    assert found is not None and "Read-only" in str(found)
    assert disk_error(OSError(28, "No space left on device")) is not None
    assert disk_error(OSError(2, "No such file or directory")) is None
    assert disk_error(ValueError("not a disk")) is None


def test_a_lock_retry_on_a_broken_disk_logs_the_real_problem(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    quix = logging.getLogger(QUIX_PARTITION_LOGGER)
    explainer = explain_lock_retries(tmp_path)
    try:
        assert explain_lock_retries(tmp_path) is explainer  # installed once
        with caplog.at_level(logging.WARNING):
            quix.warning('Failed to open rocksdb partition on "x", cannot acquire a lock')
            assert [r for r in caplog.records if r.name == datadir.__name__] == []  # disk fine
            monkeypatch.setattr(os, "statvfs", fake_statvfs(flag=os.ST_RDONLY))
            quix.warning('Failed to open rocksdb partition on "x", cannot acquire a lock')
            quix.warning("some other warning")
        ours = [r for r in caplog.records if r.name == datadir.__name__]
        assert len(ours) == 1 and ours[0].levelno == logging.ERROR
        assert "read-only" in ours[0].getMessage() and str(tmp_path) in ours[0].getMessage()
        # quix-streams' own lines still go through
        assert sum(r.name == QUIX_PARTITION_LOGGER for r in caplog.records) == 3
    finally:
        quix.removeFilter(explainer)
    assert isinstance(explainer, LockRetryExplainer)
