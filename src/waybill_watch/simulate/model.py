"""Value types of the simulator: planned scans, pushes, order events, labels and options.

Times are integer epoch milliseconds throughout (whole seconds for courier scans, because
Kdniao's ``AcceptTime`` has no fractions): ints sort and add fast and never round, which keeps
a run byte-for-byte reproducible.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from waybill_watch.domain.episodes import SPECS

SECOND = 1000
MINUTE = 60 * SECOND
HOUR = 60 * MINUTE
DAY = 24 * HOUR

LOCAL_OFFSET_S = 8 * 3600  # China local time (+08:00, no DST since 1991)


def rfc3339(ms: int) -> str:
    """Epoch ms as RFC 3339 in +08:00 with milliseconds (the capture's ``received_at``)."""
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms // 1000 + LOCAL_OFFSET_S))
    return f"{stamp}.{ms % 1000:03d}+08:00"


def kdniao_time(ms: int) -> str:
    """Epoch ms as Kdniao's naive local ``yyyy-MM-dd HH:mm:ss``."""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ms // 1000 + LOCAL_OFFSET_S))


#: Waybill-scope anomaly types, injected per waybill at a rate (contract §6, ``SPECS`` order).
WAYBILL_TYPES: tuple[str, ...] = tuple(t for t, spec in SPECS.items() if spec.scope == "waybill")
#: Group anomalies: each needs a crowd of waybills (a site, a courier), injected by count.
GROUP_TYPES: tuple[str, ...] = tuple(t for t, spec in SPECS.items() if spec.scope != "waybill")
ANOMALY_TYPES: tuple[str, ...] = WAYBILL_TYPES + GROUP_TYPES

#: Contract §6 scope of each type.
SCOPES: dict[str, str] = {t: spec.scope for t, spec in SPECS.items()}


@dataclass(slots=True)
class ScanSpec:
    """One planned courier scan; ``raw``/``enc`` cache its JSON trace and form encoding."""

    at: int
    action: str
    text: str
    city: str
    site: str
    raw: str = ""
    enc: str = ""


@dataclass(slots=True, frozen=True)
class PushSpec:
    """A Kdniao push of the first ``count`` scans of a waybill (a cumulative snapshot).

    ``alert`` is a waybill-level ``StateEx`` the courier raises itself (401/402/403/412).
    """

    at: int
    count: int
    alert: str | None = None
    kind: str = (
        "push"  # push | duplicate | late (older snapshot after a newer) | alert | filler | closing
    )


@dataclass(slots=True, frozen=True)
class OrderSpec:
    """A merchant order event (contract §4)."""

    at: int
    type: str
    promised_at: int | None = None
    destination: tuple[str, str, str] | None = None  # province, city, district


@dataclass(slots=True)
class Label:
    """One injected anomaly the detectors must find (one line of the labels file)."""

    type: str
    subject: str
    reasons: list[str]
    trigger_at: int
    waybill: str | None = None
    courier: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)

    def to_json(self, fmt: Callable[[int], str]) -> dict[str, Any]:
        """The labels-file object; ``fmt`` formats epoch ms as RFC 3339."""
        return {
            "type": self.type,
            "scope": SCOPES[self.type],
            "subject": self.subject,
            "waybill": self.waybill,
            "courier": self.courier,
            "reasons": self.reasons,
            "trigger_at": fmt(self.trigger_at),
            "detail": self.detail,
        }


@dataclass(slots=True)
class WaybillPlan:
    """A waybill's whole simulated life, planned when it is created."""

    waybill: str
    courier: str
    merchant: str
    order_id: str
    request_type: str  # "101" (no Action) or "102"
    scans: list[ScanSpec] = field(default_factory=list)
    pushes: list[PushSpec] = field(default_factory=list)
    orders: list[OrderSpec] = field(default_factory=list)
    labels: list[Label] = field(default_factory=list)
    scenario: str = "normal"
    #: Push delay of the first scan (ms range) when a scenario needs it exact; None = usual.
    first_delay: tuple[int, int] | None = None
    retries: bool = True  # duplicate and late pushes allowed

    @property
    def normal(self) -> bool:
        return not self.labels


@dataclass(slots=True)
class SimOptions:
    """Everything that shapes a run; the same options and seed give the same bytes."""

    waybills: int = 1000
    seed: int = 1
    start_ms: int = 0
    days: int | None = None  # shipping window; None = from the volume
    couriers: tuple[str, ...] = ("ZTO", "YTO", "YD", "STO", "JTSD", "SF", "JD", "EMS")
    counts: dict[str, int] = field(default_factory=dict)  # anomalies per type
    share_101: float = 0.1  # normal waybills pushed as RequestType 101 (no Action)
    duplicate_rate: float = 0.05
    late_rate: float = 0.03  # an older snapshot arriving after a newer one
    batch_rate: float = 0.15  # pushes that carry several waybills
    ebusiness_id: str = "1000001"
    kdniao_app_key: str | None = None
    merchant_secret: str | None = None


@dataclass(slots=True)
class Stats:
    """What a run produced (printed as the CLI summary)."""

    waybills: int = 0
    envelopes: int = 0
    kdniao_pushes: int = 0
    merchant_envelopes: int = 0
    waybill_updates: int = 0
    scans: int = 0
    order_events: int = 0
    multi_waybill_pushes: int = 0
    kinds: dict[str, int] = field(default_factory=dict)
    first_at: int | None = None
    last_at: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "waybills": self.waybills,
            "envelopes": self.envelopes,
            "kdniao_pushes": self.kdniao_pushes,
            "merchant_envelopes": self.merchant_envelopes,
            "waybill_updates": self.waybill_updates,
            "scans": self.scans,
            "order_events": self.order_events,
            "multi_waybill_pushes": self.multi_waybill_pushes,
            "pushes_by_kind": dict(sorted(self.kinds.items())),
            "first_received_at": rfc3339(self.first_at) if self.first_at is not None else None,
            "last_received_at": rfc3339(self.last_at) if self.last_at is not None else None,
        }
