"""A capture preloaded on ``tracking.raw`` and processed at full speed on the ``stream`` clock
gives exactly replay's anomaly events (contract §6: a worker working through a backlog decides
as if it had kept up). Busy couriers, so ``feed_silence`` is tested across partitions."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson

from waybill_watch.domain.config import DetectionSettings
from waybill_watch.feeds import build_feeds
from waybill_watch.replay import Replay
from waybill_watch.settings import Settings

from .captures import anomaly_key, preload, quiet, simulate_capture

WAYBILLS = 520


async def test_preloaded_capture_at_full_speed_equals_replay(
    worker_factory, kafka_bootstrap, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    lines = await asyncio.to_thread(
        simulate_capture, tmp_path / "capture.jsonl", waybills=WAYBILLS, seed=23
    )
    assert len(lines) >= 5_000

    replay = Replay(DetectionSettings(), build_feeds(Settings(allow_unsigned=True)))
    replay.run(lines)
    replayed: list[dict[str, Any]] = [orjson.loads(e.model_dump_json()) for e in replay.anomalies]
    types = {a["type"] for a in replayed}
    assert {"feed_silence", "transit_stall", "delivery_exception"} <= types, types

    prefix = f"pre{tmp_path.name[-6:].replace('_', '')}."
    await preload(kafka_bootstrap, f"{prefix}tracking.raw", lines)
    worker = worker_factory(
        prefix,
        WAYBILL_WATCH_CLOCK="stream",
        WAYBILL_WATCH_ALLOW_UNSIGNED="true",
    )
    await worker.wait_ready()
    live = await quiet(worker, "anomalies", settle=10.0)

    live_keys = {anomaly_key(a) for a in live}
    replay_keys = {anomaly_key(a) for a in replayed}
    missing, extra = replay_keys - live_keys, live_keys - replay_keys
    assert not missing and not extra, (sorted(missing)[:10], sorted(extra)[:10])
