"""The worker's consumer settings: a crashed worker's restart waits for the session timeout."""

from __future__ import annotations

import pytest

from waybill_watch.settings import Settings
from waybill_watch.worker.app import consumer_config


def test_session_timeout_defaults_to_kafkas() -> None:
    config = consumer_config(Settings())
    assert config["session.timeout.ms"] == 45_000
    assert config["heartbeat.interval.ms"] == 3_000  # librdkafka's default


def test_session_timeout_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WAYBILL_WATCH_SESSION_TIMEOUT_SECONDS", "6")
    config = consumer_config(Settings())
    assert config["session.timeout.ms"] == 6_000
    # At most a third of the session: two missed heartbeats do not evict a live worker.
    assert config["heartbeat.interval.ms"] == 2_000


def test_session_timeout_must_be_positive(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WAYBILL_WATCH_SESSION_TIMEOUT_SECONDS", "0")
    with pytest.raises(ValueError, match="session_timeout_seconds"):
        Settings()
