"""AfterShip tag/subtag tables (reference §4.3) as data, documented in docs/feeds.md."""

from __future__ import annotations

from waybill_watch.domain.types import CourierAlertKind, Status
from waybill_watch.feeds.text_rules import Row, SignRule

S = Status
_EXCEPTION: Row = (S.EXCEPTION, None)

#: Checkpoint ``subtag`` → canonical status. None: not a scan status (fall back to the tag).
SUBTAGS: dict[str, Row | None] = {
    "Pending_001": (S.INFO_RECEIVED, None),
    "InfoReceived_001": (S.INFO_RECEIVED, None),
    "InTransit_001": (S.IN_TRANSIT, None),
    "InTransit_002": (S.PICKED_UP, None),  # acceptance scan
    "InTransit_003": (S.IN_TRANSIT, None),  # arrival scan
    "InTransit_004": (S.IN_TRANSIT, None),  # arrived at destination country
    "InTransit_005": (S.CUSTOMS, None),  # customs clearance completed
    "InTransit_006": (S.CUSTOMS, None),  # customs clearance started
    "InTransit_007": (S.IN_TRANSIT, None),  # departure scan
    "InTransit_008": (S.IN_TRANSIT, None),  # problem resolved
    "InTransit_009": (S.IN_TRANSIT, None),  # forwarded to a different address
    "OutForDelivery_001": (S.OUT_FOR_DELIVERY, None),
    "OutForDelivery_003": (S.OUT_FOR_DELIVERY, None),
    "OutForDelivery_004": (S.OUT_FOR_DELIVERY, None),
    "AvailableForPickup_001": (S.AVAILABLE_FOR_PICKUP, None),
    "Delivered_001": (S.DELIVERED, SignRule.TEXT_ELSE_UNKNOWN),
    "Delivered_002": (S.DELIVERED, SignRule.LOCKER_ELSE_STATION),  # picked up by the customer
    "Delivered_003": (S.DELIVERED, SignRule.RECIPIENT),  # signed by the customer
    "Delivered_004": (S.DELIVERED, SignRule.TEXT_ELSE_UNKNOWN),  # delivered, COD collected
    "Delivered_005": (S.DELIVERED, SignRule.PROXY),  # delivered to a neighbour
    "AttemptFail_001": (S.FAILED_ATTEMPT, None),
    "AttemptFail_002": (S.FAILED_ATTEMPT, None),
    "AttemptFail_003": (S.FAILED_ATTEMPT, None),
    "Exception_001": _EXCEPTION,
    "Exception_002": _EXCEPTION,  # customer moved
    "Exception_003": (S.REJECTED, None),  # customer refused delivery
    "Exception_004": _EXCEPTION,  # delayed (customs clearance)
    "Exception_005": _EXCEPTION,  # delayed (external factors)
    "Exception_006": _EXCEPTION,  # held for payment
    "Exception_007": _EXCEPTION,  # incorrect address
    "Exception_008": _EXCEPTION,  # pick up missed
    "Exception_009": _EXCEPTION,  # rejected by carrier
    "Exception_010": (S.RETURNING, None),
    "Exception_011": (S.RETURNED, None),
    "Exception_012": _EXCEPTION,  # damaged
    "Exception_013": _EXCEPTION,  # lost
    "Exception_016": _EXCEPTION,
    "Exception_017": _EXCEPTION,
    "Exception_018": _EXCEPTION,
    "Expired_001": None,
}

#: ``tag`` (also the prefix of an unknown subtag) → canonical status.
TAGS: dict[str, Row | None] = {
    "Pending": (S.INFO_RECEIVED, None),
    "InfoReceived": (S.INFO_RECEIVED, None),
    "InTransit": (S.IN_TRANSIT, None),
    "OutForDelivery": (S.OUT_FOR_DELIVERY, None),
    "AttemptFail": (S.FAILED_ATTEMPT, None),
    "Delivered": (S.DELIVERED, SignRule.TEXT_ELSE_UNKNOWN),
    "AvailableForPickup": (S.AVAILABLE_FOR_PICKUP, None),
    "Exception": _EXCEPTION,
    "Expired": None,
}

#: Webhook events that are AfterShip's own alerts.
EVENT_ALERTS: dict[str, CourierAlertKind] = {
    "tracking_pending_time": CourierAlertKind.NO_FIRST_SCAN,  # stuck in Pending too long
}

#: Tracking ``tag`` alerts: (kind without any checkpoint, kind with checkpoints).
TAG_ALERTS: dict[str, tuple[CourierAlertKind, CourierAlertKind]] = {
    "Expired": (CourierAlertKind.NO_FIRST_SCAN, CourierAlertKind.TRANSIT_STALL),
}
