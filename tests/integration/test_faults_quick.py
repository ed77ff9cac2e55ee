"""``make faults-quick`` inside ``make test``: the quick fault run (``python -m faults --quick``)
must end with ``FAULTS ok`` and exit 0.

The harness starts its own single-node broker (it SIGKILLs and restarts it), workers and two
ingest replicas; see ``faults/harness.py`` for the nemesis and the verifier's checks. Its report
(JSON + Markdown, with the processes' logs) stays in the test's tmp dir; ``pytest -s`` shows the
progress and the summary line.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(600)
def test_quick_fault_run_passes(tmp_path: Path) -> None:
    out = tmp_path / "faults"
    env = {k: v for k, v in os.environ.items() if not k.startswith("WAYBILL_WATCH_")}
    done = subprocess.run(
        [sys.executable, "-m", "faults", "--quick", "--out", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=570,
        check=False,
    )
    print(done.stdout)
    lines = done.stdout.strip().splitlines()
    summary = lines[-1] if lines else ""
    report = out / "report.md"
    detail = report.read_text() if report.exists() else done.stderr[-3000:]
    assert summary.startswith("FAULTS "), f"no summary line:\n{done.stdout[-3000:]}\n{detail}"
    assert done.returncode == 0 and summary.startswith("FAULTS ok"), f"{summary}\n{detail}"
