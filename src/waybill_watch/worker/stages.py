"""The worker's stages: thin adapters between Kafka records and the core's keyed runners.

    tracking.raw ─► normalize ─┐
    tracking.events, orders.events (merchants' records) ─► validate ─┤
                                                                    ▼
    waybill-watch.updates (key waybill; + ticks) ─► waybills ─► anomalies, tracking.events (new)
                                                               └► waybill-watch.signals (+ ticks)
    waybill-watch.signals ─► sites & couriers ─► anomalies

Clock (contract §6): every record on an internal topic names its source (the upstream partition)
and the ticker sends each source's mark to every downstream partition, in band; each partition
keeps a ``Watermark`` over its sources in its state, so it decides as if it had kept up.
Signals reach a site/courier partition from many waybill partitions out of step. A waybill
partition keeps the signals it decides in an outbox in its state; the ticker sends them, one
batch per signals partition, just before that partition's clock. There they wait in per-source
queues (in state, one entry per batch) until the partition's clock reaches them and are applied
in ``(clock, source)`` order, as replay applies them.
"""

from __future__ import annotations

import contextlib
import logging
import struct
import time
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, TypeVar

from pydantic import ValidationError

from waybill_watch import jsonio
from waybill_watch.domain.clock import Watermark, from_ms, to_ms
from waybill_watch.domain.deadlines import BucketDeadlineIndex
from waybill_watch.domain.runner import AggregateRunner, Ports, WaybillRunner
from waybill_watch.domain.state import WaybillState
from waybill_watch.domain.types import DraftError, PendingUpdate, WaybillUpdate
from waybill_watch.feeds.base import Feed, FeedError, draft_feeds
from waybill_watch.feeds.scans import PendingParse
from waybill_watch.masking import mask_text
from waybill_watch.metrics import Metrics
from waybill_watch.models.envelope import CaptureEnvelope
from waybill_watch.models.order import OrderEvent
from waybill_watch.models.tracking import TrackingEvent
from waybill_watch.timefmt import local_now, zone
from waybill_watch.worker import codec
from waybill_watch.worker.outputs import ORIGIN_HEADER, Outputs, Send
from waybill_watch.worker.ports import (
    CLOCK_PREFIX,
    INDEX_PREFIX,
    CountingStore,
    KafkaEffects,
    SignalOutbox,
    Tally,
    Transaction,
    TransactionKv,
)
from waybill_watch.worker.topics import TopicNames

log = logging.getLogger(__name__)

#: ``source_feed`` of updates built from records merchants produced to ``tracking.events``.
EXTERNAL_EVENTS = "tracking.events"
TICK_KEY = b"__tick__"
#: Key of a batch of signals (its partition is chosen, the key only names it).
SIGNALS_KEY = b"__signals__"
#: Records merchants may produce straight to the contract topics.
Direct = TypeVar("Direct", TrackingEvent, OrderEvent)
#: ``produce(topic, key, value, partition)``: a record to one partition (ticks).
ProduceTo = Callable[[str, bytes, bytes, int], None]


class Children:
    """A labelled metric's children by label values, looked up once: ``labels()`` costs
    microseconds per call, on every record (label values are bounded: feeds, partitions)."""

    __slots__ = ("cache", "metric")

    def __init__(self, metric: Any) -> None:
        self.metric = metric
        self.cache: dict[tuple[str, ...], Any] = {}

    def __call__(self, *values: str) -> Any:
        child = self.cache.get(values)
        if child is None:
            child = self.cache[values] = self.metric.labels(*values)
        return child

    def drop(self, *values: str) -> None:
        """Remove the child of ``values`` (a revoked partition's series)."""
        if self.cache.pop(values, None) is not None:
            with contextlib.suppress(KeyError):
                self.metric.remove(*values)


class Progress:
    """The latest ``received_at`` this process read of each source partition (the mark of a
    source that is behind). Whether a source is caught up is the consumer's position, not
    this: records the stages skip count as read too (see ``Ticker._caught_up``)."""

    def __init__(self) -> None:
        self.received: dict[str, int] = {}  # src -> highest received_at (ms) read

    def note(self, src: str, received_ms: int) -> None:
        if received_ms > self.received.get(src, -1):
            self.received[src] = received_ms

    def forget(self, src: str) -> None:
        """A source partition no longer read here: what was read of it says nothing of what
        its next owner reads (it goes back to us at the group's committed offset)."""
        self.received.pop(src, None)


# -- normalize: raw envelopes and records merchants produced → the updates topic ---------------


class NormalizeStage:
    """Parses envelopes with the same feed code as ingest and replay; validates the records
    merchants produce straight to ``tracking.events`` / ``orders.events``. Never raises for
    bad input: it goes to the DLQ with a reason."""

    def __init__(
        self,
        feeds: Mapping[str, Feed],
        send: Send,
        outputs: Outputs,
        metrics: Metrics,
        progress: Progress,
        names: TopicNames,
        *,
        timezone: str,
        origin: bytes,
    ) -> None:
        self.feeds = feeds
        self.send = send
        self.outputs = outputs
        self.metrics = metrics
        self.progress = progress
        self.names = names
        self.timezone = timezone
        self.origin = origin
        self.origin_headers = {ORIGIN_HEADER: origin}
        self.drafts = draft_feeds(feeds)
        self.normalized = Children(metrics.envelopes_normalized)

    def raw(self, value: bytes, partition: int, offset: int) -> None:
        """One ``tracking.raw`` record: one record per waybill to the updates topic. A draft
        feed's updates go with their scans unbuilt (``encode_pending``): the waybill stage
        builds only those its state lacks."""
        src = f"raw/{partition}"
        try:
            envelope = CaptureEnvelope.model_validate_json(value)
        except ValidationError as exc:
            self._reject(self.names.raw, value, None, "bad_envelope", _short(exc))
            return
        received_ms = to_ms(envelope.received_at)
        self.progress.note(src, received_ms)
        feed = self.feeds[envelope.feed]
        drafts = self.drafts.get(envelope.feed)
        try:
            result = feed.parse(envelope) if drafts is None else drafts.parse_pending(envelope)
        except FeedError as error:
            self._reject(self.names.raw, value, envelope.feed, error.reason, error.message)
            return
        except Exception as exc:  # a parser bug must not stop the stream or lose the record
            log.exception("feed %s crashed on an envelope", envelope.feed)
            self._reject(self.names.raw, value, envelope.feed, "parser_error", repr(exc))
            return
        updates = self.names.updates
        if isinstance(result, PendingParse):
            assert drafts is not None  # only a draft feed answers a PendingParse
            for pending in result.updates:
                record = codec.encode_pending(pending, src, drafts.draft_to_wire)
                self.send(updates, pending.update.waybill.encode(), record, None)
        else:
            for update in result.updates:
                record = codec.encode_update(update, src)
                self.send(updates, update.waybill.encode(), record, None)
            for order in result.orders:
                key = order.waybill.encode()
                self.send(updates, key, codec.encode_order(order, envelope.received_at, src), None)
                self.send(self.names.orders, key, jsonio.dumps(order), self.origin_headers)
        for part in result.rejected:
            self._reject(self.names.raw, value, envelope.feed, part.reason, part.error, False)
        outcome = "ignored" if result.ignored else ("partial" if result.rejected else "ok")
        self.normalized(envelope.feed, outcome).inc()

    def external_scan(
        self, value: bytes, key: bytes | None, headers: Any, partition: int, offset: int, ts: int
    ) -> None:
        """One record of ``tracking.events`` (those this app forwarded itself are skipped)."""
        event = self._direct(TrackingEvent, self.names.events, value, key, headers)
        if event is None:
            return
        scan = event.to_scan()
        src = f"events/{partition}"
        self.progress.note(src, to_ms(scan.received_at))
        update = WaybillUpdate(
            waybill=scan.waybill,
            courier=scan.courier,
            received_at=scan.received_at,
            source_feed=EXTERNAL_EVENTS,
            scans=[scan],
        )
        self.send(self.names.updates, scan.waybill.encode(), codec.encode_update(update, src), None)

    def external_order(
        self, value: bytes, key: bytes | None, headers: Any, partition: int, offset: int, ts: int
    ) -> None:
        """One record of ``orders.events``: received when Kafka appended it (``ts``)."""
        order = self._direct(OrderEvent, self.names.orders, value, key, headers)
        if order is None:
            return
        src = f"orders/{partition}"
        self.progress.note(src, ts)
        received_at = from_ms(ts, zone(self.timezone))
        record = codec.encode_order(order, received_at, src)
        self.send(self.names.updates, order.waybill.encode(), record, None)

    def _direct(
        self, model: type[Direct], topic: str, value: bytes, key: bytes | None, headers: Any
    ) -> Direct | None:
        """A record merchants produced straight to ``topic``, validated and keyed by its
        waybill; None for one this app forwarded itself or one sent to the DLQ."""
        if _header(headers, ORIGIN_HEADER) == self.origin:
            return None
        try:
            record = model.model_validate_json(value)
        except ValidationError as exc:
            reason = "bad_tracking_event" if model is TrackingEvent else "bad_order_event"
            self._reject(topic, value, None, reason, _short(exc), key=key)
            return None
        if key is not None and key != record.waybill.encode():
            self._reject(topic, value, None, "wrong_key", "record key must be the waybill", key=key)
            return None
        return record

    def _reject(
        self,
        topic: str,
        raw: bytes,
        feed: str | None,
        reason: str,
        error: str,
        count: bool = True,
        *,
        key: bytes | None = None,
    ) -> None:
        if count and topic == self.names.raw:
            self.metrics.envelopes_normalized.labels(feed or "_invalid", "rejected").inc()
        log.warning("%s record rejected: %s: %s", topic, reason, mask_text(error))
        self.outputs.dead_letter(
            source=topic,
            reason=reason,
            error=mask_text(error),
            payload=raw,
            now=local_now(self.timezone),
            feed=feed,
            key=key,
        )


# -- the ticker: each source's mark, in band, to every downstream partition --------------------


class Ticker:
    """Run on the engine's loop (between records), every ``interval`` seconds:

    * the mark of each assigned source partition, all in one record, to every partition of the
      updates topic. A source that is behind marks the ``received_at`` of what was read last
      (later records were received later); one that is caught up marks the wall clock
      (``wall``) or is idle (``stream``: a caught-up capture constrains nothing);
    * the signals each assigned waybill partition decided since the last tick (``flush``: one
      batch per signals partition), then the clock of each one that moved, in one record, to
      every partition of the signals topic (the site/courier stage's sources).

    All go through the checkpoint's producer after the records they vouch for, so they are
    ordered with them. ``record(partition)``, when given, writes to the state of an assigned
    waybill partition, so that a checkpoint whose only records are ticks still commits (under
    exactly-once an empty checkpoint's transaction is aborted).

    Nothing happens while ``restored()`` is false: the state of a partition just assigned is
    not restored from its changelog yet. Its clock read then is stale, and a state write
    committed then (the tick record) stamps the store with the changelog's latest offset, so
    the restore that follows starts there and skips every record before it: the partition's
    state is lost (quix-streams assigns in the consumer's poll and restores on the next turn
    of its loop; periodic tasks run in between)."""

    def __init__(
        self,
        consumer: Any,
        produce: ProduceTo,
        record: Callable[[int], None] | None,
        clock_of: Callable[[int], int | None],
        flush: Callable[[int], None],
        progress: Progress,
        names: TopicNames,
        metrics: Metrics,
        *,
        partitions: int,
        stream: bool,
        interval: float,
        restored: Callable[[], bool],
        on_tick: Callable[[list[int], list[int]], None] | None = None,
    ) -> None:
        self.metrics = metrics
        #: ``on_tick(waybill partitions, signals partitions)``: the assigned ones, each tick.
        self.on_tick = on_tick
        self.consumer = consumer
        self.produce = produce
        self.record = record
        self.clock_of = clock_of
        self.flush = flush
        self.restored = restored
        self.progress = progress
        self.names = names
        self.partitions = partitions
        self.stream = stream
        self.interval = interval
        self.sources = {names.raw: "raw", names.events: "events", names.orders: "orders"}
        self._sent: dict[str, int] = {}
        #: The group's committed offset of a source partition nothing was fetched from yet.
        self._committed: dict[str, int] = {}
        self._last = 0.0

    def __call__(self) -> None:
        wall = time.monotonic()
        if wall - self._last < self.interval or not self.restored():
            return
        self._last = wall
        marks: dict[str, tuple[int, bool]] = {}
        clocks: dict[str, tuple[int, bool]] = {}
        waybill_partitions: list[int] = []
        signals_partitions: list[int] = []
        assignment = self.consumer.assignment()  # not cheap: once a tick, never per record
        self.metrics.partitions_assigned.set(
            sum(1 for tp in assignment if tp.topic == self.names.updates)
        )
        for tp in assignment:
            kind = self.sources.get(tp.topic)
            if kind is not None:
                src = f"{kind}/{tp.partition}"
                mark = self._mark(tp, src)
                if mark is not None:
                    marks[src] = mark
            elif tp.topic == self.names.updates:
                waybill_partitions.append(tp.partition)
                self.flush(tp.partition)  # before the clock that vouches for the signals
                src = f"w/{tp.partition}"
                clock = self.clock_of(tp.partition)
                if clock is not None and clock != self._sent.get(src):
                    clocks[src] = (clock, False)
            elif tp.topic == self.names.signals:
                signals_partitions.append(tp.partition)
        for topic, targets in ((self.names.updates, marks), (self.names.signals, clocks)):
            if not targets:
                continue
            value = codec.encode_tick(targets)
            for partition in range(self.partitions):
                self.produce(topic, TICK_KEY, value, partition)
        if self.record is not None and (marks or clocks) and waybill_partitions:
            self.record(waybill_partitions[0])
        self._sent.update({src: mark[0] for src, mark in clocks.items()})
        if self.on_tick is not None:
            self.on_tick(waybill_partitions, signals_partitions)

    def _mark(self, tp: Any, src: str) -> tuple[int, bool] | None:
        caught_up = self._caught_up(tp, src)
        if caught_up is None:
            return None
        last = self.progress.received.get(src)
        if caught_up:
            if self.stream:
                return (last or 0), True
            return to_ms(datetime.now().astimezone()), False
        return (last, False) if last is not None else None

    def revoked(self, tps: list[Any]) -> None:
        """Forget what was known of source partitions no longer assigned here."""
        for tp in tps:
            kind = self.sources.get(tp.topic)
            if kind is not None:
                src = f"{kind}/{tp.partition}"
                self.progress.forget(src)
                self._committed.pop(src, None)

    def _caught_up(self, tp: Any, src: str) -> bool | None:
        """Whether this process read ``tp`` to its end (None: unknown, so the clock waits).

        The consumer's position, never the offsets of the records the stages used: records
        they skip (this app's own scans on ``tracking.events`` and orders on
        ``orders.events``, rejected envelopes) and transaction markers (read_committed) are
        read too. Counting only used records, a source whose last record was one of ours
        never looked caught up again: its mark stayed where it was, and so did every
        waybill partition's clock (no deadline fired until the worker restarted)."""
        try:
            _, high = self.consumer.get_watermark_offsets(tp, cached=True)
            if high is None or high < 0:
                _, high = self.consumer.get_watermark_offsets(tp, timeout=1.0, cached=False)
        except Exception:  # no answer: say nothing this round (the clock waits)
            return None
        if high == 0:
            return True
        try:
            (position,) = self.consumer.position([tp])
            offset = position.offset
            if offset < 0:
                # Nothing fetched since the assignment (an idle partition stays so): where
                # the group is in it. Asked of the broker once per assignment.
                offset = self._committed.get(src, -1)
                if offset < 0:
                    (committed,) = self.consumer.committed([tp], timeout=1.0)
                    offset = committed.offset
                    if offset >= 0:
                        self._committed[src] = offset
        except Exception:
            return None
        if offset < 0:
            return None
        return bool(offset >= high)


# -- the keyed stages --------------------------------------------------------------------------


def send_signals(
    outbox: SignalOutbox, tx: Transaction, partition: int, produce: ProduceTo, topic: str
) -> None:
    """The signals waiting in waybill partition ``partition``'s outbox, one batch per signals
    partition (the ticker's ``flush``)."""
    src = f"w/{partition}"
    for target, records in outbox.take(tx).items():
        produce(topic, SIGNALS_KEY, codec.encode_batch(src, records), target)


def clock_of(tx: Transaction) -> int | None:
    """A keyed partition's clock (epoch ms), if it has one."""
    raw = tx.get_bytes(b"wm", CLOCK_PREFIX)
    return int(jsonio.loads(raw)["now"]) if raw is not None else None


def _watermark(tx: Transaction, expected: int = 0) -> tuple[int, Watermark]:
    raw = tx.get_bytes(b"wm", CLOCK_PREFIX)
    if raw is None:
        return 0, Watermark(expected=expected)
    doc = jsonio.loads(raw)
    return doc["now"], Watermark(doc["marks"], expected)


def _save_watermark(tx: Transaction, now: int, watermark: Watermark) -> None:
    tx.set_bytes(b"wm", jsonio.dumps({"now": now, "marks": watermark.marks}), CLOCK_PREFIX)


class WaybillStage:
    """Per-waybill state fed by updates, orders and ticks (one partition at a time)."""

    def __init__(
        self,
        runner: WaybillRunner,
        effects: KafkaEffects,
        metrics: Metrics,
        *,
        timezone: str,
        feeds: Mapping[str, Feed],
        topic: str,
        tally: Tally | None = None,
    ) -> None:
        self.runner = runner
        self.effects = effects
        self.metrics = metrics
        self.tz = zone(timezone)
        self.topic = topic
        self.drafts: dict[str, codec.DraftBuilder] = {
            name: feed.scan_from_draft for name, feed in draft_feeds(feeds).items()
        }
        self.clock_gauge = Children(metrics.clock_seconds)
        self.clocks = metrics.live.clocks  # partition -> clock (ms), for the clock lag
        self.processed = Children(metrics.tracking_events_processed)
        #: The counts of the owned partitions (waybill states, open episodes).
        self.tally = tally if tally is not None else Tally()

    def revoked(self, partition: int) -> None:
        """Forget what is kept of a partition no longer owned here."""
        self.tally.drop(partition)
        label = str(partition)
        self.clock_gauge.drop(label)
        self.clocks.pop(label, None)

    def handle(self, tx: Transaction, partition: int, value: bytes) -> None:
        kind, src, payload = codec.decode(value, self.drafts)
        before, watermark = _watermark(tx)
        if kind == codec.TICK:
            changed = False
            for source, (ms, idle) in payload.items():
                changed = watermark.observe(source, ms, idle) or changed
        elif kind == codec.UPDATE:
            changed = watermark.observe(src, to_ms(payload.update.received_at))
        else:
            changed = watermark.observe(src, to_ms(payload[1]))
        now_ms = watermark.advance(before)
        if changed:
            _save_watermark(tx, now_ms, watermark)
        if now_ms > before:
            label = str(partition)
            self.clock_gauge(label).set(now_ms / 1000)
            self.clocks[label] = now_ms
        now = from_ms(now_ms, self.tz)
        effects = self.effects
        effects.src = f"w/{partition}"
        effects.tx = tx
        ports = Ports(
            CountingStore(
                tx,
                WaybillState.to_bytes,
                WaybillState.from_bytes,
                self.tally,
                partition,
                count_states=True,
                loaded=effects.loaded,
            ),
            BucketDeadlineIndex(TransactionKv(tx, INDEX_PREFIX)),
            effects,
        )
        if kind == codec.TICK:
            effects.begin_input(None)
            self.runner.advance(ports, now)
            return
        # The input is applied at its own receipt time when the clock (the lowest mark of all
        # sources) is behind it, as replay does; other keys' deadlines wait for the clock.
        if kind == codec.UPDATE:
            pending: PendingUpdate = payload
            update = pending.update
            effects.forward = update.source_feed != EXTERNAL_EVENTS
            effects.begin_input(update.received_at.timestamp())
            at = max(now, update.received_at)
            try:
                step = self.runner.apply(ports, update.waybill, pending, at, clock=now)
            except DraftError as exc:  # a feed bug: the record is kept, the stream goes on
                log.error("update of %s not applied: %s", update.waybill, exc)
                self.effects.outputs.dead_letter(
                    source=self.topic,
                    reason="parser_error",
                    error=mask_text(str(exc)),
                    payload=value,
                    now=now,
                    feed=update.source_feed,
                    key=update.waybill.encode(),
                )
                return
            new = len(step.new_scans)
            self.processed(update.source_feed, "new").inc(new)
            if pending.scan_count > new:
                self.processed(update.source_feed, "duplicate").inc(pending.scan_count - new)
            return
        order: OrderEvent = payload[0]
        effects.begin_input(payload[1].timestamp())
        self.runner.apply(ports, order.waybill, order, max(now, payload[1]), clock=now)
        self.metrics.order_events_processed.labels(order.type).inc()


class AggregateStage:
    """Site and courier state fed by signals from every waybill partition, in clock order."""

    def __init__(
        self,
        runner: AggregateRunner,
        effects: KafkaEffects,
        *,
        sources: int,
        timezone: str,
        tally: Tally | None = None,
    ) -> None:
        self.runner = runner
        self.effects = effects
        self.sources = sources  # the waybill stage's partitions: each must report once
        self.tz = zone(timezone)
        #: The counts of the owned partitions (open site and courier episodes).
        self.tally = tally if tally is not None else Tally()

    def handle(self, tx: Transaction, partition: int, value: bytes) -> None:
        kind, src, payload = codec.peek(value)  # signals are decoded once, when applied
        before, watermark = _watermark(tx, self.sources)
        queues = SignalQueues(TransactionKv(tx, b"q"))
        if kind == codec.TICK:
            for source, (ms, idle) in payload.items():
                watermark.observe(source, ms, idle)
        elif payload:
            watermark.observe(src, max(codec.signal_ms(doc) for doc in payload))
            queues.push(src, payload, value)
        now_ms = watermark.advance(before)
        _save_watermark(tx, now_ms, watermark)
        effects = self.effects
        effects.tx = None  # site/courier engines decide no signals
        effects.begin_input(None)  # not a push: no push → anomaly latency
        ports = Ports(
            CountingStore(tx, _dump, _load_aggregate, self.tally, partition, count_states=False),
            BucketDeadlineIndex(TransactionKv(tx, INDEX_PREFIX)),
            effects,
        )
        for doc in queues.release(now_ms):
            signal, at = codec.signal_of(doc)
            self.runner.apply(ports, signal.key, signal, at)
        self.runner.advance(ports, from_ms(now_ms, self.tz))


class SignalQueues:
    """Signals waiting for the partition's clock, one FIFO per source (a source's signals
    arrive in the order it decided them). Header ``h``: source → ``[head, tail, head_ms]``,
    ``head_ms`` the clock of the first waiting signal. Each entry holds a batch: its record
    (tag ``0x03``), or what is left of it once partly released (tag ``0x02``, a JSON array of
    signal documents); entries of earlier versions hold one signal (tag ``0x01``, its clock in
    8 bytes, its record; or the bare record). The tags keep a value from looking like a
    quix-streams TTL stamp (see ``ports._LAYOUT_V1``)."""

    def __init__(self, kv: TransactionKv) -> None:
        self.kv = kv
        raw = kv.get("h")
        self.header: dict[str, list[int]] = jsonio.loads(raw) if raw else {}
        #: Decoded head entries: source → [documents, index of the first one not released].
        self.heads: dict[str, list[Any]] = {}
        self.dirty = False

    def push(self, src: str, docs: list[dict[str, Any]], record: bytes) -> None:
        """Queue a batch (``docs``, decoded from ``record``) of ``src``."""
        entry = self.header.get(src)
        if entry is None:
            entry = self.header[src] = [0, 0, 0]
        if entry[0] == entry[1]:
            entry[2] = codec.signal_ms(docs[0])
            self.heads[src] = [docs, 0]
        self.kv.set(f"{src}/{entry[1]}", _BATCH + record)
        entry[1] += 1
        self.dirty = True

    def release(self, limit: int) -> list[dict[str, Any]]:
        """Every waiting signal marked at or before ``limit``, by (mark, source)."""
        out: list[dict[str, Any]] = []
        header, partial = self.header, set()
        while True:
            ready = [(entry[2], src) for src, entry in header.items() if entry[0] < entry[1]]
            if not ready:
                break
            ms, src = min(ready)
            if ms > limit:
                break
            entry = header[src]
            head = self._head(src, entry[0])
            docs, index = head
            if index < len(docs):
                out.append(docs[index])
                head[1] = index = index + 1
            self.dirty = True
            if index < len(docs):
                entry[2] = codec.signal_ms(docs[index])
                partial.add(src)
                continue
            self.kv.delete(f"{src}/{entry[0]}")
            del self.heads[src]
            partial.discard(src)
            entry[0] += 1
            if entry[0] < entry[1]:
                following = self._head(src, entry[0])[0]
                entry[2] = codec.signal_ms(following[0]) if following else ms
        for src in partial:
            docs, index = self.heads[src]
            self.kv.set(f"{src}/{header[src][0]}", _LEFT + jsonio.dumps(docs[index:]))
        if self.dirty:
            self.kv.set("h", jsonio.dumps(header))
        return out

    def _head(self, src: str, position: int) -> list[Any]:
        head = self.heads.get(src)
        if head is None:
            raw = self.kv.get(f"{src}/{position}")
            head = self.heads[src] = [_unpack_entry(raw) if raw is not None else [], 0]
        return head


_MS = struct.Struct(">q")
_QUEUED = b"\x01"
_LEFT = b"\x02"
_BATCH = b"\x03"


def _unpack_entry(entry: bytes) -> list[dict[str, Any]]:
    """The signal documents of a queue entry."""
    tag = entry[:1]
    if tag == _BATCH:
        return list(codec.peek(entry[1:])[2])
    if tag == _LEFT:
        return list(jsonio.loads(entry[1:]))
    if tag == _QUEUED:
        entry = entry[1 + _MS.size :]
    return list(codec.peek(entry)[2])


def _dump(state: Any) -> bytes:
    return bytes(state.to_bytes())


def _load_aggregate(data: bytes) -> Any:
    from waybill_watch.domain.aggregate_state import load_aggregate

    return load_aggregate(data)


def _header(headers: Any, name: str) -> bytes | None:
    if not headers:
        return None
    for key, value in headers if not isinstance(headers, Mapping) else headers.items():
        if key == name:
            return value if isinstance(value, bytes) else str(value).encode()
    return None


def _short(exc: ValidationError) -> str:
    """A one-line summary of a pydantic error (no input values: they may hold personal data)."""
    parts = [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()[:5]]
    return "; ".join(parts)
