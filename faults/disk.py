"""A worker data dir that can be made full or read-only: a small tmpfs mounted on it.

The harness runs as root (the CI machine does), so ``chmod a-w`` would not stop the worker
from writing: the faults need a file system of their own. When mounting is not possible
(not root, no CAP_SYS_ADMIN) the disk faults are skipped and the report says so.
"""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
from pathlib import Path

FILLER = ".faults-filler"


class FaultyDisk:
    def __init__(self, path: Path, size_mb: int = 256) -> None:
        self.path = path
        self.size_mb = size_mb
        self.mounted = False
        self.problem: str | None = None

    def mount(self) -> bool:
        self.path.mkdir(parents=True, exist_ok=True)
        if os.geteuid() != 0:
            self.problem = "not root: cannot mount a tmpfs (disk faults skipped)"
            return False
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={self.size_mb}m", "tmpfs", str(self.path)],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            self.problem = f"mount failed ({done.stderr.strip()}): disk faults skipped"
            return False
        self.mounted = True
        return True

    def fill(self) -> int:
        """Grow the filler file until the file system has not one byte left; bytes written
        (1 MiB chunks, then 4 KiB, then single bytes: a partial last chunk would leave room).
        Called again while the fault holds: RocksDB deletes obsolete files when it opens."""
        written = 0
        with (self.path / FILLER).open("ab", buffering=0) as out:
            for size in (1 << 20, 4096, 1):
                chunk = b"\0" * size
                try:
                    while True:
                        written += out.write(chunk) or 0
                except OSError as exc:
                    if exc.errno != errno.ENOSPC:
                        raise
        return written

    def unfill(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            (self.path / FILLER).unlink()

    def read_only(self, on: bool) -> None:
        mode = "ro" if on else "rw"
        subprocess.run(["mount", "-o", f"remount,{mode}", str(self.path)], check=True)

    def unmount(self) -> None:
        if self.mounted:
            with contextlib.suppress(subprocess.CalledProcessError):
                self.read_only(False)
            subprocess.run(["umount", "-l", str(self.path)], check=False)
            self.mounted = False
