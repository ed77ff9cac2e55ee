"""Wire codec of the internal topics (``waybill-watch.updates``, ``waybill-watch.signals``).

Every record names its source (``src``: the upstream partition it was derived from) so the
receiving partition can keep a low watermark over its sources (``domain.clock.Watermark``);
ticks carry a source's mark, ``idle`` when it is caught up on the stream clock. Only this
process family writes these topics, so decoding is the trusted fast path.

Signals travel in batches (``encode_batch``): one record per signals partition per tick of a
waybill partition, holding that partition's signals in the order they were decided. A record
per signal cost two more Kafka records per envelope (the signal and its queue entry's
changelog record) and a pass of the engine per signal. Single ``signal`` records (written by
earlier versions) are still read.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from waybill_watch import jsonio
from waybill_watch.domain.clock import to_ms
from waybill_watch.domain.signals import Signal
from waybill_watch.domain.types import (
    CourierAlert,
    CourierAlertKind,
    PendingUpdate,
    Scan,
    WaybillUpdate,
)
from waybill_watch.models.order import OrderEvent
from waybill_watch.models.tracking import scan_from_wire, scan_to_wire
from waybill_watch.timefmt import format_rfc3339, parse_rfc3339

TICK = "tick"
UPDATE = "update"
SIGNAL = "signal"
BATCH = "signals"
ORDER = "order"


#: ``(draft in wire form, waybill, courier, received_at) -> Scan`` of one draft feed.
DraftBuilder = Callable[[list[Any], str, str, datetime], Scan]


def encode_update(update: WaybillUpdate, src: str) -> bytes:
    """One waybill's part of one push, its scans built."""
    doc = _update_doc(update, src)
    doc["scans"] = [scan_to_wire(s) for s in update.scans]
    return jsonio.dumps(doc)


def encode_pending(
    pending: PendingUpdate, src: str, draft_to_wire: Callable[[Any], list[Any]]
) -> bytes:
    """One waybill's part of one push, its scans unbuilt: ``entries`` holds, in push order,
    each scan's wire form (an object) or its feed's draft (an array led by its ``event_id``),
    so the waybill stage decodes and builds only the scans its state lacks."""
    doc = _update_doc(pending.update, src)
    doc["entries"] = [
        scan_to_wire(e) if isinstance(e, Scan) else draft_to_wire(e)
        for e in pending.entries.values()
    ]
    return jsonio.dumps(doc)


def _update_doc(update: WaybillUpdate, src: str) -> dict[str, Any]:
    """An update record's fields other than its scans."""
    return {
        "kind": UPDATE,
        "src": src,
        "waybill": update.waybill,
        "courier": update.courier,
        "received_at": format_rfc3339(update.received_at),
        "source_feed": update.source_feed,
        "merchant": update.merchant,
        "alerts": [_alert_to_wire(a) for a in update.alerts],
    }


def encode_tick(marks: dict[str, tuple[int, bool]]) -> bytes:
    """The marks ``(ms, idle)`` of the sources one process owns, for one downstream partition."""
    return jsonio.dumps({"kind": TICK, "marks": marks})


def encode_order(order: OrderEvent, received_at: datetime, src: str) -> bytes:
    """A merchant order event read from an envelope, with the envelope's ``received_at``.

    Sent through the updates topic (not only ``orders.events``) so that a waybill's pushes and
    order events keep the order in which they were received, as in ``replay``.
    """
    return jsonio.dumps(
        {
            "kind": ORDER,
            "src": src,
            "received_at": format_rfc3339(received_at),
            "order": order.model_dump(mode="json"),
        }
    )


def encode_signal(signal: Signal, now: datetime, src: str) -> bytes:
    """A re-keyed fact with the sender's clock (a mark of its source; ``ms``: the same as
    epoch ms, which the receiver reads without decoding the rest)."""
    return jsonio.dumps(
        {
            "kind": SIGNAL,
            "src": src,
            "now": format_rfc3339(now),
            "ms": to_ms(now),
            "signal": signal.to_dict(),
        }
    )


def encode_batch(src: str, signals: list[bytes]) -> bytes:
    """Signals of one source (``encode_signal`` records, in the order they were decided) as
    one record: their JSON documents spliced into an array, not decoded again."""
    return b'{"kind":"signals","src":"%s","signals":[%s]}' % (src.encode(), b",".join(signals))


def peek(data: bytes) -> tuple[str, str, Any]:
    """``(kind, src, payload)`` of a signals-topic record without building objects: ``tick`` →
    its marks; ``signals`` (a batch) and ``signal`` (one, as earlier versions sent them) → the
    list of signal documents (``signal_ms``, ``signal_of``)."""
    doc = jsonio.loads(data)
    kind = doc.get("kind")
    if kind == TICK:
        return TICK, doc.get("src", ""), doc["marks"]
    if kind == BATCH:
        return BATCH, doc["src"], doc["signals"]
    if kind == SIGNAL:
        return BATCH, doc["src"], [doc]
    return kind, doc.get("src", ""), doc


def signal_ms(doc: dict[str, Any]) -> int:
    """The sender's clock of a signal document, epoch ms."""
    ms = doc.get("ms")
    return int(ms) if ms is not None else to_ms(parse_rfc3339(doc["now"]))


def signal_of(doc: dict[str, Any]) -> tuple[Signal, datetime]:
    """The signal of a signal document and the sender's clock."""
    return Signal.from_dict(doc["signal"]), parse_rfc3339(doc["now"])


def decode(data: bytes, drafts: Mapping[str, DraftBuilder] | None = None) -> tuple[str, str, Any]:
    """``(kind, src, payload)`` of an updates-topic record: ``update`` → PendingUpdate (scans
    unbuilt: ``realise``), ``order`` → (OrderEvent, received_at), ``tick`` → {source:
    [mark_ms, idle]}. ``drafts`` builds the drafts of each draft feed. Signals-topic records
    are read with ``peek``."""
    doc = jsonio.loads(data)
    kind = doc.get("kind")
    src = doc.get("src", "")
    if kind == TICK:
        return TICK, src, doc["marks"]
    if kind == ORDER:
        order = OrderEvent.model_validate(doc["order"])
        return ORDER, src, (order, parse_rfc3339(doc["received_at"]))
    if kind == UPDATE:
        update = WaybillUpdate(
            waybill=doc["waybill"],
            courier=doc["courier"],
            received_at=parse_rfc3339(doc["received_at"]),
            source_feed=doc["source_feed"],
            merchant=doc.get("merchant"),
            alerts=[_alert_from_wire(a) for a in doc["alerts"]],
        )
        entries: dict[str, Any] = {}
        for entry in doc.get("entries") or doc.get("scans") or ():
            event_id = entry["event_id"] if type(entry) is dict else entry[0]
            entries.setdefault(event_id, entry)
        builder = drafts.get(update.source_feed) if drafts is not None else None
        return UPDATE, src, PendingUpdate(update, entries, _builder(update, builder))
    raise ValueError(f"unknown internal message kind {kind!r}")


def _builder(update: WaybillUpdate, drafts: DraftBuilder | None) -> Callable[[Any], Scan]:
    """Builds one entry of ``update``: a scan's wire form, or a draft of its feed."""
    waybill, courier, received_at = update.waybill, update.courier, update.received_at

    def build(entry: Any) -> Scan:
        if type(entry) is dict:
            return scan_from_wire(entry)
        if drafts is None:
            raise ValueError(f"no draft builder for feed {update.source_feed!r}")
        return drafts(entry, waybill, courier, received_at)

    return build


def _alert_to_wire(alert: CourierAlert) -> dict[str, Any]:
    return {
        "waybill": alert.waybill,
        "courier": alert.courier,
        "kind": alert.kind.value,
        "reported_at": format_rfc3339(alert.reported_at),
        "received_at": format_rfc3339(alert.received_at),
        "source_feed": alert.source_feed,
        "courier_code": alert.courier_code,
        "message": alert.message,
    }


def _alert_from_wire(doc: dict[str, Any]) -> CourierAlert:
    return CourierAlert(
        waybill=doc["waybill"],
        courier=doc["courier"],
        kind=CourierAlertKind(doc["kind"]),
        reported_at=parse_rfc3339(doc["reported_at"]),
        received_at=parse_rfc3339(doc["received_at"]),
        source_feed=doc["source_feed"],
        courier_code=doc["courier_code"],
        message=doc.get("message", ""),
    )
