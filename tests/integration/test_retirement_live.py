"""The live worker retires a quiet waybill (marker in the table), ignores its old trace after
that, and deletes the marker later: on the real broker, driven by the stream clock."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from .test_direct_topics import PROCESSED, base_time, canonical, new_waybill

DAY = timedelta(days=1)
RETIRED = "waybill_watch_waybills_retired_total"


async def test_quiet_waybill_is_retired_then_forgotten(worker_factory: Callable[..., Any]) -> None:
    worker = worker_factory(WAYBILL_WATCH_CLOCK="stream", WAYBILL_WATCH_PARTITIONS="1")
    await worker.wait_ready()
    quiet, busy = new_waybill("YT"), new_waybill("YT")
    t0 = base_time()
    trace = [
        canonical(quiet, t0, "out_for_delivery", "【南京鼓楼】派送中"),
        canonical(
            quiet, t0 + timedelta(hours=1), "delivered", "【南京鼓楼】已签收", sign_type="recipient"
        ),
    ]

    async def send(waybill: str, record: bytes) -> None:
        await worker.produce("tracking.events", record, key=waybill.encode())

    for record in trace:
        await send(quiet, record)
    await worker.wait_metric(PROCESSED, lambda v: v >= 2, feed="tracking.events", outcome="new")
    assert await worker.metric(RETIRED, stage="retired") == 0

    # Another waybill's scan 31 days on moves the (single partition's) stream clock past the
    # quiet waybill's 30-day retention.
    await send(busy, canonical(busy, t0 + 31 * DAY, "in_transit", "【南京转运中心】已发出"))
    assert await worker.wait_metric(RETIRED, lambda v: v >= 1, stage="retired") == 1

    # The courier re-sends the old trace: known history, not new scans, nothing opens.
    late = [
        canonical(quiet, t0, "out_for_delivery", "【南京鼓楼】派送中", received_at=t0 + 32 * DAY),
        canonical(
            quiet,
            t0 + timedelta(hours=1),
            "delivered",
            "【南京鼓楼】已签收",
            sign_type="recipient",
            received_at=t0 + 32 * DAY,
        ),
    ]
    for record in late:
        await send(quiet, record)
    duplicates = await worker.wait_metric(
        PROCESSED, lambda v: v >= 2, feed="tracking.events", outcome="duplicate"
    )
    assert duplicates == 2
    assert await worker.metric(PROCESSED, feed="tracking.events", outcome="new") == 3

    # 181 days after retirement the marker itself is deleted.
    await send(busy, canonical(busy, t0 + 213 * DAY, "in_transit", "【南京转运中心】已到达"))
    assert await worker.wait_metric(RETIRED, lambda v: v >= 1, stage="forgotten") == 1
    anomalies = await worker.read_topic("anomalies", until=lambda rs: False, timeout=3)
    assert not [a for a in anomalies if a.get("subject") == quiet]
