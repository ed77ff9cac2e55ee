"""``wall`` clock across a worker outage: while the worker is down, ingest keeps accepting a
busy courier's pushes; after the restart the worker works through the backlog at the pace of
``received_at``, so the courier is not reported silent (replay of the same envelopes opens
nothing either). Without the low watermark the restarted worker's clock would jump past the
silence threshold before the backlog's updates were applied."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime

import orjson

from waybill_watch.domain.config import DetectionSettings
from waybill_watch.feeds import build_feeds
from waybill_watch.replay import Replay
from waybill_watch.settings import Settings

from .captures import anomaly_key, dump, quiet
from .test_recovery import APP_KEY, CST, FORM, _transit_push

SILENCE = {
    "WAYBILL_WATCH_DETECTION__FEED_SILENCE_QUIET_MINUTES": "1",
    "WAYBILL_WATCH_DETECTION__FEED_SILENCE_MIN_UPDATES": "5",
    "WAYBILL_WATCH_DETECTION__FEED_SILENCE_LOOKBACK_MINUTES": "3",
}


async def _push_for(ingest, seconds: float, start: int) -> int:  # type: ignore[no-untyped-def]
    """One push of a new STO waybill every 2 s for ``seconds``; returns how many."""
    sent, deadline = 0, time.monotonic() + seconds
    while time.monotonic() < deadline:
        now = datetime.now(CST).replace(microsecond=0)
        waybill = f"ST77{start + sent:011d}"
        status, _ = await ingest.post("kdniao", _transit_push(waybill, now, now), FORM)
        assert status == 200
        sent += 1
        await asyncio.sleep(2)
    return sent


async def _clocks(worker) -> list[float]:  # type: ignore[no-untyped-def]
    """Each owned waybill partition's clock (epoch seconds)."""
    text = await worker.metrics()
    prefix = "waybill_watch_clock_seconds{"
    return [float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(prefix)]


async def test_outage_longer_than_the_silence_threshold_opens_nothing_spurious(  # type: ignore[no-untyped-def]
    worker_factory, ingest_factory
) -> None:
    env = {"WAYBILL_WATCH_KDNIAO_APP_KEY": APP_KEY, **SILENCE}
    worker = worker_factory(**env)
    await worker.wait_ready()
    ingest = ingest_factory(worker.prefix, **env)
    await ingest.wait_ready()

    sent = await _push_for(ingest, 20, 0)
    await worker.read_topic("tracking.events", until=lambda rs: len(rs) >= sent, timeout=60)
    assert worker.stop() == 0
    sent += await _push_for(ingest, 80, sent)  # longer than the 1-minute silence threshold
    worker.start()
    await worker.wait_ready()
    sent += await _push_for(ingest, 10, sent)
    last_push = time.time()
    await worker.read_topic("tracking.events", until=lambda rs: len(rs) >= sent, timeout=120)
    live = await quiet(worker, "anomalies", settle=8.0)

    # The clock kept up with the pushes after the restart (stuck, it would open nothing and this
    # test would pass by construction): every waybill partition's reaches the last push.
    deadline = time.monotonic() + 60
    clocks = await _clocks(worker)
    while (not clocks or min(clocks) < last_push) and time.monotonic() < deadline:
        await asyncio.sleep(0.5)
        clocks = await _clocks(worker)
    assert clocks and min(clocks) >= last_push, (clocks, last_push)

    raw = await dump(worker.bootstrap, worker.topic("tracking.raw"), sent)
    assert len(raw) == sent
    detection = DetectionSettings(
        feed_silence_quiet_minutes=1, feed_silence_min_updates=5, feed_silence_lookback_minutes=3
    )
    replay = Replay(detection, build_feeds(Settings(allow_unsigned=True)))
    replay.run(sorted(raw, key=lambda line: orjson.loads(line)["received_at"]))
    replayed = {anomaly_key(orjson.loads(e.model_dump_json())) for e in replay.anomalies}

    assert not [a for a in live if a["type"] == "feed_silence"], live
    assert {anomaly_key(a) for a in live} <= replayed
