"""``worker``, ``simulate`` and ``replay`` that cannot start say why in one line and exit 2.

Like ``test_ingest_no_broker.py``: the real command runs as a subprocess with only the
settings a test gives it; nothing listens at the Kafka address (a loopback port bound and closed
again), so no broker is needed and the refusal comes back at once. Invalid settings must name
the field but never echo its value: a value may be a secret."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

#: A guard against a hung process, not a measurement.
GUARD_S = 60


def closed_port() -> int:
    """A loopback port that was free a moment ago and has no listener now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def dead_address() -> str:
    return f"127.0.0.1:{closed_port()}"


def run_cli(cwd: Path, *argv: str, stdin: str = "", **env: str) -> subprocess.CompletedProcess[str]:
    """``waybill-watch ARGV`` with only ``env`` as its settings (no config file, no secrets)."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("WAYBILL_WATCH_", "KAFKA_"))}
    return subprocess.run(
        [sys.executable, "-m", "waybill_watch", *argv],
        cwd=cwd,
        env=clean | env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=GUARD_S,
        check=False,
    )


def the_line(result: subprocess.CompletedProcess[str], prefix: str) -> str:
    """The one line the command wrote about the failure (aiokafka may log its own before)."""
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert "Unclosed AIOKafka" not in result.stderr
    [line] = [line for line in result.stderr.splitlines() if line.startswith(prefix)]
    return line


#: Each command and the beginning of its one line.
COMMANDS = {
    "worker": (("worker",), "waybill-watch worker: "),
    "replay": (("replay", "-", "--out", "-"), "waybill-watch replay: "),
    "simulate": (("simulate", "--waybills", "5", "--out", "-"), "simulate: "),
}

#: A command, an invalid value, and the field it must be named by; no value may be echoed.
#: (Validation errors, a value pydantic-settings cannot even parse, a validator's own message.)
INVALID = [
    ("worker", "WAYBILL_WATCH_PARTITIONS", "-7", "partitions:"),
    ("worker", "WAYBILL_WATCH_TOPIC_PREFIX", "secret prefix!", "topic_prefix:"),
    ("worker", "WAYBILL_WATCH_FEED_TIMEZONES", '{"kdniao": "s3cr3t', '"feed_timezones"'),
    ("replay", "WAYBILL_WATCH_PARTITIONS", "-7", "partitions:"),
    ("simulate", "WAYBILL_WATCH_PARTITIONS", "-7", "partitions:"),
]


@pytest.mark.parametrize(("command", "variable", "value", "field"), INVALID)
def test_invalid_settings_name_the_field_never_the_value(
    tmp_path: Path, command: str, variable: str, value: str, field: str
) -> None:
    argv, prefix = COMMANDS[command]

    result = run_cli(tmp_path, *argv, KAFKA_BOOTSTRAP_SERVERS=dead_address(), **{variable: value})

    line = the_line(result, prefix)
    assert "settings (" in line
    assert field in line
    assert value not in result.stderr, "an input value (maybe a secret) is never echoed"
    assert result.stdout == ""


def test_worker_without_a_broker_names_the_bootstrap_servers(tmp_path: Path) -> None:
    dead = f"{dead_address()},{dead_address()}"

    result = run_cli(tmp_path, "worker", KAFKA_BOOTSTRAP_SERVERS=dead)

    line = the_line(result, "waybill-watch worker: ")
    assert f"Kafka at {dead} (KafkaConnectionError" in line
    assert "KAFKA_BOOTSTRAP_SERVERS" in line
    assert not (tmp_path / ".run").exists(), "nothing is prepared for a worker that cannot start"


@pytest.mark.parametrize(
    ("bootstrap", "error"),
    [(None, "KafkaConnectionError"), ("127.0.0.1:notaport", "ValueError")],
)
def test_simulate_to_unreachable_kafka_stops_its_producer_and_exits_2(
    tmp_path: Path, bootstrap: str | None, error: str
) -> None:
    bootstrap = bootstrap or dead_address()
    labels = tmp_path / "labels.jsonl"

    result = run_cli(
        tmp_path, "simulate", "--waybills", "5", "--kafka", bootstrap, "--labels", str(labels)
    )

    line = the_line(result, "simulate: ")
    assert f"cannot reach Kafka at {bootstrap} ({error}" in line
    assert "--kafka" in line
    assert not labels.exists(), "no labels for traffic that was never sent"


def test_simulate_to_a_closed_http_port_fails_fast_with_the_address(tmp_path: Path) -> None:
    """One probe before the traffic: nothing listening is one line and exit 2, not a run of
    refused POSTs (which, with --realtime, would last the whole simulated period)."""
    address = dead_address()
    labels = tmp_path / "labels.jsonl"

    result = run_cli(
        tmp_path,
        "simulate",
        "--waybills",
        "5",
        "--http",
        f"http://{address}",
        "--labels",
        str(labels),
    )

    assert result.returncode == 2, result.stderr
    line = the_line(result, "simulate: ")
    assert f"cannot reach the worker's HTTP at http://{address}" in line
    assert "--http" in line
    assert "Traceback" not in result.stderr
    assert not labels.exists(), "no labels for traffic that was never sent"


def test_demo_with_invalid_settings_stops_before_starting_a_broker(tmp_path: Path) -> None:
    proc = run_cli(tmp_path, "demo", "--simulate", "0", WAYBILL_WATCH_PARTITIONS="-7")
    assert proc.returncode == 2
    assert "invalid settings (partitions:" in proc.stderr
    assert "-7" not in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / ".run").exists()  # no broker data dir was made
