"""The case service's loops around ``CaseService``: consume ``anomalies``, fire timers,
publish the outbox to ``cases.events``.

Delivery guarantees (README "Cases"):
* A batch of anomaly records is applied in one database transaction; the consumer commits
  its offsets only after that commit. A crash between the two re-delivers the batch, and the
  core recognises every event it already applied, so nothing is lost and nothing doubles.
* A record that is not a valid anomaly event goes to ``tracking.dlq`` with a reason (and is
  counted) before its offset is committed; it never blocks the partition.
* A database error is retried with backoff; offsets do not move meanwhile.
* Case events are written to the outbox in the transaction that decided them; the relay
  publishes them (idempotent producer, acks=all) and deletes them only once Kafka has
  acknowledged. A crash after the send and before the delete re-sends: each event carries a
  deterministic ``event_id`` for consumers to drop the copy.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from datetime import datetime

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import ConsumerRecord, TopicPartition
from pydantic import ValidationError

from waybill_watch import jsonio
from waybill_watch.cases.metrics import CaseMetrics
from waybill_watch.cases.model import CaseEvent
from waybill_watch.cases.services import CaseService
from waybill_watch.consumers import consumer_lag, dead_letter
from waybill_watch.kafka_client import KafkaConnection, as_connection
from waybill_watch.models.anomaly import AnomalyEvent

log = logging.getLogger(__name__)

BATCH = 500
#: Rounds of due timers per tick before the loop yields (each round is one transaction).
MAX_TIMER_ROUNDS = 20
#: How often the open-cases and overdue-steps gauges are recounted (a grouped query).
COUNTS_EVERY_S = 15.0
#: Longest the relay spends reading the tail of cases.events before it publishes.
TAIL_READ_S = 20.0
RETRY_MAX_S = 10.0


def decode_anomaly(value: bytes | None) -> AnomalyEvent | tuple[str, str]:
    """The event, or ``(reason, error)`` for a record that is not one."""
    if value is None:
        return "empty_record", "a record without a value"
    try:
        return AnomalyEvent.model_validate_json(value)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "record"
        reason = "invalid_json" if first["type"] == "json_invalid" else "invalid_anomaly"
        return reason, f"{where}: {first['msg']}"


class AnomalyConsumer:
    """``anomalies`` → cases, committing offsets after the database."""

    def __init__(
        self,
        consumer: AIOKafkaConsumer,
        producer: AIOKafkaProducer,
        service: CaseService,
        metrics: CaseMetrics,
        *,
        dlq_topic: str,
    ) -> None:
        self.consumer = consumer
        self.producer = producer
        self.service = service
        self.metrics = metrics
        self.dlq_topic = dlq_topic
        self.healthy = True
        self.relay_wakeup: asyncio.Event | None = None

    async def run(self, stop: asyncio.Event) -> None:
        """Until ``stop`` is set."""
        while not stop.is_set():
            batch = await self.consumer.getmany(timeout_ms=500, max_records=BATCH)
            if batch:
                await self.handle(batch, stop)
            await self._update_lag()

    async def handle(
        self, batch: dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]], stop: asyncio.Event
    ) -> None:
        """Apply one ``getmany`` result, then commit its offsets."""
        events: list[AnomalyEvent] = []
        for tp, records in batch.items():
            for record in records:
                decoded = decode_anomaly(record.value)
                if isinstance(decoded, AnomalyEvent):
                    events.append(decoded)
                else:
                    await self._dead_letter(tp.topic, record, *decoded)
        await self._apply(events, stop)
        if stop.is_set() and events and not self.healthy:
            return  # stopped while the database was down: leave the offsets
        offsets = {tp: records[-1].offset + 1 for tp, records in batch.items() if records}
        await self.consumer.commit(offsets)

    async def _apply(self, events: Sequence[AnomalyEvent], stop: asyncio.Event) -> None:
        delay = 0.2
        while True:
            try:
                emitted = await self.service.apply_anomalies(events)
            except Exception as exc:  # the database: retry, never skip
                self.healthy = False
                self.metrics.store_errors.labels("apply").inc()
                log.warning("applying %d anomaly events failed (%s); retrying", len(events), exc)
                if stop.is_set():
                    return
                await asyncio.sleep(delay)
                delay = min(RETRY_MAX_S, delay * 2)
                continue
            self.healthy = True
            changed = len({e.case_id for e in emitted})
            if emitted and self.relay_wakeup is not None:
                self.relay_wakeup.set()
            log.debug("applied %d anomaly events, %d cases changed", len(events), changed)
            return

    async def _dead_letter(
        self, topic: str, record: ConsumerRecord[bytes, bytes], reason: str, error: str
    ) -> None:
        dlq = dead_letter(topic, record, reason, error, datetime.now().astimezone())
        await self.producer.send_and_wait(self.dlq_topic, jsonio.dumps(dlq), key=record.key)
        self.metrics.dlq.labels(reason).inc()
        self.metrics.anomalies.labels("rejected").inc()
        log.warning(
            "anomaly record %s[%d]@%d rejected: %s (%s)",
            topic,
            record.partition,
            record.offset,
            reason,
            error,
        )

    async def _update_lag(self) -> None:
        for tp, lag in (await consumer_lag(self.consumer)).items():
            self.metrics.lag.labels(str(tp.partition)).set(lag)


class Timers:
    """Fires reminders and overdue marks every ``interval`` seconds."""

    def __init__(self, service: CaseService, metrics: CaseMetrics, interval: float) -> None:
        self.service = service
        self.metrics = metrics
        self.interval = interval
        self.relay_wakeup: asyncio.Event | None = None

    async def run(self, stop: asyncio.Event) -> None:
        """Until ``stop`` is set; a database error is logged and retried next round."""
        counted = 0.0
        while not stop.is_set():
            try:
                for _ in range(MAX_TIMER_ROUNDS):  # a backlog of due steps, 500 cases a round
                    fired = await self.service.fire_due(BATCH)
                    if fired and self.relay_wakeup is not None:
                        self.relay_wakeup.set()
                    if not fired:
                        break
                if time.monotonic() - counted >= COUNTS_EVERY_S:
                    counted = time.monotonic()
                    self.metrics.set_counts(await self.service.store.counts(self.service.clock()))
            except Exception as exc:
                self.metrics.store_errors.labels("timers").inc()
                log.warning("timer round failed (%s); retrying", exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.interval)


#: Header carrying the outbox row id of each published case event (exactly-once recovery).
OUTBOX_HEADER = "wbw-outbox-id"


class OutboxRelay:
    """Publishes committed case events to ``cases.events`` (key: case id), oldest first,
    exactly once for ``read_committed`` consumers.

    Each batch is one Kafka transaction whose records carry their outbox row id; rows are
    deleted after the commit. A crash between the two leaves rows that Kafka already has:
    before publishing, the relay reads the tail of every partition (the last batch is at
    most ``BATCH`` records) and deletes the rows it finds there. Only the holder of the
    store's relay lease publishes, and the fixed transactional id fences a stale one.
    """

    def __init__(
        self,
        service: CaseService,
        producer: AIOKafkaProducer,
        metrics: CaseMetrics,
        topic: str,
        kafka: str | KafkaConnection,
    ) -> None:
        self.service = service
        self.producer = producer
        self.metrics = metrics
        self.topic = topic
        self.kafka = as_connection(kafka)
        self.wakeup = asyncio.Event()
        self._recovered = False

    async def run(self, stop: asyncio.Event) -> None:
        """Until ``stop`` is set, then once more so nothing committed waits for a restart."""
        store = self.service.store
        while not stop.is_set():
            async with store.relay_lease() as leader:
                if leader:
                    await self._lead(stop)
                    return
            log.info("another case service publishes cases.events; waiting for its lease")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 5)

    async def _lead(self, stop: asyncio.Event) -> None:
        while True:
            try:
                if not self._recovered:
                    await self.recover()
                await self.publish_all()
            except Exception as exc:
                self._recovered = False
                self.metrics.store_errors.labels("relay").inc()
                log.warning("publishing case events failed (%s); retrying", exc)
            if stop.is_set():
                return
            self.wakeup.clear()
            waits = [asyncio.ensure_future(self.wakeup.wait()), asyncio.ensure_future(stop.wait())]
            await asyncio.wait(waits, timeout=1.0, return_when=asyncio.FIRST_COMPLETED)
            for w in waits:
                w.cancel()

    async def recover(self) -> int:
        """Delete outbox rows that an earlier, interrupted relay already committed to Kafka."""
        pending = {item.id for item in await self.service.store.outbox(BATCH)}
        if not pending:
            self._recovered = True
            return 0
        found = await published_ids(self.kafka, self.topic, window=2 * BATCH)
        done = sorted(pending & found)
        if done:
            await self.service.store.published(done)
            log.info("%d case events were already on %s; not sent again", len(done), self.topic)
        self._recovered = True
        return len(done)

    async def publish_all(self) -> int:
        """Publish until the outbox is empty; returns how many were sent."""
        sent = 0
        store = self.service.store
        while True:
            items = await store.outbox(BATCH)
            self.metrics.outbox.set(len(items))
            if not items:
                return sent
            async with self.producer.transaction():
                for item in items:
                    await self.producer.send(
                        self.topic,
                        item.value,
                        key=item.key.encode(),
                        headers=[(OUTBOX_HEADER, str(item.id).encode())],
                    )
            await store.published([item.id for item in items])
            for item in items:
                self.metrics.events.labels(CaseEvent.model_validate_json(item.value).event).inc()
            sent += len(items)


async def published_ids(kafka: str | KafkaConnection, topic: str, *, window: int) -> set[int]:
    """Outbox ids in the last ``window`` committed records of every partition of ``topic``."""
    consumer = AIOKafkaConsumer(
        **as_connection(kafka).aiokafka_options(),
        group_id=None,
        enable_auto_commit=False,
        isolation_level="read_committed",
    )
    await consumer.start()
    found: set[int] = set()
    try:
        # The topic exists (created at start). Metadata without it (a loaded or restarting
        # broker) must not read as "nothing published": every pending row would be sent again.
        deadline = time.monotonic() + TAIL_READ_S
        # (A kill test under load saw a committed batch of 250 published again: metadata that
        # lacks the topic is how this read returned nothing. ``consumer.topics()`` would not
        # help: it fills a metadata object of its own, not the client's.)
        while not (partitions := consumer.partitions_for_topic(topic)):
            if time.monotonic() > deadline:
                raise TimeoutError(f"no partitions of {topic} in the cluster's metadata")
            await consumer._client.add_topic(topic)  # tracks it: refreshes the client's metadata
            if not consumer.partitions_for_topic(topic):
                await asyncio.sleep(0.5)
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        ends = await consumer.end_offsets(tps)
        starts = await consumer.beginning_offsets(tps)
        open_tps = set()
        for tp in tps:
            if ends[tp] > starts[tp]:
                consumer.seek(tp, max(starts[tp], ends[tp] - window))
                open_tps.add(tp)
        deadline = time.monotonic() + TAIL_READ_S
        while open_tps and time.monotonic() < deadline:
            batch = await consumer.getmany(*open_tps, timeout_ms=500)
            for records in batch.values():
                for record in records:
                    for name, value in record.headers or ():
                        if name == OUTBOX_HEADER:
                            found.add(int(value))
            for tp in list(open_tps):
                if await consumer.position(tp) >= ends[tp]:
                    open_tps.discard(tp)
            if not batch and open_tps:
                # only control records (transaction markers) left before the end
                for tp in list(open_tps):
                    if await consumer.position(tp) >= ends[tp] - 1:
                        open_tps.discard(tp)
        if open_tps:
            raise TimeoutError(f"could not read the tail of {topic} within {TAIL_READ_S} s")
    finally:
        await consumer.stop()
    return found
