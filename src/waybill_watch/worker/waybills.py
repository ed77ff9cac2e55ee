"""The per-waybill processor: the thin adapter between Kafka records and ``WaybillEngine``.

Consumes the internal updates topic (normalised pushes + clock ticks), ``tracking.events``
(canonical scans produced by merchants) and ``orders.events``, all keyed by waybill and
co-partitioned with the ``waybills`` table. Before any record is applied, every deadline the
partition's clock has passed fires, so results match ``replay``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime

from pydantic import ValidationError

from waybill_watch import jsonio
from waybill_watch.domain.engine import Outcome, WaybillEngine
from waybill_watch.domain.state import WaybillState
from waybill_watch.domain.types import Scan, WaybillUpdate
from waybill_watch.masking import mask_text
from waybill_watch.metrics import Metrics
from waybill_watch.models.order import OrderEvent
from waybill_watch.models.tracking import TrackingEvent, scan_to_wire
from waybill_watch.timefmt import local_now
from waybill_watch.worker import codec
from waybill_watch.worker.keyed import KeyedStore
from waybill_watch.worker.outputs import ORIGIN_HEADER, Outputs, Send

log = logging.getLogger(__name__)

#: ``source_feed`` of updates built from records merchants produced to ``tracking.events``.
EXTERNAL_EVENTS = "tracking.events"


def public_scan(scan: Scan) -> dict[str, object]:
    """The wire form published on ``tracking.events``: phone numbers and names in the
    courier's text are masked (``event_id`` was computed from the original text)."""
    wire = scan_to_wire(scan)
    wire["description"] = mask_text(scan.description)
    return wire


class WaybillProcessor:
    """Applies one record to one waybill's state and emits what the engine decided."""

    def __init__(
        self,
        engine: WaybillEngine,
        store: KeyedStore,
        send: Send,
        outputs: Outputs,
        metrics: Metrics,
        *,
        origin: str,
        updates_topic: str,
        events_topic: str,
        orders_topic: str,
        signals_topic: str,
    ) -> None:
        self.engine = engine
        self.store = store
        self.send = send
        self.outputs = outputs
        self.metrics = metrics
        self.origin = origin.encode()
        self.updates_topic = updates_topic
        self.events_topic = events_topic
        self.orders_topic = orders_topic
        self.signals_topic = signals_topic

    async def handle(
        self,
        topic: str,
        partition: int,
        key: bytes | None,
        value: bytes,
        headers: Mapping[str, bytes],
    ) -> None:
        """Process one record of any of the three input topics."""
        if topic == self.updates_topic:
            kind, payload = codec.decode(value)
            if kind == codec.TICK:
                await self._advance(partition, payload)
                return
            if kind == codec.ORDER:
                order, received_at = payload
                now = await self._advance(partition, received_at)
                await self._apply_order(order, now, partition)
                return
            update: WaybillUpdate = payload
            now = await self._advance(partition, update.received_at)
            await self._apply_update(update, now, partition)
        elif topic == self.events_topic:
            if headers.get(ORIGIN_HEADER) == self.origin:
                return  # a scan this app forwarded itself; already applied
            scan_update = await self._read_external_scan(topic, key, value)
            if scan_update is not None:
                now = await self._advance(partition, scan_update.received_at)
                await self._apply_update(scan_update, now, partition)
        elif topic == self.orders_topic:
            if headers.get(ORIGIN_HEADER) == self.origin:
                return  # read from an envelope and already applied via the updates topic
            order = await self._read_external_order(topic, key, value)
            if order is not None:
                now = await self._advance(partition, None)
                await self._apply_order(order, now, partition)
        else:  # pragma: no cover - the agent subscribes to exactly these topics
            raise ValueError(f"unexpected topic {topic}")

    async def _advance(self, partition: int, observed: datetime | None) -> datetime:
        """Move the partition clock and fire every deadline it has passed."""
        now = self.store.clock.now(partition, observed)
        entries, ready = self.store.due(partition, now)
        self.metrics.deadlines_examined.inc(len(entries))
        for waybill, state in ready:
            self.metrics.deadlines_fired.inc()
            outcome = self.engine.on_due(WaybillState.from_bytes(state), now)
            await self._commit(waybill, outcome, now, partition)
        self.store.done(partition, entries, now)
        return now

    async def _apply_update(self, update: WaybillUpdate, now: datetime, partition: int) -> None:
        outcome = self.engine.on_update(self._load(update.waybill), update, now)
        new = len(outcome.new_scans)
        self.metrics.tracking_events_processed.labels(update.source_feed, "new").inc(new)
        duplicates = len(update.scans) - new
        if duplicates > 0:
            self.metrics.tracking_events_processed.labels(update.source_feed, "duplicate").inc(
                duplicates
            )
        forward = update.source_feed != EXTERNAL_EVENTS  # external scans are already there
        for scan in outcome.new_scans if forward else ():
            await self.send(
                self.events_topic,
                scan.waybill.encode(),
                jsonio.dumps(public_scan(scan)),
                {ORIGIN_HEADER: self.origin},
            )
        await self._commit(update.waybill, outcome, now, partition)

    async def _apply_order(self, order: OrderEvent, now: datetime, partition: int) -> None:
        outcome = self.engine.on_order(self._load(order.waybill), order, now)
        self.metrics.order_events_processed.labels(order.type).inc()
        await self._commit(order.waybill, outcome, now, partition)

    def _load(self, waybill: str) -> WaybillState | None:
        raw = self.store.load(waybill)
        return WaybillState.from_bytes(raw) if raw is not None else None

    async def _commit(self, waybill: str, outcome: Outcome, now: datetime, partition: int) -> None:
        """Emit anomalies and re-keyed signals, then store state + deadline.

        Output goes to the producer before the table write (whose changelog record Faust
        buffers and sends later), so after a crash the restored state never contains facts
        whose output was lost: re-processing emits it again (at-least-once). A retired
        waybill's marker is stored like any state; an expired marker is deleted (a changelog
        tombstone, so compaction frees it).
        """
        if outcome.forget:
            self.store.forget(waybill)
            self.metrics.waybills_retired.labels("forgotten").inc()
            return
        if outcome.retired:
            self.metrics.waybills_retired.labels("retired").inc()
        for anomaly in outcome.anomalies:
            await self.outputs.anomaly(anomaly)
        for signal in outcome.signals:
            await self.send(
                self.signals_topic, signal.key.encode(), codec.encode_signal(signal, now), None
            )
        self.store.save(waybill, outcome.state.to_bytes(), outcome.next_due, now, partition)

    async def _read_external_scan(
        self, topic: str, key: bytes | None, value: bytes
    ) -> WaybillUpdate | None:
        try:
            event = TrackingEvent.model_validate_json(value)
        except ValidationError as exc:
            await self._reject(topic, key, value, "bad_tracking_event", str(exc.errors()[:3]))
            return None
        if key is not None and key != event.waybill.encode():
            await self._reject(topic, key, value, "wrong_key", "record key must be the waybill")
            return None
        scan = event.to_scan()
        return WaybillUpdate(
            waybill=scan.waybill,
            courier=scan.courier,
            received_at=scan.received_at,
            source_feed=EXTERNAL_EVENTS,
            scans=[scan],
        )

    async def _read_external_order(
        self, topic: str, key: bytes | None, value: bytes
    ) -> OrderEvent | None:
        try:
            order = OrderEvent.model_validate_json(value)
        except ValidationError as exc:
            await self._reject(topic, key, value, "bad_order_event", str(exc.errors()[:3]))
            return None
        if key is not None and key != order.waybill.encode():
            await self._reject(topic, key, value, "wrong_key", "record key must be the waybill")
            return None
        return order

    async def _reject(
        self, topic: str, key: bytes | None, value: bytes, reason: str, error: str
    ) -> None:
        log.warning("%s record rejected: %s", topic, reason)
        await self.outputs.dead_letter(
            source=topic,
            reason=reason,
            error=error,
            payload=value,
            now=local_now(self.store.clock.timezone),
            key=key,
        )
