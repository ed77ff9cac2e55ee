"""Helpers of the tests that compare a live worker with ``waybill-watch replay``: make a
simulated capture, preload it on ``tracking.raw``, read topics back, key anomaly events."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from .conftest import RunningWorker

#: An anomaly event as replay and the worker must agree on it: (anomaly_id, type, status).
AnomalyKey = tuple[str, str, str]
UNSIGNED = {"WAYBILL_WATCH_ALLOW_UNSIGNED": "true"}


def anomaly_key(event: dict[str, Any]) -> AnomalyKey:
    return (event["anomaly_id"], event["type"], event["status"])


def run_cli(*args: str, timeout: float = 300) -> None:
    """``waybill-watch <args>`` with the defaults (no ``WAYBILL_WATCH_*`` of the caller's
    environment) and unsigned envelopes allowed; fails the test when it exits non-zero."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WAYBILL_WATCH_")} | UNSIGNED
    done = subprocess.run(
        [sys.executable, "-m", "waybill_watch", *args],
        env=env,
        capture_output=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode()[-2000:]


def simulate_capture(out: Path, *, waybills: int, seed: int) -> list[bytes]:
    """``waybill-watch simulate`` into ``out``; the capture's envelopes (non-blank lines)."""
    run_cli("simulate", "--waybills", str(waybills), "--seed", str(seed), "--out", str(out))
    return [line for line in out.read_bytes().splitlines() if line.strip()]


async def preload(bootstrap: str, topic: str, lines: list[bytes], *, replication: int = 1) -> None:
    """Create ``topic`` with one partition and write ``lines`` to it, in order."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, 1, replication)])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, linger_ms=20
    )
    await producer.start()
    try:
        for line in lines:
            await producer.send(topic, line)
        await producer.flush()
    finally:
        await producer.stop()


async def dump(bootstrap: str, topic: str, expected: int, timeout: float = 60) -> list[bytes]:
    """The values of ``topic`` from the start, until ``expected`` were read (or ``timeout``)."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="earliest"
    )
    await consumer.start()
    values: list[bytes] = []
    try:
        deadline = time.monotonic() + timeout
        while len(values) < expected and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            for records in batch.values():
                values.extend(r.value for r in records)
    finally:
        await consumer.stop()
    return values


async def quiet(worker: RunningWorker, name: str, settle: float = 8.0) -> list[dict[str, Any]]:
    """Read ``name`` until no new record arrived for ``settle`` seconds."""
    seen: list[dict[str, Any]] = []
    last_change = time.monotonic()

    def until(records: list[dict[str, Any]]) -> bool:
        nonlocal last_change
        if len(records) != len(seen):
            seen[:] = records
            last_change = time.monotonic()
        return time.monotonic() - last_change > settle

    return await worker.read_topic(name, until=until, timeout=240)
