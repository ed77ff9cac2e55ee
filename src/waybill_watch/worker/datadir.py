"""The worker's data dir after a crash: local table files are dropped and rebuilt.

Faust writes RocksDB locally at once but records the changelog position only when it commits,
so after a crash (SIGKILL, OOM) the local files can hold state whose changelog record — and the
output emitted with it — never reached Kafka; re-processing the uncommitted input would then see
"already applied" and emit nothing. A graceful stop leaves a marker; without it the local table
files are deleted and the tables are restored from their changelogs, which never run ahead of
the output (the processors send output before they write the table).
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

log = logging.getLogger(__name__)

MARKER = "CLEAN_SHUTDOWN"


def clean_shutdown_marker(data_dir: Path) -> Path:
    """The file a graceful stop leaves in the data dir."""
    return data_dir / MARKER


def prepare_data_dir(data_dir: Path) -> bool:
    """Create ``data_dir``; wipe its table files when the last stop was not graceful.

    Returns True when files were wiped.
    """
    marker = clean_shutdown_marker(data_dir)
    wiped = False
    has_files = data_dir.is_dir() and any(p.name != MARKER for p in data_dir.iterdir())
    if has_files and not marker.exists():
        log.warning(
            "%s: the last stop was not graceful; dropping local table files, they are "
            "restored from the changelogs",
            data_dir,
        )
        for child in data_dir.iterdir():
            if child.is_dir():
                shutil.rmtree(child)
            else:
                child.unlink()
        wiped = True
    data_dir.mkdir(parents=True, exist_ok=True)
    marker.unlink(missing_ok=True)
    return wiped
