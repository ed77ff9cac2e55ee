"""A capture preloaded on ``tracking.raw`` and processed at full speed on the ``stream`` clock
gives exactly replay's anomaly events (contract §6: a worker working through a backlog decides
as if it had kept up). Busy couriers, so ``feed_silence`` is tested across partitions."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from waybill_watch.domain.config import DetectionSettings
from waybill_watch.feeds import build_feeds
from waybill_watch.replay import Replay
from waybill_watch.settings import Settings

from .test_stream_clock_vs_replay import _key, _quiet

WAYBILLS = 520


async def _simulate(out: Path) -> None:
    sim = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "waybill_watch",
        "simulate",
        "--waybills",
        str(WAYBILLS),
        "--seed",
        "23",
        "--out",
        str(out),
        stderr=asyncio.subprocess.PIPE,
    )
    _, stderr = await asyncio.wait_for(sim.communicate(), 300)
    assert sim.returncode == 0, stderr.decode()[-2000:]


async def _preload(bootstrap: str, topic: str, lines: list[bytes]) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, 1, 1)])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=20)
    await producer.start()
    try:
        for line in lines:
            await producer.send(topic, line)
        await producer.flush()
    finally:
        await producer.stop()


async def test_preloaded_capture_at_full_speed_equals_replay(
    worker_factory, kafka_bootstrap, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    capture = tmp_path / "capture.jsonl"
    await _simulate(capture)
    lines = [line for line in capture.read_bytes().splitlines() if line.strip()]
    assert len(lines) >= 5_000

    replay = Replay(DetectionSettings(), build_feeds(Settings(allow_unsigned=True)))
    replay.run(lines)
    replayed: list[dict[str, Any]] = [orjson.loads(e.model_dump_json()) for e in replay.anomalies]
    types = {a["type"] for a in replayed}
    assert {"feed_silence", "transit_stall", "delivery_exception"} <= types, types

    prefix = f"pre{tmp_path.name[-6:].replace('_', '')}."
    await _preload(kafka_bootstrap, f"{prefix}tracking.raw", lines)
    worker = worker_factory(
        prefix,
        WAYBILL_WATCH_CLOCK="stream",
        WAYBILL_WATCH_ALLOW_UNSIGNED="true",
    )
    await worker.wait_ready()
    live = await _quiet(worker, "anomalies", settle=10.0)

    live_keys = {_key(a) for a in live}
    replay_keys = {_key(a) for a in replayed}
    missing, extra = replay_keys - live_keys, live_keys - replay_keys
    assert not missing and not extra, (sorted(missing)[:10], sorted(extra)[:10])
