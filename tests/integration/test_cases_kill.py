"""SIGKILL the case service mid-stream, again and again: no anomaly lost, none applied
twice, no case event lost or published twice (read_committed)."""

from __future__ import annotations

import asyncio
import signal
import time
import uuid
from datetime import timedelta
from pathlib import Path

import psycopg
from aiokafka import AIOKafkaProducer

from waybill_watch.cases.core import case_id_for
from waybill_watch.worker.topics import TopicNames

from ..unit.cases.factory import T0, event
from .cases_helpers import case_process
from .conftest import RunningWorker

WAYBILLS = 1500
KILLS = 4


def records() -> list[tuple[bytes, bytes]]:
    """Every waybill opens a delivery_exception; each record is sent twice (a redelivery);
    every third waybill's episode resolves afterwards (the case closes by itself)."""
    out: list[tuple[bytes, bytes]] = []
    for i in range(WAYBILLS):
        opened = event(
            "delivery_exception",
            waybill=f"KW{i:06d}",
            merchant=f"shop-{i % 7}",
            severity="high",
            at=T0 + timedelta(seconds=i),
            actions=False,
        )
        out += [(opened.subject.encode(), opened.model_dump_json().encode())] * 2
    for i in range(0, WAYBILLS, 3):
        resolved = event(
            "delivery_exception",
            "resolved",
            waybill=f"KW{i:06d}",
            at=T0 + timedelta(hours=1, seconds=i),
            evidence={"resolved_by": {"scans": [{"status": "delivered"}]}},
        )
        out.append((resolved.subject.encode(), resolved.model_dump_json().encode()))
    return out


async def count_cases(url: str) -> int:
    async with await psycopg.AsyncConnection.connect(url) as conn:
        try:
            cursor = await conn.execute("SELECT count(*) FROM cases")
        except psycopg.errors.UndefinedTable:
            return 0
        row = await cursor.fetchone()
        return int(row[0]) if row else 0


async def test_sigkill_mid_stream_loses_and_doubles_nothing(
    kafka_bootstrap: str, database_url: str, tmp_path: Path
) -> None:
    prefix = f"k{uuid.uuid4().hex[:10]}."
    from waybill_watch.settings import Settings
    from waybill_watch.worker.topics import ensure_topics

    settings = Settings(kafka_bootstrap_servers=kafka_bootstrap, topic_prefix=prefix, partitions=4)
    names: TopicNames = await ensure_topics(settings)
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all", linger_ms=20)
    await producer.start()
    try:
        for key, value in records():
            await producer.send(names.anomalies, value, key=key)
        await producer.flush()
    finally:
        await producer.stop()

    kills = 0
    runs: list[RunningWorker] = []
    while kills < KILLS:
        process = case_process(
            kafka_bootstrap, prefix, database_url, tmp_path, name=f"cases-{kills}"
        ).start()
        runs.append(process)
        before = await count_cases(database_url)
        deadline = time.monotonic() + 90
        while await count_cases(database_url) < before + 60 and time.monotonic() < deadline:
            assert process.proc is not None and process.proc.poll() is None, process.log_tail()
            await asyncio.sleep(0.05)
        process.stop(signal.SIGKILL)
        kills += 1
    assert await count_cases(database_url) < WAYBILLS, "the kills must land mid-stream"

    final = case_process(kafka_bootstrap, prefix, database_url, tmp_path, name="cases-final")
    final.start()
    await final.wait_ready()
    expected_events = WAYBILLS + len(range(0, WAYBILLS, 3))
    published = await final.read_topic(
        "cases.events", until=lambda rs: len(rs) >= expected_events, committed=True, timeout=120
    )
    # a little longer: anything published twice would show up now
    published = await final.read_topic(
        "cases.events", until=lambda rs: len(rs) > expected_events, committed=True, timeout=5
    )
    assert final.stop() == 0

    ids = [e["event_id"] for e in published]
    assert len(ids) == len(set(ids)), "a case event was published twice"
    opened = {e["case_id"] for e in published if e["event"] == "opened"}
    closed = {e["case_id"] for e in published if e["event"] == "closed"}
    assert opened == {case_id_for(f"waybill:KW{i:06d}") for i in range(WAYBILLS)}
    assert closed == {case_id_for(f"waybill:KW{i:06d}") for i in range(0, WAYBILLS, 3)}
    assert len(published) == expected_events

    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        cursor = await conn.execute(
            "SELECT status, count(*) FROM cases GROUP BY status ORDER BY status"
        )
        assert await cursor.fetchall() == [
            ("closed", len(closed)),
            ("open", WAYBILLS - len(closed)),
        ]
        # each episode remembers each event it applied once: no record applied twice
        cursor = await conn.execute(
            "SELECT count(*) FROM cases, jsonb_array_elements(doc -> 'anomalies') a,"
            " jsonb_array_elements_text(a -> 'seen') s"
        )
        row = await cursor.fetchone()
        assert row is not None and row[0] == WAYBILLS + len(closed)
        cursor = await conn.execute("SELECT count(*) FROM outbox")
        row = await cursor.fetchone()
        assert row is not None and row[0] == 0
