"""The canonical tracking event (contract §5), topic ``tracking.events`` keyed by waybill."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from waybill_watch.domain.types import Scan, SignType, Status
from waybill_watch.models.base import Timestamp, WireModel
from waybill_watch.timefmt import format_rfc3339, parse_rfc3339


class Location(WireModel):
    """Where a scan happened."""

    city: str | None = None
    site: str | None = None


class TrackingEvent(WireModel):
    """One scan in canonical form; ``event_id`` is stable across re-pushes of the same scan."""

    waybill: str = Field(min_length=1, max_length=64)
    courier: str = Field(min_length=1, max_length=32)
    event_time: Timestamp
    received_at: Timestamp
    status: Status
    sign_type: SignType | None = None
    signer: str | None = Field(default=None, description="Masked signer name.")
    location: Location = Field(default_factory=Location)
    description: str = ""
    courier_code: str | None = None
    source_feed: str
    event_id: str = Field(min_length=1, max_length=128)

    @classmethod
    def from_scan(cls, scan: Scan) -> TrackingEvent:
        """The wire form of a core scan."""
        return cls(
            waybill=scan.waybill,
            courier=scan.courier,
            event_time=scan.event_time,
            received_at=scan.received_at,
            status=scan.status,
            sign_type=scan.sign_type,
            signer=scan.signer,
            location=Location(city=scan.city, site=scan.site),
            description=scan.description,
            courier_code=scan.courier_code,
            source_feed=scan.source_feed,
            event_id=scan.event_id,
        )

    def to_scan(self) -> Scan:
        """The core form of this wire event."""
        return Scan(
            waybill=self.waybill,
            courier=self.courier,
            event_time=self.event_time,
            received_at=self.received_at,
            status=self.status,
            sign_type=self.sign_type,
            signer=self.signer,
            city=self.location.city,
            site=self.location.site,
            description=self.description,
            courier_code=self.courier_code,
            source_feed=self.source_feed,
            event_id=self.event_id,
        )


def scan_to_wire(scan: Scan) -> dict[str, object]:
    """The JSON shape of ``TrackingEvent`` built without pydantic (hot path)."""
    return {
        "waybill": scan.waybill,
        "courier": scan.courier,
        "event_time": format_rfc3339(scan.event_time),
        "received_at": format_rfc3339(scan.received_at),
        "status": scan.status.value,
        "sign_type": scan.sign_type.value if scan.sign_type is not None else None,
        "signer": scan.signer,
        "location": {"city": scan.city, "site": scan.site},
        "description": scan.description,
        "courier_code": scan.courier_code,
        "source_feed": scan.source_feed,
        "event_id": scan.event_id,
    }


def scan_from_wire(data: dict[str, Any]) -> Scan:
    """Rebuild a scan from ``scan_to_wire`` output we wrote ourselves (trusted input).

    Untrusted input (merchants producing to ``tracking.events``) goes through
    ``TrackingEvent.model_validate`` instead.
    """
    location = data.get("location") or {}
    sign_type = data.get("sign_type")
    return Scan(
        waybill=data["waybill"],
        courier=data["courier"],
        event_time=parse_rfc3339(data["event_time"]),
        received_at=parse_rfc3339(data["received_at"]),
        status=Status(data["status"]),
        sign_type=SignType(sign_type) if sign_type else None,
        signer=data.get("signer"),
        city=location.get("city"),
        site=location.get("site"),
        description=data.get("description") or "",
        courier_code=data.get("courier_code"),
        source_feed=data["source_feed"],
        event_id=data["event_id"],
    )
