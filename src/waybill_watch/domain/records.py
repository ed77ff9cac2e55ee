"""Compact records of the facts kept per waybill.

Instants are epoch milliseconds. Personal data is masked when a record is built, so it is never
stored in clear. How a waybill state stores its records is ``state_codec``'s business; enums are
stored as indexes into the append-only tables below. ``load_v1`` reads a record's list form of
state layout v1.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any, TypeVar, dataclass_transform

from waybill_watch.domain.clock import to_ms
from waybill_watch.domain.ids import stable_id
from waybill_watch.domain.types import CourierAlert, CourierAlertKind, Scan, SignType, Status
from waybill_watch.masking import mask_name, mask_text
from waybill_watch.models.order import OrderEvent

# Enum members as module constants: member lookup on an enum class is slow in CPython 3.11.
_OUT_FOR_DELIVERY = Status.OUT_FOR_DELIVERY

MAX_TEXT = 120
NO_KEY = "-"

#: Stored as indexes: append only, never reorder.
STATUS_CODES: tuple[Status, ...] = (
    Status.INFO_RECEIVED,
    Status.PICKED_UP,
    Status.IN_TRANSIT,
    Status.OUT_FOR_DELIVERY,
    Status.AVAILABLE_FOR_PICKUP,
    Status.DELIVERED,
    Status.FAILED_ATTEMPT,
    Status.EXCEPTION,
    Status.REJECTED,
    Status.RETURNING,
    Status.RETURNED,
    Status.CUSTOMS,
)
SIGN_CODES: tuple[SignType, ...] = (
    SignType.RECIPIENT,
    SignType.PROXY,
    SignType.LOCKER,
    SignType.STATION,
    SignType.UNKNOWN,
)
ORDER_KINDS: tuple[str, ...] = ("shipped", "receipt_confirmed", "not_received_reported")
ALERT_CODES: tuple[CourierAlertKind, ...] = (
    CourierAlertKind.NO_FIRST_SCAN,
    CourierAlertKind.DELIVERY_OVERDUE,
    CourierAlertKind.TRANSIT_STALL,
    CourierAlertKind.LOCKER_UNCOLLECTED,
)

#: Tie-break for scans with the same event time: the later lifecycle step sorts last.
RANK: dict[Status, int] = {
    Status.INFO_RECEIVED: 0,
    Status.PICKED_UP: 1,
    Status.CUSTOMS: 2,
    Status.IN_TRANSIT: 2,
    Status.OUT_FOR_DELIVERY: 3,
    Status.AVAILABLE_FOR_PICKUP: 4,
    Status.FAILED_ATTEMPT: 4,
    Status.EXCEPTION: 4,
    Status.REJECTED: 5,
    Status.RETURNING: 5,
    Status.DELIVERED: 6,
    Status.RETURNED: 6,
}
#: Dropped first when a waybill exceeds MAX_SCANS.
ROUTINE = frozenset({Status.INFO_RECEIVED, Status.PICKED_UP, Status.IN_TRANSIT, Status.CUSTOMS})


#: Site and city names repeat across waybills: mask each distinct one once.
_mask_place = lru_cache(maxsize=8192)(mask_text)


def short_ref(event_id: str) -> str:
    """A 64-bit hash of an event id: enough to recognise duplicates within one waybill."""
    return stable_id("seen", event_id, size=8)


_R = TypeVar("_R")


@dataclass_transform(frozen_default=True)
def record(cls: type[_R]) -> type[_R]:
    """A stored fact: a slotted dataclass, immutable to the type checker (``frozen``).

    At run time it is not frozen (equality and hash are those of a frozen one): a frozen
    dataclass's ``__init__`` sets each field through ``object.__setattr__``, about seven times
    the cost of a plain slot store, and loading a waybill state builds every record it holds.
    """
    return dataclass(slots=True, unsafe_hash=True)(cls)


def _trim(row: list[Any]) -> list[Any]:
    while row and row[-1] is None:
        row.pop()
    return row


def _pad(row: list[Any], size: int) -> list[Any]:
    return row + [None] * (size - len(row))


@record
class ScanRecord:
    """What the detectors and the evidence need of one scan."""

    t: int  # event_time, epoch ms
    status: Status
    event_id: str
    site: str | None = None
    city: str | None = None
    sign_type: SignType | None = None
    code: str | None = None  # the feed's own status code
    signer: str | None = None  # masked
    text: str | None = None  # masked courier text, only for statuses where it is evidence

    @property
    def order(self) -> tuple[int, int, str]:
        """Event-time order, ties broken by lifecycle rank then event id (deterministic)."""
        return (self.t, RANK[self.status], self.event_id)

    @classmethod
    def from_scan(cls, scan: Scan) -> ScanRecord:
        """Summarise a scan; personal data is masked before it is ever stored."""
        keep_text = scan.status not in ROUTINE and scan.status is not _OUT_FOR_DELIVERY
        text = mask_text(scan.description)[:MAX_TEXT] if keep_text and scan.description else None
        return cls(
            t=to_ms(scan.event_time),
            status=scan.status,
            event_id=scan.event_id,
            site=_mask_place(scan.site) if scan.site else None,
            city=_mask_place(scan.city) if scan.city else None,
            sign_type=scan.sign_type,
            code=scan.courier_code,
            signer=mask_name(scan.signer) if scan.signer else None,
            text=text,
        )

    @classmethod
    def load_v1(cls, raw: list[Any]) -> ScanRecord:
        """From the v1 state layout: ``[t, status, event_id, site, city, sign, code, signer,
        text]`` (trailing nulls trimmed)."""
        t, status, event_id, site, city, sign, code, signer, text = _pad(raw, 9)
        return cls(
            t,
            STATUS_CODES[status],
            event_id,
            site,
            city,
            SIGN_CODES[sign] if sign is not None else None,
            code,
            signer,
            text,
        )


@record
class OrderFact:
    """One merchant order event, reduced to what detection and evidence use."""

    t: int  # occurred_at, epoch ms
    kind: str  # one of ORDER_KINDS
    ref: str  # content hash: identical events collapse into one fact
    promise: int | None = None
    city: str | None = None
    merchant: str | None = None
    order_id: str | None = None

    @property
    def order(self) -> tuple[int, str]:
        return (self.t, self.ref)

    @classmethod
    def from_event(cls, event: OrderEvent) -> OrderFact:
        t = to_ms(event.occurred_at)
        promise = to_ms(event.promised_delivery_at) if event.promised_delivery_at else None
        city = event.destination.city if event.destination is not None else None
        ref = stable_id(
            "order", event.type, event.waybill, t, promise, city, event.merchant, event.order_id
        )
        return cls(t, event.type, ref, promise, city, event.merchant, event.order_id)

    @classmethod
    def load_v1(cls, raw: list[Any]) -> OrderFact:
        """From the v1 state layout: ``[t, kind, ref, promise, city, merchant, order_id]``."""
        t, kind, ref, promise, city, merchant, order_id = _pad(raw, 7)
        return cls(t, ORDER_KINDS[kind], ref, promise, city, merchant, order_id)


@record
class AlertFact:
    """The latest courier alert of one kind (Kdniao StateEx 401/402/403/412)."""

    kind: CourierAlertKind
    reported: int  # epoch ms
    received: int  # epoch ms
    code: str
    message: str = ""

    @classmethod
    def from_alert(cls, alert: CourierAlert) -> AlertFact:
        message = mask_text(alert.message)[:MAX_TEXT]
        kind = CourierAlertKind(alert.kind)
        received = to_ms(alert.received_at)
        return cls(kind, to_ms(alert.reported_at), received, alert.courier_code, message)

    @classmethod
    def load_v1(cls, raw: list[Any]) -> AlertFact:
        """From the v1 state layout: ``[kind, reported, received, code, message]``."""
        kind, reported, received, code, message = raw
        return cls(ALERT_CODES[kind], reported, received, code, message)


@dataclass(slots=True)
class Episode:
    """The open episode of one anomaly type for one subject.

    ``key`` is the episode identity fed to ``ids.anomaly_id``; it is derived from facts (see
    ``episodes.py``), so the same facts give the same key on every run.
    """

    key: str
    opened: int  # detected_at of the open, epoch ms
    reasons: list[str]
    support: int  # how many facts back it; growth means a new trigger -> ``updated``
    site: str | None = None

    def dump(self) -> list[Any]:
        return _trim([self.key, self.opened, self.reasons, self.support, self.site])

    @classmethod
    def load(cls, raw: list[Any]) -> Episode:
        key, opened, reasons, support, site = _pad(raw, 5)
        return cls(key, opened, list(reasons), support, site)
