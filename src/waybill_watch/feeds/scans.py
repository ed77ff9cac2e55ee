"""Building canonical scans and grouping one push's scans and alerts per waybill."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple

from waybill_watch.domain.ids import scan_event_id
from waybill_watch.domain.types import (
    CourierAlert,
    CourierAlertKind,
    PendingUpdate,
    Scan,
    ScanBuilder,
    SignType,
    Status,
    WaybillUpdate,
)
from waybill_watch.feeds.base import Rejected
from waybill_watch.feeds.common import EventTime
from waybill_watch.feeds.text_rules import SignRule, TextFacts, sign_type_for

# Enum members as module constants: member lookup on an enum class is slow in CPython 3.11.
_DELIVERED = Status.DELIVERED


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
    event_id: str | None = None,
) -> Scan:
    """One canonical scan; ``sign_type``/``signer`` only on ``delivered``.

    ``event_id`` is built from waybill, courier, the instant and ``identity`` (default: the
    text) — never from the status code, which providers re-classify between pushes — so every
    re-push of the scan keeps its id. A caller that already computed that id passes it.
    """
    sign_type: SignType | None = None
    signer: str | None = None
    if status is _DELIVERED:
        sign_type = sign_type_for(rule, facts)
        signer = facts.signer
    return Scan(
        waybill=waybill,
        courier=courier,
        event_time=when.at,
        received_at=received_at,
        status=status,
        source_feed=feed,
        event_id=event_id
        if event_id is not None
        else scan_event_id(waybill, courier, when.key, "", text if identity is None else identity),
        sign_type=sign_type,
        signer=signer,
        city=city or facts.city,
        site=facts.site,
        description=text,
        courier_code=code,
    )


class WaybillRef(NamedTuple):
    """The waybill a push's entries belong to (feeds with one waybill per push)."""

    waybill: str
    courier: str
    received_at: datetime


def latest_position(times: list[datetime]) -> int:
    """Position of the latest time (ties: the later position), -1 for an empty list."""
    best = -1
    for position, at in enumerate(times):
        if best < 0 or at >= times[best]:
            best = position
    return best


@dataclass(slots=True)
class PendingParse:
    """``ParseResult`` of a feed whose updates come out as ``PendingUpdate``s."""

    updates: list[PendingUpdate] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)
    ignored: str | None = None


class Updates:
    """Collects one push's scans and alerts into one ``WaybillUpdate`` per (waybill, courier).

    Exact duplicate scans (same ``event_id``) within the push are dropped; scans come out in
    event-time order (stable), whatever order the provider sent them in. A feed may put drafts
    in ``entries`` instead of scans (built by ``builder``), so that ``pending`` can hand them
    out unbuilt.
    """

    __slots__ = ("_by_key", "builder", "feed", "received_at")

    def __init__(
        self, feed: str, received_at: datetime, builder: ScanBuilder | None = None
    ) -> None:
        self.feed = feed
        self.received_at = received_at
        self.builder = builder
        self._by_key: dict[tuple[str, str], PendingUpdate] = {}

    def _pending(self, waybill: str, courier: str) -> PendingUpdate:
        key = (waybill, courier)
        found = self._by_key.get(key)
        if found is None:
            update = WaybillUpdate(waybill, courier, self.received_at, self.feed)
            found = self._by_key[key] = PendingUpdate(update, {}, self.builder)
        return found

    def add_scan(self, scan: Scan) -> None:
        entries = self._pending(scan.waybill, scan.courier).entries
        if scan.event_id not in entries:
            entries[scan.event_id] = scan

    def entries(self, waybill: str, courier: str) -> dict[str, Any]:
        """The (event_id → scan or draft) map of one waybill, for a feed adding many at once;
        the first entry of an id wins, as with ``add_scan``."""
        return self._pending(waybill, courier).entries

    def alert(
        self,
        waybill: str,
        courier: str,
        kind: CourierAlertKind,
        code: str,
        message: str,
        reported_at: datetime | None = None,
    ) -> None:
        """Add a courier-reported alert; feed and ``received_at`` come from this push
        (``reported_at`` defaults to the push's ``received_at``)."""
        self.add_alert(
            CourierAlert(
                waybill=waybill,
                courier=courier,
                kind=kind,
                reported_at=reported_at if reported_at is not None else self.received_at,
                received_at=self.received_at,
                source_feed=self.feed,
                courier_code=code,
                message=message,
            )
        )

    def add_alert(self, alert: CourierAlert) -> None:
        pending = self._pending(alert.waybill, alert.courier)
        if alert not in pending.update.alerts:
            pending.update.alerts.append(alert)

    def pending(self) -> list[PendingUpdate]:
        """The updates that say something (scans or alerts), scans not built yet."""
        return [p for p in self._by_key.values() if p.entries or p.update.alerts]

    def build(self) -> list[WaybillUpdate]:
        """The updates that say something (scans or alerts), scans sorted by event time."""
        return [pending.realise() for pending in self.pending()]
