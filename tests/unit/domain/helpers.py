"""Builders for domain tests: scans, pushes and order events with literal times."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from waybill_watch.domain.ids import scan_event_id
from waybill_watch.domain.types import (
    CourierAlert,
    CourierAlertKind,
    Scan,
    SignType,
    Status,
    WaybillUpdate,
)
from waybill_watch.models.order import Destination, OrderEvent

SH = ZoneInfo("Asia/Shanghai")
#: A Friday morning in Shanghai; every test time is written relative to it.
T0 = datetime(2026, 11, 20, 9, 0, tzinfo=SH)
#: ``waybill_retention_days`` default: a quiet waybill's only deadline is its retirement.
RETENTION = timedelta(days=30)
WAYBILL = "YT1234567890123"
COURIER = "YTO"


def at(hours: float = 0, minutes: float = 0) -> datetime:
    """T0 plus a literal offset."""
    return T0 + timedelta(hours=hours, minutes=minutes)


def scan(
    status: Status | str,
    when: datetime,
    *,
    waybill: str = WAYBILL,
    courier: str = COURIER,
    site: str | None = None,
    city: str | None = None,
    sign_type: SignType | str | None = None,
    description: str = "",
    code: str | None = None,
    signer: str | None = None,
    received: datetime | None = None,
) -> Scan:
    status = Status(status)
    text = description or f"{status} @ {site or city or '-'}"
    return Scan(
        waybill=waybill,
        courier=courier,
        event_time=when,
        received_at=received or when,
        status=status,
        source_feed="canonical",
        event_id=scan_event_id(waybill, courier, when.isoformat(), code or str(status), text),
        sign_type=SignType(sign_type) if sign_type is not None else None,
        signer=signer,
        city=city,
        site=site,
        description=text,
        courier_code=code,
    )


def push(
    *scans: Scan,
    received: datetime | None = None,
    alerts: tuple[CourierAlert, ...] = (),
    waybill: str = WAYBILL,
    courier: str = COURIER,
) -> WaybillUpdate:
    when = received or max((s.received_at for s in scans), default=T0)
    return WaybillUpdate(
        waybill=scans[0].waybill if scans else waybill,
        courier=scans[0].courier if scans else courier,
        received_at=when,
        source_feed="canonical",
        scans=list(scans),
        alerts=list(alerts),
    )


def alert(
    kind: CourierAlertKind, received: datetime, *, waybill: str = WAYBILL, code: str = "403"
) -> CourierAlert:
    return CourierAlert(
        waybill=waybill,
        courier=COURIER,
        kind=kind,
        reported_at=received,
        received_at=received,
        source_feed="kdniao",
        courier_code=code,
        message="courier alert",
    )


def order(
    kind: str,
    when: datetime,
    *,
    waybill: str = WAYBILL,
    promise: datetime | None = None,
    city: str | None = None,
    **extra: Any,
) -> OrderEvent:
    return OrderEvent(
        type=kind,
        waybill=waybill,
        courier=COURIER,
        merchant=extra.get("merchant", "shop-42"),
        order_id=extra.get("order_id", "O-981"),
        occurred_at=when,
        promised_delivery_at=promise,
        destination=Destination(province="浙江省", city=city) if city else None,
    )


class Driver:
    """Feeds one waybill's facts through a ``WaybillEngine`` and keeps what came out."""

    def __init__(self, settings: Any = None) -> None:
        from waybill_watch.domain.config import DetectionSettings
        from waybill_watch.domain.engine import WaybillEngine
        from waybill_watch.domain.state import WaybillState

        self.engine = WaybillEngine(settings or DetectionSettings())
        self.state: WaybillState | None = None
        self.events: list[Any] = []
        self.signals: list[Any] = []
        self.next_due: datetime | None = None

    def _keep(self, outcome: Any) -> list[Any]:
        self.state = outcome.state
        self.events.extend(outcome.anomalies)
        self.signals.extend(outcome.signals)
        self.next_due = outcome.next_due
        return list(outcome.anomalies)

    def update(
        self,
        *scans: Scan,
        now: datetime | None = None,
        alerts: tuple[CourierAlert, ...] = (),
    ) -> list[Any]:
        """One push; the clock defaults to the push's received_at."""
        update = push(*scans, received=now, alerts=alerts)
        return self._keep(self.engine.on_update(self.state, update, now or update.received_at))

    def order(self, kind: str, when: datetime, now: datetime | None = None, **kw: Any) -> list[Any]:
        return self._keep(self.engine.on_order(self.state, order(kind, when, **kw), now or when))

    def tick(self, now: datetime) -> list[Any]:
        assert self.state is not None
        return self._keep(self.engine.on_due(self.state, now))


def summary(events: list[Any]) -> list[tuple[str, str, list[str]]]:
    """(type, status, reasons) of each event, for compact assertions."""
    return [(e.type, e.status, list(e.reasons)) for e in events]


def of(anomaly_type: str, events: list[Any]) -> list[Any]:
    """Only the events of one anomaly type."""
    return [e for e in events if e.type == anomaly_type]
