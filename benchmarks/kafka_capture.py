"""Captured traffic on Kafka, for benchmarks that time a consumer against it.

- :func:`preload`: create a topic of N partitions and produce every envelope of a capture file
  (JSON Lines; each line without its newline) or of a list of envelope bytes onto it, keyless
  (spread over the partitions), acks=all; returns how many.
- :func:`wait_lag_zero`: poll until a consumer group's lag on the given topics is 0 (and,
  optionally, given output topics hold at least so many records); returns the ``time.time()``
  of the poll that saw it, so it compares with times taken in another process.

Lag counts from offset 0 (a partition the group has not committed yet lags by its end offset)
and output counts are end offsets: both assume fresh topics written without transactions.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.structs import TopicPartition

from waybill_watch.devbroker import LocalBroker

IN_FLIGHT = 1000  # sends awaited together while preloading


def bench_kafka() -> tuple[str, LocalBroker | None]:
    """The Kafka a benchmark runs on: ``KAFKA_BOOTSTRAP_SERVERS`` when set, else a local broker
    started now (returned, for the caller to stop; ``None`` when it is not ours)."""
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if bootstrap:
        return bootstrap, None
    broker = LocalBroker()
    return broker.start(), broker


def read_capture(path: Path) -> list[bytes]:
    """The envelopes of a capture file (JSON Lines), each without its newline."""
    with path.open("rb") as handle:
        return [line.rstrip(b"\n") for line in handle if line.strip()]


async def create_topic(bootstrap: str, topic: str, partitions: int, timeout: float = 30) -> None:
    """Create ``topic`` (replication factor 1) and wait until every partition has a leader;
    an existing topic is an error (it would not be fresh)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        response = await admin.create_topics([NewTopic(topic, partitions, 1)])
        for name, code, *_ in response.topic_errors:
            if code:
                raise RuntimeError(f"creating topic {name} failed (error code {code})")
        deadline = time.monotonic() + timeout
        while True:
            (meta,) = await admin.describe_topics([topic])
            if not meta["error_code"] and all(p["leader"] >= 0 for p in meta["partitions"]):
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"topic {topic} has no leader for every partition")
            await asyncio.sleep(0.1)
    finally:
        await admin.close()


async def preload(
    bootstrap: str, topic: str, envelopes: Path | Iterable[bytes], *, partitions: int = 8
) -> int:
    """Create ``topic`` with ``partitions`` and produce every envelope onto it; how many."""
    records = read_capture(envelopes) if isinstance(envelopes, Path) else envelopes
    await create_topic(bootstrap, topic, partitions)
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, linger_ms=5
    )
    await producer.start()
    count = 0
    try:
        pending: list[asyncio.Future[Any]] = []
        for value in records:
            pending.append(await producer.send(topic, value))
            count += 1
            if len(pending) >= IN_FLIGHT:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return count


async def _end_offsets(
    admin: AIOKafkaAdminClient, consumer: AIOKafkaConsumer, topics: Iterable[str]
) -> dict[TopicPartition, int] | None:
    """End offset of every partition of ``topics``; None while one of them does not exist."""
    tps = []
    for meta in await admin.describe_topics(list(topics)):
        if meta["error_code"] or not meta["partitions"]:
            return None
        tps += [TopicPartition(meta["topic"], p["partition"]) for p in meta["partitions"]]
    return dict(await consumer.end_offsets(tps))


async def wait_lag_zero(
    bootstrap: str,
    group: str,
    topics: Sequence[str],
    *,
    outputs: Mapping[str, int] | None = None,
    timeout: float = 600.0,
    interval: float = 0.05,
    check: Callable[[], None] | None = None,
) -> float:
    """Poll every ``interval`` s until ``group`` has committed the end of every partition of
    ``topics`` and each topic in ``outputs`` holds at least its count of records; return the
    ``time.time()`` of that poll. ``check()`` runs before each poll (raise to give up, e.g.
    when the consumer process died); TimeoutError after ``timeout`` s."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await admin.start()
    await consumer.start()
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if check is not None:
                check()
            if await _done(admin, consumer, group, topics, outputs or {}):
                return time.time()
            await asyncio.sleep(interval)
        raise TimeoutError(f"group {group} still lags on {list(topics)} after {timeout:.0f} s")
    finally:
        await consumer.stop()
        await admin.close()


async def _done(
    admin: AIOKafkaAdminClient,
    consumer: AIOKafkaConsumer,
    group: str,
    topics: Sequence[str],
    outputs: Mapping[str, int],
) -> bool:
    for topic, expected in outputs.items():
        ends = await _end_offsets(admin, consumer, [topic])
        if ends is None or sum(ends.values()) < expected:
            return False
    ends = await _end_offsets(admin, consumer, topics)
    if ends is None:
        return False
    committed = await admin.list_consumer_group_offsets(group, partitions=list(ends))
    return all(end <= max(getattr(committed.get(tp), "offset", -1), 0) for tp, end in ends.items())
