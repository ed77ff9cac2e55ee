"""What the downstream services' ``anomalies`` / ``cases.events`` consumers share: dead
letters for records that are not what the topic promises, and consumer lag."""

from __future__ import annotations

from datetime import datetime

from aiokafka import AIOKafkaConsumer
from aiokafka.structs import ConsumerRecord, TopicPartition

from waybill_watch.models.dlq import DlqRecord
from waybill_watch.worker.outputs import payload_text


def dead_letter(
    topic: str,
    record: ConsumerRecord[bytes, bytes],
    reason: str,
    error: str,
    now: datetime,
) -> DlqRecord:
    """The ``tracking.dlq`` record for a rejected input record (its bytes kept as text or
    base64)."""
    text, encoding = payload_text(record.value or b"")
    return DlqRecord(
        reason=reason,
        error=error,
        source_topic=topic,
        rejected_at=now,
        key=payload_text(record.key)[0] if record.key is not None else None,
        payload=text,
        payload_encoding=encoding,
    )


async def consumer_lag(consumer: AIOKafkaConsumer) -> dict[TopicPartition, int]:
    """Records not yet consumed per assigned partition (to the last stable offset under
    read_committed, else the high watermark); partitions without metadata yet are left out."""
    lag: dict[TopicPartition, int] = {}
    for tp in consumer.assignment():
        end = consumer.last_stable_offset(tp)
        if end is None:
            end = consumer.highwater(tp)
        if end is None:
            continue
        lag[tp] = max(0, end - await consumer.position(tp))
    return lag
