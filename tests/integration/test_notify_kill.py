"""SIGKILL the notifier mid-stream, again and again: no message lost, and a channel that
acknowledged a message gets it again only through the one window the design leaves (killed
between the receiver's acknowledgement and the delivered mark), with the same delivery id.
The receivers live in the test, so they count across the kills."""

from __future__ import annotations

import asyncio
import signal
import time
import uuid
from datetime import timedelta
from pathlib import Path

import orjson
import psycopg
from aiokafka import AIOKafkaProducer

from waybill_watch.notify import core
from waybill_watch.notify.store import delivery_id
from waybill_watch.settings import Settings
from waybill_watch.timefmt import local_now
from waybill_watch.worker.topics import ensure_topics

from ..unit.cases.factory import event
from ..unit.notify.receivers import channel_entry, start_receivers
from .conftest import RunningWorker
from .notify_helpers import notify_process, write_rules

ANOMALIES = 200
CASE_EVENTS = 40
KILLS = 4
CHANNELS = {"hook": "webhook", "lark": "feishu"}


def records() -> tuple[list[tuple[str, bytes, bytes]], list[str]]:
    """(topic name, key, value) for every record, each twice; and the dedupe keys."""
    now = local_now().replace(microsecond=0)
    out: list[tuple[str, bytes, bytes]] = []
    keys: list[str] = []
    for i in range(ANOMALIES):
        anomaly = event(
            "delivery_exception",
            waybill=f"KN{i:06d}",
            severity="high",
            at=now + timedelta(seconds=i),
            actions=False,
        )
        keys.append(core.dedupe_key(anomaly))
        out += [("anomalies", anomaly.subject.encode(), anomaly.model_dump_json().encode())] * 2
    for i in range(CASE_EVENTS):
        case = {
            "event": "step_overdue",
            "event_id": f"kill-{i}",
            "case_id": f"CKILL{i:011d}",
            "subject": f"KN{i:06d}",
            "scope": "waybill",
            "type": "delivery_exception",
            "severity": "high",
            "step": "contact_recipient",
            "due_at": now.isoformat(),
            "at": now.isoformat(),
        }
        keys.append(f"case:kill-{i}")
        out += [("cases.events", case["case_id"].encode(), orjson.dumps(case))] * 2
    return out, keys


async def rows_by_state(url: str) -> dict[str, int]:
    async with await psycopg.AsyncConnection.connect(url) as conn:
        cursor = await conn.execute("SELECT state, count(*) FROM notify_messages GROUP BY state")
        return {str(s): int(n) for s, n in await cursor.fetchall()}


async def test_sigkill_mid_stream_loses_nothing(
    kafka_bootstrap: str, database_url: str, tmp_path: Path
) -> None:
    prefix = f"nk{uuid.uuid4().hex[:10]}."
    settings = Settings(kafka_bootstrap_servers=kafka_bootstrap, topic_prefix=prefix, partitions=4)
    await ensure_topics(settings)
    receivers = await start_receivers(*CHANNELS.values(), delay=0.02)
    rules = write_rules(
        tmp_path,
        {
            name: channel_entry(
                receivers[kind], timeout="1s", retry_base="100ms", rate_per_minute=60000, burst=100
            )
            for name, kind in CHANNELS.items()
        },
        [{"name": "all", "channels": list(CHANNELS)}],
    )
    all_records, keys = records()
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all", linger_ms=20)
    await producer.start()
    try:
        for topic, key, value in all_records:
            await producer.send(settings.topic(topic), value, key=key)
        await producer.flush()
    finally:
        await producer.stop()

    def acknowledged() -> int:
        return sum(len(r.acknowledged) for r in receivers.values())

    expected = len(keys) * len(CHANNELS)
    runs: list[RunningWorker] = []
    try:
        for kill in range(KILLS):
            process = notify_process(
                kafka_bootstrap, prefix, database_url, tmp_path, rules, name=f"notify-{kill}"
            ).start()
            runs.append(process)
            before = acknowledged()
            deadline = time.monotonic() + 90
            while acknowledged() < before + 40 and time.monotonic() < deadline:
                assert process.proc is not None and process.proc.poll() is None, process.log_tail()
                await asyncio.sleep(0.01)
            process.stop(signal.SIGKILL)
        assert acknowledged() < expected, "the kills must land mid-stream"

        final = notify_process(
            kafka_bootstrap, prefix, database_url, tmp_path, rules, name="notify-final"
        ).start()
        runs.append(final)
        await final.wait_ready()
        # every message marked delivered: also those the kills left leased (sent again
        # once their lease expired: timeout x claim + 10 s)
        deadline = time.monotonic() + 120
        while (  # noqa: ASYNC110
            await rows_by_state(database_url) != {"delivered": expected}
            and time.monotonic() < deadline
        ):
            await asyncio.sleep(0.5)
        await asyncio.sleep(3)  # anything sent twice would arrive now
        assert final.stop() == 0, final.log_tail()

        resent: dict[str, int] = {}
        for name, kind in CHANNELS.items():
            counts = receivers[kind].counts()
            assert set(counts) == {delivery_id(name, k) for k in keys}, f"{name} lost messages"
            assert receivers[kind].bad_signatures == 0
            resent[name] = sum(n - 1 for n in counts.values())
        print(f"NOTIFY-KILL kills={KILLS} deliveries={expected} resent={resent}")
        # at most one message in flight per channel when a kill lands
        assert all(n <= KILLS for n in resent.values()), resent
        assert await rows_by_state(database_url) == {"delivered": expected}
    finally:
        for process in runs:
            process.stop(signal.SIGKILL)
        for r in receivers.values():
            await r.stop()
