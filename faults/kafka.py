"""Kafka helpers of the verifier: read a topic from the start, a group's lag, raw writes."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.structs import ConsumerRecord, TopicPartition


async def read_all(
    bootstrap: str,
    topic: str,
    *,
    committed: bool = True,
    complete: Callable[[list[ConsumerRecord]], bool] | None = None,
    timeout: float = 90,
    settle: float = 5,
) -> list[ConsumerRecord]:
    """Every record of ``topic`` from the start (``read_committed`` unless told otherwise)
    until ``complete(records)`` holds and nothing new came for ``settle`` s, or ``timeout``."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        isolation_level="read_committed" if committed else "read_uncommitted",
    )
    await consumer.start()
    records: list[ConsumerRecord] = []
    try:
        deadline = time.monotonic() + timeout
        quiet_since = time.monotonic()
        while time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            got = [m for messages in batch.values() for m in messages]
            if got:
                records.extend(got)
                quiet_since = time.monotonic()
            done = complete is None or complete(records)
            if done and time.monotonic() - quiet_since >= settle:
                break
    finally:
        await consumer.stop()
    records.sort(key=lambda r: (r.partition, r.offset))
    return records


async def group_lag(bootstrap: str, group: str, topic: str) -> int | None:
    """Records of ``topic`` (every partition) the group has not committed; None when the
    cluster cannot say right now."""
    try:
        return await asyncio.wait_for(_group_lag(bootstrap, group, topic), 15)
    except Exception:
        return None


async def _group_lag(bootstrap: str, group: str, topic: str) -> int:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    await admin.start()
    await consumer.start()
    try:
        (meta,) = await admin.describe_topics([topic])
        if meta["error_code"] or not meta["partitions"]:
            raise RuntimeError(f"no topic {topic}")
        tps = [TopicPartition(topic, p["partition"]) for p in meta["partitions"]]
        ends = await consumer.end_offsets(tps)
        offsets = await admin.list_consumer_group_offsets(group, partitions=tps)
    finally:
        await consumer.stop()
        await admin.close()
    lag = 0
    for tp in tps:
        meta = offsets.get(tp)
        done = meta.offset if meta is not None and meta.offset >= 0 else 0
        lag += max(0, ends[tp] - done)
    return lag


async def produce(bootstrap: str, topic: str, values: list[bytes]) -> None:
    """Write ``values`` to ``topic`` in order (acks=all, idempotent)."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        for value in values:
            await producer.send_and_wait(topic, value)
    finally:
        await producer.stop()
