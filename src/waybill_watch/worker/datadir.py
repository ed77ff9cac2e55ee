"""Say so when the worker's data dir is full or read-only.

RocksDB reports both as an ``IO error``, and quix-streams (3.28.1) reads every ``IO error`` on
opening a store as another process holding its lock: the log showed ten "cannot acquire a
lock" retries and never the disk. ``LockRetryExplainer`` checks the data dir when such a line
is logged and logs the real problem beside it; ``problem`` is the check.
"""

from __future__ import annotations

import errno
import logging
import os
import uuid
from pathlib import Path

log = logging.getLogger(__name__)

#: Less free space than this counts as full (RocksDB cannot write a memtable's file).
MIN_FREE_BYTES = 1 << 20
PROBE_BYTES = 4096
#: The quix-streams logger and the words of its lock retry.
QUIX_PARTITION_LOGGER = "quixstreams.state.rocksdb.partition"
LOCK_WORDS = "cannot acquire a lock"
#: OS errors of a data disk that is full or was made read-only.
DISK_ERRNOS = {errno.ENOSPC, errno.EROFS, errno.EDQUOT, errno.EIO}
_DISK_WORDS = ("no space left", "read-only file system", "disk quota", "input/output error")


def problem(data_dir: Path) -> str | None:
    """What stops writing to ``data_dir`` (read-only, full, unwritable), or None."""
    try:
        stats = os.statvfs(data_dir)
    except OSError as exc:
        return f"cannot be read ({exc.strerror or exc})"
    if stats.f_flag & os.ST_RDONLY:
        return "is on a read-only file system"
    free = stats.f_bavail * stats.f_frsize
    if free < MIN_FREE_BYTES:
        return f"is full ({free} bytes free)"
    probe = data_dir / f".write-probe-{uuid.uuid4().hex}"
    try:
        with probe.open("wb") as handle:
            handle.write(b"\0" * PROBE_BYTES)
            handle.flush()
            os.fsync(handle.fileno())
    except OSError as exc:
        return f"cannot be written ({exc.strerror or exc})"
    finally:
        probe.unlink(missing_ok=True)
    return None


def disk_error(exc: BaseException) -> OSError | None:
    """The full or read-only disk behind ``exc`` (anywhere in its chain), if that is what it
    is: RocksDB reports it as an ``OSError`` whose message names it."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError):
            text = str(current).lower()
            if current.errno in DISK_ERRNOS or any(word in text for word in _DISK_WORDS):
                return current
        current = current.__cause__ or current.__context__
    return None


class LockRetryExplainer(logging.Filter):
    """On quix-streams' lock-retry warning, log the data dir's problem if it has one."""

    def __init__(self, data_dir: Path) -> None:
        super().__init__()
        self.data_dir = data_dir

    def filter(self, record: logging.LogRecord) -> bool:
        if LOCK_WORDS in record.getMessage():
            found = problem(self.data_dir)
            if found is not None:
                log.error(
                    "the data dir %s %s: free space on (or remount read-write) its volume; "
                    "quix-streams reports this as a RocksDB lock it cannot acquire",
                    self.data_dir,
                    found,
                )
        return True


def explain_lock_retries(data_dir: Path) -> LockRetryExplainer:
    """Install the explainer on quix-streams' store logger (once)."""
    logger = logging.getLogger(QUIX_PARTITION_LOGGER)
    for existing in logger.filters:
        if isinstance(existing, LockRetryExplainer):
            return existing
    explainer = LockRetryExplainer(data_dir)
    logger.addFilter(explainer)
    return explainer
