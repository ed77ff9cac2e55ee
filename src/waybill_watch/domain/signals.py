"""Facts re-keyed for the aggregate detectors (site and courier scope).

The waybill engine runs on the waybill's partition; ``bulk_signing``, ``site_stall_spike`` and
``feed_silence`` need facts from many waybills. The waybill engine therefore emits ``Signal``s:
the worker publishes each to an internal topic keyed by ``signal.key`` (re-keying through
Kafka) and the site/courier engines consume it; replay routes them in-process.

| kind | key | emitted when | ``at`` | ``ref`` |
| --- | --- | --- | --- | --- |
| ``update_received`` | courier | every waybill update (one per waybill per push) | ``received_at`` | - |
| ``recipient_signed`` | ``courier:site`` | a new ``delivered`` scan, ``sign_type`` ``recipient``, with a site | ``event_time`` | ``event_id`` |
| ``stall_opened`` | ``courier:site`` | a ``transit_stall`` episode opens whose last scan has a site | clock | ``anomaly_id`` |
| ``stall_resolved`` | ``courier:site`` | that episode resolves | clock | ``anomaly_id`` |
"""  # noqa: E501

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from waybill_watch.timefmt import format_rfc3339, parse_rfc3339


class SignalKind(StrEnum):
    """What a signal reports."""

    UPDATE_RECEIVED = "update_received"
    RECIPIENT_SIGNED = "recipient_signed"
    STALL_OPENED = "stall_opened"
    STALL_RESOLVED = "stall_resolved"


#: Kinds handled by the site engine; the rest go to the courier engine.
SITE_KINDS = frozenset(
    {SignalKind.RECIPIENT_SIGNED, SignalKind.STALL_OPENED, SignalKind.STALL_RESOLVED}
)


def site_key(courier: str, site: str) -> str:
    """The subject of a site-scope anomaly (contract §6: ``courier:site``)."""
    return f"{courier}:{site}"


@dataclass(frozen=True, slots=True)
class Signal:
    """One fact for an aggregate detector, routed by ``key``."""

    kind: SignalKind
    key: str
    courier: str
    at: datetime
    site: str | None = None
    waybill: str | None = None
    ref: str | None = None

    @property
    def for_site(self) -> bool:
        """True when the site engine handles it, False for the courier engine."""
        return self.kind in SITE_KINDS

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON form for the internal topic."""
        return {
            "kind": str(self.kind),
            "key": self.key,
            "courier": self.courier,
            "at": format_rfc3339(self.at),
            "site": self.site,
            "waybill": self.waybill,
            "ref": self.ref,
        }

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Signal:
        """Inverse of ``to_dict``."""
        return cls(
            kind=SignalKind(raw["kind"]),
            key=raw["key"],
            courier=raw["courier"],
            at=parse_rfc3339(raw["at"]),
            site=raw.get("site"),
            waybill=raw.get("waybill"),
            ref=raw.get("ref"),
        )
