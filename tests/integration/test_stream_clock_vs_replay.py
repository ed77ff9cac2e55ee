"""The live worker with the ``stream`` clock and ``replay`` give the same anomalies.

A simulated capture is pushed through HTTP → ``tracking.raw`` → the worker; then the topic is
dumped (that dump *is* the capture of what was received, contract §3) and replayed in-process.
Both must produce the same set of anomaly events (id, type, status).
"""

from __future__ import annotations

import asyncio
import sys

import orjson

from waybill_watch.domain.config import DetectionSettings
from waybill_watch.feeds import build_feeds
from waybill_watch.replay import Replay
from waybill_watch.settings import Settings

from .captures import anomaly_key, dump, quiet

WAYBILLS = 600


async def test_stream_clock_worker_matches_replay(worker_factory, tmp_path) -> None:  # type: ignore[no-untyped-def]
    # One tracking.raw partition: pushes are normalised in the order they were received, which
    # is the order replay reads the dump in (with several, two pushes of one waybill a few ms
    # apart may be normalised in either order; see docs/detection.md).
    worker = worker_factory(
        WAYBILL_WATCH_CLOCK="stream",
        WAYBILL_WATCH_ALLOW_UNSIGNED="true",
        WAYBILL_WATCH_RAW_PARTITIONS="1",
    )
    await worker.wait_ready()
    env = {k: v for k, v in worker.env.items() if "SECRET" not in k and "KEY" not in k}
    sim = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "waybill_watch",
        "simulate",
        "--waybills",
        str(WAYBILLS),
        "--seed",
        "11",
        "--http",
        worker.base_url,
        "--concurrency",
        "1",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, stderr = await asyncio.wait_for(sim.communicate(), 600)
    assert sim.returncode == 0, stderr.decode()[-2000:]
    summary = orjson.loads(stderr)
    sent = summary["stats"]["envelopes"]

    raw = await dump(worker.bootstrap, worker.topic("tracking.raw"), sent)
    assert len(raw) == sent
    live = await quiet(worker, "anomalies")

    envelopes = sorted(raw, key=lambda line: orjson.loads(line)["received_at"])
    replay = Replay(DetectionSettings(), build_feeds(Settings(allow_unsigned=True)))
    replay.run(envelopes)
    replayed = [orjson.loads(e.model_dump_json()) for e in replay.anomalies]

    assert replayed, "the simulated capture must produce anomalies"
    assert {a["type"] for a in replayed} >= {"delivery_exception", "transit_stall"}

    assert sorted({anomaly_key(a) for a in live}) == sorted({anomaly_key(a) for a in replayed})


async def test_stream_clock_refuses_a_multi_partition_raw_topic(worker_factory) -> None:  # type: ignore[no-untyped-def]
    worker = worker_factory(WAYBILL_WATCH_CLOCK="stream", WAYBILL_WATCH_RAW_PARTITIONS="4")
    assert worker.proc is not None
    code = await asyncio.to_thread(worker.proc.wait, 90)
    assert code == 2
    assert "needs" in worker.log_tail() and "exactly one partition" in worker.log_tail()
