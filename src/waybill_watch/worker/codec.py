"""Wire codec of the internal topics (``waybill-watch.updates``): updates and clock ticks.

Only this process family writes these topics, so decoding is the trusted fast path.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from waybill_watch import jsonio
from waybill_watch.domain.signals import Signal
from waybill_watch.domain.types import CourierAlert, CourierAlertKind, WaybillUpdate
from waybill_watch.models.order import OrderEvent
from waybill_watch.models.tracking import scan_from_wire, scan_to_wire
from waybill_watch.timefmt import format_rfc3339, parse_rfc3339

TICK = "tick"
UPDATE = "update"
SIGNAL = "signal"
ORDER = "order"


def encode_update(update: WaybillUpdate) -> bytes:
    """One waybill's part of one push."""
    return jsonio.dumps(
        {
            "kind": UPDATE,
            "waybill": update.waybill,
            "courier": update.courier,
            "received_at": format_rfc3339(update.received_at),
            "source_feed": update.source_feed,
            "merchant": update.merchant,
            "scans": [scan_to_wire(s) for s in update.scans],
            "alerts": [_alert_to_wire(a) for a in update.alerts],
        }
    )


def encode_tick(now: datetime) -> bytes:
    """A clock tick for one partition."""
    return jsonio.dumps({"kind": TICK, "now": format_rfc3339(now)})


def encode_order(order: OrderEvent, received_at: datetime) -> bytes:
    """A merchant order event read from an envelope, with the envelope's ``received_at``.

    Sent through the updates topic (not only ``orders.events``) so that a waybill's pushes and
    order events keep the order in which they were received, as in ``replay``.
    """
    return jsonio.dumps(
        {
            "kind": ORDER,
            "received_at": format_rfc3339(received_at),
            "order": order.model_dump(mode="json"),
        }
    )


def encode_signal(signal: Signal, now: datetime) -> bytes:
    """A re-keyed fact with the sender's clock (it drives the receiver's stream clock)."""
    return jsonio.dumps({"kind": SIGNAL, "now": format_rfc3339(now), "signal": signal.to_dict()})


def decode(data: bytes) -> tuple[str, Any]:
    """``("update", WaybillUpdate)``, ``("order", (OrderEvent, received_at))``,
    ``("tick", datetime)`` or ``("signal", (Signal, now))``."""
    doc = jsonio.loads(data)
    kind = doc.get("kind")
    if kind == TICK:
        return TICK, parse_rfc3339(doc["now"])
    if kind == ORDER:
        return ORDER, (OrderEvent.model_validate(doc["order"]), parse_rfc3339(doc["received_at"]))
    if kind == SIGNAL:
        return SIGNAL, (Signal.from_dict(doc["signal"]), parse_rfc3339(doc["now"]))
    if kind == UPDATE:
        return UPDATE, WaybillUpdate(
            waybill=doc["waybill"],
            courier=doc["courier"],
            received_at=parse_rfc3339(doc["received_at"]),
            source_feed=doc["source_feed"],
            merchant=doc.get("merchant"),
            scans=[scan_from_wire(s) for s in doc["scans"]],
            alerts=[_alert_from_wire(a) for a in doc["alerts"]],
        )
    raise ValueError(f"unknown internal message kind {kind!r}")


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
