"""The case relay's crash recovery reads the tail of ``cases.events`` on a real broker, and a
client whose metadata does not (yet) list the topic must not read as "nothing published".

Regression: ``test_cases_kill`` under load once saw a committed batch of 250 case events
published twice; ``published_ids`` returned an empty set whenever the consumer's metadata
lacked the topic, and the relay then sent every pending row again."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import TopicPartition

from waybill_watch.cases.runtime import OUTBOX_HEADER, published_ids


async def _publish(bootstrap: str, topic: str, ids: range) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, transactional_id=f"{topic}-relay")
    await producer.start()
    try:
        async with producer.transaction():
            for i in ids:
                await producer.send(
                    topic, b"{}", key=f"case-{i}".encode(), headers=[(OUTBOX_HEADER, b"%d" % i)]
                )
    finally:
        await producer.stop()
    await _stable(bootstrap, topic)


async def _stable(bootstrap: str, topic: str, timeout: float = 30) -> None:
    """Wait until the commit markers are written (each partition's last stable offset is its
    end): ``commit_transaction`` returns before the coordinator writes them, and until then a
    read_committed reader rightly sees nothing of the transaction."""
    committed = AIOKafkaConsumer(bootstrap_servers=bootstrap, isolation_level="read_committed")
    everything = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await committed.start()
    await everything.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(4)]
        deadline = time.monotonic() + timeout
        while await committed.end_offsets(tps) != await everything.end_offsets(tps):
            assert time.monotonic() < deadline, "the transaction's markers never came"
            await asyncio.sleep(0.1)
    finally:
        await committed.stop()
        await everything.stop()


async def test_tail_read_finds_committed_ids(
    kafka_bootstrap: str, unique_name: Any, create_topics: Any
) -> None:
    topic = unique_name("cases.events")
    await create_topics(kafka_bootstrap, [topic], 4)
    await _publish(kafka_bootstrap, topic, range(1, 41))
    assert await published_ids(kafka_bootstrap, topic, window=100) == set(range(1, 41))


async def test_metadata_without_the_topic_is_refreshed_not_read_as_empty(
    kafka_bootstrap: str, unique_name: Any, create_topics: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    topic = unique_name("cases.events")
    await create_topics(kafka_bootstrap, [topic], 4)
    await _publish(kafka_bootstrap, topic, range(1, 21))
    original = AIOKafkaConsumer.partitions_for_topic
    calls: list[str] = []

    def first_unknown(self: AIOKafkaConsumer, name: str) -> Any:
        calls.append(name)
        return None if len(calls) == 1 else original(self, name)

    monkeypatch.setattr(AIOKafkaConsumer, "partitions_for_topic", first_unknown)
    assert await published_ids(kafka_bootstrap, topic, window=100) == set(range(1, 21))
    assert len(calls) >= 2  # it asked again instead of returning nothing
