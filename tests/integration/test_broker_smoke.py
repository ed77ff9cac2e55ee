"""The pinned broker version works with aiokafka for what waybill-watch relies on:
partitioned produce/consume, consumer-group offsets, and transactions (read_committed).

Kafka 4.x dropped old protocol versions and aiokafka's CI stops at Kafka 2.8, so these
are checked against the real broker rather than assumed.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition

pytestmark = pytest.mark.integration

WAIT_S = 30.0
UniqueName = Callable[[str], str]
CreateTopics = Callable[[str, Sequence[str], int], Awaitable[None]]


async def _drain(
    consumer: AIOKafkaConsumer, count: int, within: float = WAIT_S
) -> list[ConsumerRecord]:
    """Read until ``count`` records arrived or ``within`` seconds passed (never forever)."""
    records: list[ConsumerRecord] = []
    deadline = time.monotonic() + within
    while len(records) < count and time.monotonic() < deadline:
        batches = await consumer.getmany(timeout_ms=200, max_records=count - len(records))
        for batch in batches.values():
            records.extend(batch)
    return records


async def _produce(bootstrap: str, topic: str, values: Sequence[str]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for value in values:
            await producer.send_and_wait(topic, value.encode())
    finally:
        await producer.stop()


async def test_round_trip_on_three_partitions(
    kafka_bootstrap: str, unique_name: UniqueName, create_topics: CreateTopics
) -> None:
    topic = unique_name("smoke-roundtrip")
    await create_topics(kafka_bootstrap, [topic], 3)
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    await producer.start()
    try:
        sent: dict[int, list[bytes]] = {0: [], 1: [], 2: []}
        for i in range(30):
            value = f"value-{i}".encode()
            meta = await producer.send_and_wait(topic, value, key=f"k{i}".encode(), partition=i % 3)
            sent[meta.partition].append(value)
    finally:
        await producer.stop()

    consumer = AIOKafkaConsumer(bootstrap_servers=kafka_bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in range(3)]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        records = await _drain(consumer, 30)
    finally:
        await consumer.stop()

    assert len(records) == 30
    received = {p: [r.value for r in records if r.partition == p] for p in range(3)}
    assert received == sent  # every record, each partition in produce order
    assert all(len(values) == 10 for values in received.values())


async def test_group_resumes_after_committed_offset(
    kafka_bootstrap: str, unique_name: UniqueName, create_topics: CreateTopics
) -> None:
    topic, group = unique_name("smoke-group"), unique_name("smoke-group")
    await create_topics(kafka_bootstrap, [topic], 1)
    await _produce(kafka_bootstrap, topic, [f"m{i}" for i in range(10)])
    tp = TopicPartition(topic, 0)

    first = _group_consumer(kafka_bootstrap, topic, group)
    await first.start()
    try:
        head = await _drain(first, 4)
        assert [r.value for r in head] == [b"m0", b"m1", b"m2", b"m3"]
        await first.commit({tp: head[-1].offset + 1})
        assert await first.committed(tp) == 4
    finally:
        await first.stop()

    second = _group_consumer(kafka_bootstrap, topic, group)
    await second.start()
    try:
        rest = await _drain(second, 6)
    finally:
        await second.stop()
    assert [r.value for r in rest] == [f"m{i}".encode() for i in range(4, 10)]


def _group_consumer(bootstrap: str, topic: str, group: str) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )


async def test_transactions_hide_aborted_records(
    kafka_bootstrap: str, unique_name: UniqueName, create_topics: CreateTopics
) -> None:
    topic = unique_name("smoke-txn")
    await create_topics(kafka_bootstrap, [topic], 1)
    producer = AIOKafkaProducer(
        bootstrap_servers=kafka_bootstrap, transactional_id=unique_name("smoke-txn-id")
    )
    await producer.start()
    try:
        async with producer.transaction():
            for value in (b"c1", b"c2"):
                await producer.send_and_wait(topic, value)
        await producer.begin_transaction()
        for value in (b"a1", b"a2"):
            await producer.send_and_wait(topic, value)
        await producer.abort_transaction()
        async with producer.transaction():
            await producer.send_and_wait(topic, b"c3")
    finally:
        await producer.stop()

    committed = await _read_all(kafka_bootstrap, topic, "read_committed", expect=3)
    assert committed == [b"c1", b"c2", b"c3"]
    # The aborted records did reach the log: a read_uncommitted reader sees them.
    everything = await _read_all(kafka_bootstrap, topic, "read_uncommitted", expect=5)
    assert everything == [b"c1", b"c2", b"a1", b"a2", b"c3"]


async def _read_all(bootstrap: str, topic: str, isolation: str, expect: int) -> list[bytes]:
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        isolation_level=isolation,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        records = await _drain(consumer, expect)
        # Nothing more may follow (a leaked aborted record would show up here).
        records += await _drain(consumer, 1, within=1.0)
    finally:
        await consumer.stop()
    return [r.value for r in records]
