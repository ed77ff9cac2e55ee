"""``waybill-watch ingest`` that cannot start says why in one line and exits 2, no traceback.

The real command runs as a subprocess; nothing listens at the bootstrap address (a port bound
and closed again), so no broker is needed and aiokafka's refusal comes back at once."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

#: A guard against a hung process, not a measurement.
GUARD_S = 60


def closed_port() -> int:
    """A loopback port that was free a moment ago and has no listener now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def run_ingest(**env: str) -> subprocess.CompletedProcess[str]:
    """``waybill-watch ingest`` with only ``env`` as its settings (no config file, no secrets)."""
    full_env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("WAYBILL_WATCH_") and k != "KAFKA_BOOTSTRAP_SERVERS"
    }
    full_env.update(
        {"WAYBILL_WATCH_WEB_BIND": "127.0.0.1", "WAYBILL_WATCH_WEB_PORT": str(closed_port())}
    )
    full_env.update(env)
    return subprocess.run(
        [sys.executable, "-m", "waybill_watch", "ingest"],
        env=full_env,
        capture_output=True,
        text=True,
        timeout=GUARD_S,
        check=False,
    )


def test_unreachable_broker_is_one_line_naming_the_address_and_exit_2() -> None:
    dead = f"127.0.0.1:{closed_port()}"

    result = run_ingest(KAFKA_BOOTSTRAP_SERVERS=dead)

    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert "Unclosed AIOKafkaProducer" not in result.stderr
    [message] = [line for line in result.stderr.splitlines() if "waybill-watch ingest:" in line]
    assert f"cannot reach Kafka at {dead}" in message
    assert "KafkaConnectionError" in message
    assert "KAFKA_BOOTSTRAP_SERVERS" in message


def test_every_bootstrap_server_tried_is_named() -> None:
    dead = f"127.0.0.1:{closed_port()},127.0.0.1:{closed_port()}"

    result = run_ingest(KAFKA_BOOTSTRAP_SERVERS=dead)

    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert f"cannot reach Kafka at {dead}" in result.stderr


def test_malformed_bootstrap_address_is_a_start_failure_too() -> None:
    result = run_ingest(KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:notaport")

    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert "127.0.0.1:notaport" in result.stderr
    assert "ValueError" in result.stderr


@pytest.mark.parametrize(
    ("setting", "value"),
    [("WAYBILL_WATCH_WEB_PORT", "not-a-port"), ("WAYBILL_WATCH_PARTITIONS", "-7")],
)
def test_invalid_settings_name_the_field_and_exit_2(setting: str, value: str) -> None:
    result = run_ingest(**{setting: value})

    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    field = setting.removeprefix("WAYBILL_WATCH_").lower()
    assert result.stderr.startswith("waybill-watch ingest: invalid settings (")
    assert f"{field}:" in result.stderr
    assert value not in result.stderr, "an input value (maybe a secret) is never echoed"
