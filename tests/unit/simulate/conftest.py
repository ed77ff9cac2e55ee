"""One small simulated run shared by the simulator tests (generation takes about a second)."""

from __future__ import annotations

import pytest

from .helpers import Run, options, simulate


@pytest.fixture(scope="session")
def small_run() -> Run:
    """700 waybills, 4 of each waybill anomaly, one of each group anomaly, signed."""
    return simulate(options())
