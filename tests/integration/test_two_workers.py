"""Two workers in one group: the waybills are shared between them, a site-level window sees the
signatures of both (re-keyed through Kafka, not a process-local dict), and when one worker
leaves, its partitions move to the other, whose restored deadline index fires every stall."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from .test_direct_topics import PROCESSED, canonical

SHANGHAI = ZoneInfo("Asia/Shanghai")
STALLING, SIGNED = 12, 8
ASSIGNED = "waybill_watch_partitions_assigned"
ENV = {
    "WAYBILL_WATCH_PARTITIONS": "4",
    # 36 s: long enough to stop a worker first, short enough to wait for.
    "WAYBILL_WATCH_DETECTION__TRANSIT_STALL_HOURS": "0.01",
    "WAYBILL_WATCH_DETECTION__BULK_SIGNING_THRESHOLD": "6",
}


def opens(records: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [r for r in records if r["type"] == kind and r["status"] == "open"]


async def test_two_workers_share_waybills_and_survive_a_partition_move(
    worker_factory: Callable[..., Any],
) -> None:
    prefix = f"t{uuid.uuid4().hex[:10]}."
    first = worker_factory(prefix, **ENV)
    await first.wait_ready()
    second = worker_factory(prefix, **ENV)
    await second.wait_ready()
    # The group has settled when the two members' partitions add up to all four.
    for worker in (first, second):
        await worker.wait_metric(ASSIGNED, lambda v: v > 0, timeout=60)
    for _ in range(120):  # a member reports its new share on its next loop turn
        if await first.metric(ASSIGNED) + await second.metric(ASSIGNED) == 4:
            break
        await asyncio.sleep(0.5)
    assert await first.metric(ASSIGNED) + await second.metric(ASSIGNED) == 4

    now = datetime.now(SHANGHAI).replace(microsecond=0)
    window = now - timedelta(minutes=now.minute % 10, seconds=now.second)  # this 10-min window
    tag = uuid.uuid4().hex[:8].upper()
    stalling = [f"YT{tag}S{i:03d}" for i in range(STALLING)]
    signed = [f"YT{tag}D{i:03d}" for i in range(SIGNED)]
    records = [
        (w, canonical(w, now, "in_transit", "【南京转运中心】已发出", received_at=now))
        for w in stalling
    ]
    records += [
        (
            w,
            canonical(
                w,
                window + timedelta(seconds=i),
                "delivered",
                "【南京鼓楼】已签收，签收人：本人",
                sign_type="recipient",
                received_at=now,
            ),
        )
        for i, w in enumerate(signed)
    ]
    for waybill, record in records:
        await first.produce("tracking.events", record, key=waybill.encode())

    total = len(records)

    async def processed(worker: Any) -> float:
        return float(await worker.metric(PROCESSED, feed="tracking.events", outcome="new"))

    deadline = asyncio.get_running_loop().time() + 30
    while asyncio.get_running_loop().time() < deadline:
        if await processed(first) + await processed(second) >= total:
            break
        await asyncio.sleep(0.25)
    by_first, by_second = await processed(first), await processed(second)
    assert by_first + by_second == total
    assert by_first > 0 and by_second > 0, "both workers must own partitions"

    # The first worker leaves before any stall is due; its partitions move to the second.
    assert first.stop() == 0
    anomalies = await second.read_topic(
        "anomalies",
        until=lambda rs: len(opens(rs, "transit_stall")) >= STALLING,
        timeout=120,
    )
    stalls = Counter(r["subject"] for r in opens(anomalies, "transit_stall"))
    assert stalls == Counter(stalling), second.log_tail()  # each once, the moved ones included
    [bulk] = opens(anomalies, "bulk_signing")  # one window, signatures from both workers
    assert bulk["subject"] == "YTO:南京鼓楼"
    assert bulk["evidence"]["count"] >= 6
