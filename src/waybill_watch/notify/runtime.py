"""The notifier's loops: consume events into the outbox; one sender per channel.

Delivery guarantees (docs/notify.md "Delivery guarantees"):
* A ``getmany`` batch is routed (``core.route``) and its messages inserted in one database
  transaction (one row per channel and dedupe key, duplicates ignored); the consumer commits
  the offsets only after that commit. A crash between the two redelivers the batch, which
  queues nothing new. Offsets wait for the messages to be *queued*, not delivered: a channel
  that is down for hours must not hold back every other channel's events (nor the consumer
  group), and the queue is durable, so nothing is lost.
* A record that is not a valid event goes to ``tracking.dlq`` with a reason before its
  offset is committed. A database error is retried with backoff; offsets do not move.
* Each channel has its own sender task and token bucket: a channel that times out or is
  throttled delays only itself. A try is a leased claim, the send, and one update; a retry
  is an update of ``next_attempt_at`` (full-jitter backoff, at least ``Retry-After``), never
  a sleep holding a lock. After the last try the message is produced to
  ``notifications.dlq`` (acks=all) and only then marked dead.
* The remaining window: a crash after a channel acknowledged and before the delivered mark
  commits sends the message again when its lease expires, with the same delivery id
  (``X-Waybill-Watch-Delivery``, the e-mail's Message-ID), so the receiver can drop it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import ConsumerRecord, TopicPartition
from pydantic import ValidationError

from waybill_watch import jsonio
from waybill_watch.consumers import consumer_lag, dead_letter
from waybill_watch.models.anomaly import AnomalyEvent
from waybill_watch.models.case_event import CaseEvent
from waybill_watch.notify import core
from waybill_watch.notify.channels.base import Channel, Outcome
from waybill_watch.notify.metrics import NotifyMetrics
from waybill_watch.notify.model import DeadLetter, Queued
from waybill_watch.notify.ratelimit import TokenBucket
from waybill_watch.notify.render import render_batch
from waybill_watch.notify.retry import retry_delay
from waybill_watch.notify.rules import Rules
from waybill_watch.notify.store import Delivery, NotifyStore

log = logging.getLogger(__name__)

BATCH = 500
RETRY_MAX_S = 10.0
#: Deliveries one claim takes at most (a rate-limited channel takes what its bucket allows).
CLAIM_MAX = 10
#: Lease beyond the sends' own time limits before a claimed message is due again.
LEASE_MARGIN = timedelta(seconds=10)
MAINTENANCE_EVERY_S = 5.0
PURGE_EVERY_S = 3600.0

Clock = Callable[[], datetime]
DeadLetterFn = Callable[[DeadLetter], Awaitable[None]]


def utc_now() -> datetime:
    """The senders' and the consumer's clock."""
    return datetime.now(UTC)


def decode(kind: str, value: bytes | None) -> AnomalyEvent | CaseEvent | tuple[str, str]:
    """The event of a record of ``kind`` (``anomaly`` | ``case``), or ``(reason, error)``."""
    if value is None:
        return "empty_record", "a record without a value"
    model: type[AnomalyEvent] | type[CaseEvent] = AnomalyEvent if kind == "anomaly" else CaseEvent
    try:
        return model.model_validate_json(value)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "record"
        reason = "invalid_json" if first["type"] == "json_invalid" else f"invalid_{kind}_event"
        return reason, f"{where}: {first['msg']}"


class EventConsumer:
    """``anomalies`` + ``cases.events`` → the outbox, committing offsets after the database."""

    def __init__(
        self,
        consumer: AIOKafkaConsumer,
        producer: AIOKafkaProducer,
        store: NotifyStore,
        rules: Rules,
        metrics: NotifyMetrics,
        *,
        kinds: dict[str, str],
        dlq_topic: str,
        cases_url: str,
        clock: Clock = utc_now,
    ) -> None:
        self.consumer = consumer
        self.producer = producer
        self.store = store
        self.rules = rules
        self.metrics = metrics
        self.kinds = kinds
        self.dlq_topic = dlq_topic
        self.cases_url = cases_url
        self.clock = clock
        self.healthy = True
        self.on_queued: Callable[[set[str]], None] | None = None

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
        """Queue one ``getmany`` result, then commit its offsets."""
        now = self.clock()
        queued: list[Queued] = []
        outcomes: list[tuple[str, str]] = []
        for tp, records in batch.items():
            kind = self.kinds[tp.topic]
            for record in records:
                event = decode(kind, record.value)
                if isinstance(event, tuple):
                    await self._dead_letter(tp.topic, record, *event)
                    outcomes.append((tp.topic, "rejected"))
                    continue
                messages = core.route(event, self.rules, now, self.cases_url)
                queued.extend(messages)
                outcomes.append((tp.topic, "routed" if messages else "unmatched"))
        new = await self._enqueue(queued, stop)
        if new is None:
            return  # stopped while the database was down: leave the offsets
        offsets = {tp: records[-1].offset + 1 for tp, records in batch.items() if records}
        await self.consumer.commit(offsets)
        for topic, outcome in outcomes:
            self.metrics.records.labels(topic, outcome).inc()
        for channel in new:
            self.metrics.queued.labels(channel).inc()
        if new and self.on_queued is not None:
            self.on_queued(set(new))

    async def _enqueue(self, queued: list[Queued], stop: asyncio.Event) -> list[str] | None:
        delay = 0.2
        while True:
            try:
                new = await self.store.enqueue(queued)
            except Exception as exc:  # the database: retry, never skip
                self.healthy = False
                self.metrics.store_errors.labels("enqueue").inc()
                log.warning("queueing %d messages failed (%s); retrying", len(queued), exc)
                if stop.is_set():
                    return None
                await asyncio.sleep(delay)
                delay = min(RETRY_MAX_S, delay * 2)
                continue
            self.healthy = True
            return new

    async def _dead_letter(
        self, topic: str, record: ConsumerRecord[bytes, bytes], reason: str, error: str
    ) -> None:
        dlq = dead_letter(topic, record, reason, error, self.clock())
        await self.producer.send_and_wait(self.dlq_topic, jsonio.dumps(dlq), key=record.key)
        log.warning(
            "record %s[%d]@%d rejected: %s (%s)",
            topic,
            record.partition,
            record.offset,
            reason,
            error,
        )

    async def _update_lag(self) -> None:
        for tp, lag in (await consumer_lag(self.consumer)).items():
            self.metrics.lag.labels(tp.topic, str(tp.partition)).set(lag)


class ChannelSender:
    """Works one channel's queue: claim due messages, send within the rate limit, record."""

    def __init__(
        self,
        channel: Channel,
        store: NotifyStore,
        metrics: NotifyMetrics,
        dead_letter: DeadLetterFn,
        *,
        poll_interval: float = 1.0,
        clock: Clock = utc_now,
        rand: random.Random | None = None,
    ) -> None:
        self.channel = channel
        self.store = store
        self.metrics = metrics
        self.dead_letter = dead_letter
        self.poll_interval = poll_interval
        self.clock = clock
        self.rand = rand or random.Random()  # noqa: S311 - jitter, not a secret
        rate = channel.config.rate()
        self.bucket = TokenBucket(*rate) if rate else None
        self.wakeup = asyncio.Event()
        self.paused_until = 0.0  # monotonic

    @property
    def name(self) -> str:
        """The channel's name."""
        return self.channel.name

    async def run(self, stop: asyncio.Event) -> None:
        """Until ``stop`` is set; a database error is logged and retried."""
        while not stop.is_set():
            try:
                worked = await self.step(stop)
            except Exception as exc:
                self.metrics.store_errors.labels("send").inc()
                log.warning("channel %s: %s; retrying", self.name, exc)
                worked = False
            if not worked:
                await self._idle(stop)

    async def step(self, stop: asyncio.Event | None = None) -> bool:
        """Claim and send what is due now; whether anything was."""
        pause = self.paused_until - time.monotonic()
        if pause > 0:
            self.metrics.throttled.labels(self.name).set(1)
            await _wait(stop, pause)
            return True
        self.metrics.throttled.labels(self.name).set(0)
        limit = CLAIM_MAX
        if self.bucket is not None:
            wait = self.bucket.wait_time()
            if wait > 0:
                await _wait(stop, wait)
                return True
            limit = max(1, min(CLAIM_MAX, self.bucket.available()))
        timeout = self.channel.config.timeout
        deliveries = await self.store.claim(
            self.name, self.clock(), limit, timeout * limit + LEASE_MARGIN
        )
        for i, delivery in enumerate(deliveries):
            if self.bucket is not None:
                await self.bucket.acquire()
            await self.attempt(delivery)
            pause = self.paused_until - time.monotonic()
            if pause > 0 or (stop is not None and stop.is_set()):
                # throttled (or stopping): the rest of the claim goes back untried
                at = self.clock() + timedelta(seconds=max(0.0, pause))
                for rest in deliveries[i + 1 :]:
                    await self._release(rest, at)
                break
        return bool(deliveries)

    async def attempt(self, delivery: Delivery) -> Outcome:
        """One try of one delivery, and its record."""
        config = self.channel.config
        if delivery.attempts > config.max_attempts:
            # the last try was claimed and the process died before recording it
            outcome = Outcome("failed", "attempts_exhausted", "no result of the last try")
            await self._dead(delivery, outcome, "attempts_exhausted")
            return outcome
        notices = delivery.notices
        batch = render_batch(notices, delivery.language, delivery.timezone, delivery.delivery_id)
        try:
            outcome = await self.channel.send(batch, notices)
        except Exception as exc:  # a bug in a channel must not stop its loop
            log.exception("channel %s: sending %s raised", self.name, delivery.delivery_id)
            outcome = Outcome("retry", "internal_error", f"{type(exc).__name__}: {exc}"[:300])
        self.metrics.attempts.labels(self.name, outcome.code).inc()
        kind = self.channel.config.type
        if outcome.result == "delivered":
            now = self.clock()
            await self._record(lambda: self.store.delivered(self.name, delivery.delivery_id, now))
            self.metrics.notifications.labels(self.name, kind, "sent").inc()
            for row in delivery.rows:
                seconds = (now - row.event_at).total_seconds()
                self.metrics.latency.labels(self.name).observe(max(0.0, seconds))
            return outcome
        if outcome.result == "failed":
            await self._dead(delivery, outcome, "undeliverable")
            return outcome
        if delivery.attempts >= config.max_attempts:
            await self._dead(delivery, outcome, "attempts_exhausted")
            return outcome
        if outcome.result == "throttled":
            pause = outcome.retry_after if outcome.retry_after is not None else 60.0
            self.paused_until = max(self.paused_until, time.monotonic() + pause)
            log.warning("channel %s throttled (%s); pausing %.0f s", self.name, outcome.code, pause)
        delay = retry_delay(
            delivery.attempts,
            config.retry_base.total_seconds(),
            config.retry_cap.total_seconds(),
            outcome.retry_after,
            self.rand,
        )
        at = self.clock() + timedelta(seconds=delay)
        error = f"{outcome.code}: {outcome.detail}"[:500]
        await self._record(lambda: self.store.retry_at(self.name, delivery.delivery_id, at, error))
        self.metrics.notifications.labels(self.name, kind, "retried").inc()
        log.info(
            "channel %s: %s try %d failed (%s); next in %.1f s",
            self.name,
            delivery.delivery_id,
            delivery.attempts,
            outcome.code,
            delay,
        )
        return outcome

    async def _release(self, delivery: Delivery, at: datetime) -> None:
        await self._record(lambda: self.store.release(self.name, delivery.delivery_id, at))

    async def _dead(self, delivery: Delivery, outcome: Outcome, reason: str) -> None:
        now = self.clock()
        letter = DeadLetter(
            reason=reason,
            result=outcome.code,
            error=outcome.detail,
            channel=self.name,
            channel_type=self.channel.config.type,
            delivery_id=delivery.delivery_id,
            attempts=delivery.attempts,
            dead_lettered_at=now,
            dedupe_keys=[n.dedupe_key for n in delivery.notices],
            notices=delivery.notices,
        )
        await self.dead_letter(letter)  # raises (and the lease retries) if Kafka refuses it
        error = f"{reason}: {outcome.code}: {outcome.detail}"[:500]
        await self._record(lambda: self.store.dead(self.name, delivery.delivery_id, now, error))
        self.metrics.notifications.labels(
            self.name, self.channel.config.type, "dead_lettered"
        ).inc()
        log.warning(
            "channel %s: %s dead-lettered after %d tries (%s: %s)",
            self.name,
            delivery.delivery_id,
            delivery.attempts,
            reason,
            outcome.code,
        )

    async def _record(self, update: Callable[[], Awaitable[None]]) -> None:
        """Record a result, retrying the database for a while: after a send, giving up
        means sending again once the lease expires."""
        delay = 0.2
        deadline = time.monotonic() + LEASE_MARGIN.total_seconds()
        while True:
            try:
                await update()
                return
            except Exception as exc:
                self.metrics.store_errors.labels("record").inc()
                if time.monotonic() + delay > deadline:
                    raise
                log.warning("channel %s: recording a result failed (%s); retrying", self.name, exc)
                await asyncio.sleep(delay)
                delay = min(RETRY_MAX_S, delay * 2)

    async def _idle(self, stop: asyncio.Event) -> None:
        wait = self.poll_interval
        with contextlib.suppress(Exception):
            due = await self.store.next_due(self.name)
            if due is not None:
                wait = min(wait, max(0.02, (due - self.clock()).total_seconds()))
        self.wakeup.clear()
        waits = [asyncio.ensure_future(self.wakeup.wait()), asyncio.ensure_future(stop.wait())]
        await asyncio.wait(waits, timeout=wait, return_when=asyncio.FIRST_COMPLETED)
        for w in waits:
            w.cancel()


async def _wait(stop: asyncio.Event | None, seconds: float) -> None:
    if stop is None:
        await asyncio.sleep(seconds)
        return
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)


class Maintenance:
    """Queue-depth gauges every few seconds; finished messages past retention hourly."""

    def __init__(
        self,
        store: NotifyStore,
        metrics: NotifyMetrics,
        channels: list[str],
        retention: timedelta,
        clock: Clock = utc_now,
    ) -> None:
        self.store = store
        self.metrics = metrics
        self.channels = channels
        self.retention = retention
        self.clock = clock

    async def run(self, stop: asyncio.Event) -> None:
        """Until ``stop`` is set."""
        purged = 0.0
        warned: set[str] = set()
        while not stop.is_set():
            try:
                depth = await self.store.depth()
                for channel in self.channels:
                    self.metrics.queue_depth.labels(channel).set(depth.get(channel, 0))
                orphans = sorted(set(depth) - set(self.channels) - warned)
                for channel in orphans:
                    log.warning(
                        "%d messages wait for channel %r, which the rules file no longer has; "
                        "they go out when it is back",
                        depth[channel],
                        channel,
                    )
                warned.update(orphans)
                if time.monotonic() - purged >= PURGE_EVERY_S:
                    purged = time.monotonic()
                    gone = await self.store.purge(self.clock() - self.retention)
                    if gone:
                        log.info("deleted %d finished messages past retention", gone)
            except Exception as exc:
                self.metrics.store_errors.labels("maintenance").inc()
                log.warning("maintenance failed (%s); retrying", exc)
            await _wait(stop, MAINTENANCE_EVERY_S)
