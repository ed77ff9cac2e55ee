"""Building canonical scans and grouping one push's scans and alerts per waybill."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from waybill_watch.domain.ids import scan_event_id
from waybill_watch.domain.types import CourierAlert, Scan, SignType, Status, WaybillUpdate
from waybill_watch.feeds.common import EventTime
from waybill_watch.feeds.text_rules import SignRule, TextFacts, sign_type_for


def make_scan(
    *,
    feed: str,
    waybill: str,
    courier: str,
    when: EventTime,
    received_at: datetime,
    status: Status,
    rule: SignRule | None,
    code: str | None,
    text: str,
    facts: TextFacts,
    city: str | None,
    identity: str | None = None,
) -> Scan:
    """One canonical scan; ``sign_type``/``signer`` only on ``delivered``.

    ``event_id`` is built from waybill, courier, the instant and ``identity`` (default: the
    text) — never from the status code, which providers re-classify between pushes — so every
    re-push of the scan keeps its id.
    """
    sign_type: SignType | None = None
    signer: str | None = None
    if status is Status.DELIVERED:
        sign_type = sign_type_for(rule, facts)
        signer = facts.signer
    return Scan(
        waybill=waybill,
        courier=courier,
        event_time=when.at,
        received_at=received_at,
        status=status,
        source_feed=feed,
        event_id=scan_event_id(
            waybill, courier, when.key, "", text if identity is None else identity
        ),
        sign_type=sign_type,
        signer=signer,
        city=city or facts.city,
        site=facts.site,
        description=text,
        courier_code=code,
    )


def latest_position(times: list[datetime]) -> int:
    """Position of the latest time (ties: the later position), -1 for an empty list."""
    best = -1
    for position, at in enumerate(times):
        if best < 0 or at >= times[best]:
            best = position
    return best


@dataclass(slots=True)
class _Pending:
    update: WaybillUpdate
    seen: set[str]


class Updates:
    """Collects one push's scans and alerts into one ``WaybillUpdate`` per (waybill, courier).

    Exact duplicate scans (same ``event_id``) within the push are dropped; scans come out in
    event-time order (stable), whatever order the provider sent them in.
    """

    __slots__ = ("_by_key", "feed", "received_at")

    def __init__(self, feed: str, received_at: datetime) -> None:
        self.feed = feed
        self.received_at = received_at
        self._by_key: dict[tuple[str, str], _Pending] = {}

    def _pending(self, waybill: str, courier: str) -> _Pending:
        key = (waybill, courier)
        found = self._by_key.get(key)
        if found is None:
            update = WaybillUpdate(waybill, courier, self.received_at, self.feed)
            found = self._by_key[key] = _Pending(update, set())
        return found

    def add_scan(self, scan: Scan) -> None:
        pending = self._pending(scan.waybill, scan.courier)
        if scan.event_id not in pending.seen:
            pending.seen.add(scan.event_id)
            pending.update.scans.append(scan)

    def add_alert(self, alert: CourierAlert) -> None:
        pending = self._pending(alert.waybill, alert.courier)
        if alert not in pending.update.alerts:
            pending.update.alerts.append(alert)

    def build(self) -> list[WaybillUpdate]:
        """The updates that say something (scans or alerts), scans sorted by event time."""
        out: list[WaybillUpdate] = []
        for pending in self._by_key.values():
            update = pending.update
            if not update.scans and not update.alerts:
                continue
            update.scans.sort(key=_scan_time)
            out.append(update)
        return out


def _scan_time(scan: Scan) -> datetime:
    return scan.event_time
