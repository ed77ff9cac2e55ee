"""Which worker owns a waybill's partition, and where to reach it.

A waybill's state lives in partition ``murmur2(waybill) % partitions`` of the updates topic
(Kafka's default partitioner, which the worker's producer uses), in the RocksDB of whichever
worker the consumer group assigned it to. Each worker names its HTTP address in its consumer's
``client.id`` (``waybill-watch <url>``); the group's description (Kafka's DescribeGroups: every
member's client id and assignment) maps partitions to those addresses. It is cached for a
moment and re-read on a miss, so a rebalance costs one retry, not a stale answer.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from aiokafka.partitioner import murmur2

from waybill_watch.kafka_client import KafkaConnection, as_connection

CLIENT_ID_PREFIX = "waybill-watch "
#: How long a group description is trusted before it is read again.
CACHE_S = 2.0


def partition_of(waybill: str, partitions: int) -> int:
    """The updates partition of a waybill (murmur2, positive, modulo the partition count)."""
    return (murmur2(waybill.encode()) & 0x7FFFFFFF) % partitions


def client_id(url: str) -> str:
    """The consumer ``client.id`` that advertises a worker's query URL."""
    return CLIENT_ID_PREFIX + url


@dataclass(frozen=True)
class Owners:
    """Partition → owner URL, as of ``read_at`` (monotonic)."""

    by_partition: dict[int, str]
    read_at: float


class OwnerDirectory:
    """The group's current partition owners (confluent-kafka's admin client, thread-safe)."""

    def __init__(self, kafka: str | KafkaConnection, group: str, topic: str) -> None:
        from confluent_kafka.admin import AdminClient

        self._admin = AdminClient(as_connection(kafka).librdkafka_config())
        self.group = group
        self.topic = topic
        self._lock = threading.Lock()
        self._owners = Owners({}, 0.0)

    def owner(self, partition: int, *, refresh: bool = False) -> str | None:
        """The URL of the worker owning ``partition`` (``None`` while nobody does)."""
        owners = self._owners
        stale = time.monotonic() - owners.read_at > CACHE_S
        if refresh or stale or partition not in owners.by_partition:
            owners = self._read()
        return owners.by_partition.get(partition)

    def _read(self) -> Owners:
        with self._lock:
            if time.monotonic() - self._owners.read_at < 0.2:  # another thread just read it
                return self._owners
            future = self._admin.describe_consumer_groups([self.group], request_timeout=5)[
                self.group
            ]
            description = future.result(timeout=10)
            found: dict[int, str] = {}
            for member in description.members:
                if not member.client_id.startswith(CLIENT_ID_PREFIX):
                    continue
                url = member.client_id[len(CLIENT_ID_PREFIX) :]
                assignment = member.assignment.topic_partitions if member.assignment else []
                for tp in assignment:
                    if tp.topic == self.topic:
                        found[tp.partition] = url
            self._owners = Owners(found, time.monotonic())
            return self._owners
