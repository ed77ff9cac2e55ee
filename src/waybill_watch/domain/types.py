"""Core value types fed to the state machine and detectors.

Scans are plain slotted dataclasses rather than pydantic models: the replay path handles
millions of them, and validation already happened at the edge (feed parsers / wire models).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any


class Status(StrEnum):
    """Canonical scan status (contract §5)."""

    INFO_RECEIVED = "info_received"
    PICKED_UP = "picked_up"
    IN_TRANSIT = "in_transit"
    OUT_FOR_DELIVERY = "out_for_delivery"
    AVAILABLE_FOR_PICKUP = "available_for_pickup"
    DELIVERED = "delivered"
    FAILED_ATTEMPT = "failed_attempt"
    EXCEPTION = "exception"
    REJECTED = "rejected"
    RETURNING = "returning"
    RETURNED = "returned"
    CUSTOMS = "customs"


class SignType(StrEnum):
    """Who or what signed a delivered parcel (contract §5)."""

    RECIPIENT = "recipient"
    PROXY = "proxy"
    LOCKER = "locker"
    STATION = "station"
    UNKNOWN = "unknown"


class CourierAlertKind(StrEnum):
    """Alerts a courier or data service raises itself (not scans).

    Each maps onto one of our anomaly types with reason ``courier_reported``.
    """

    NO_FIRST_SCAN = "no_first_scan"  # Kdniao 401, Kuaidi100 abort "3天查询无记录"
    DELIVERY_OVERDUE = "delivery_overdue"  # Kdniao 402
    TRANSIT_STALL = "transit_stall"  # Kdniao 403, Kuaidi100 abort "60天无变化"
    LOCKER_UNCOLLECTED = "locker_uncollected"  # Kdniao 412


@dataclass(slots=True, frozen=True)
class Scan:
    """One courier scan of one waybill, in canonical form."""

    waybill: str
    courier: str
    event_time: datetime
    received_at: datetime
    status: Status
    source_feed: str
    event_id: str
    sign_type: SignType | None = None
    signer: str | None = None
    city: str | None = None
    site: str | None = None
    description: str = ""
    courier_code: str | None = None


@dataclass(slots=True, frozen=True)
class CourierAlert:
    """A courier-reported condition for one waybill (e.g. Kdniao StateEx 403)."""

    waybill: str
    courier: str
    kind: CourierAlertKind
    reported_at: datetime
    received_at: datetime
    source_feed: str
    courier_code: str
    message: str = ""


@dataclass(slots=True)
class WaybillUpdate:
    """Everything one push said about one waybill: its scans and any courier alerts.

    A push of a whole trace is one update (``feed_silence`` counts updates, not scans).
    """

    waybill: str
    courier: str
    received_at: datetime
    source_feed: str
    scans: list[Scan] = field(default_factory=list)
    alerts: list[CourierAlert] = field(default_factory=list)
    merchant: str | None = None


#: Turns a feed's draft of one trace (or a scan's wire form) into its canonical scan.
ScanBuilder = Callable[[Any], Scan]


class DraftError(Exception):
    """A draft of a pending update could not be built into a scan (a feed bug, never input
    the feed accepted: the draft was read from input that passed the feed's checks)."""


@dataclass(slots=True)
class PendingUpdate:
    """One waybill's part of a push whose scans are not built yet: their ids first.

    ``entries`` maps each distinct ``event_id`` (push order, the first occurrence wins) to its
    ``Scan`` or to a draft that ``builder`` turns into one. Building a scan (text rules,
    status, masking, or decoding its wire form) costs far more than its id, and a whole-trace
    push mostly re-sends scans the waybill already has: ``realise(known)`` builds only the
    others. The resulting update gives ``WaybillEngine.on_update`` the same outcome, since it
    drops known ids anyway; the keyed runner's waybill handler realises it against the state
    it loaded, so the worker builds only the new scans of each push.
    """

    update: WaybillUpdate
    entries: dict[str, Any]
    builder: ScanBuilder | None = None

    @property
    def scan_count(self) -> int:
        """How many distinct scans the push carries for this waybill (``len(update.scans)``)."""
        return len(self.entries)

    def realise(self, known: Callable[[str], bool] | None = None) -> WaybillUpdate:
        """The update with its scans built (all, or those ``known`` does not recognise);
        ``DraftError`` when the builder fails."""
        builder = self.builder
        scans: list[Scan] = []
        try:
            for event_id, entry in self.entries.items():
                if known is not None and known(event_id):
                    continue
                scans.append(
                    entry if builder is None or isinstance(entry, Scan) else builder(entry)
                )
        except Exception as exc:
            raise DraftError(f"scan builder failed ({type(exc).__name__}: {exc})") from exc
        scans.sort(key=_scan_time)  # stable: filtering then sorting keeps the full order
        self.update.scans = scans
        return self.update


def _scan_time(scan: Scan) -> datetime:
    return scan.event_time
