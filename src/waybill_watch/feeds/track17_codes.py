"""17TRACK v2.2 status tables (reference §3.4) as data, documented in docs/feeds.md."""

from __future__ import annotations

from waybill_watch.domain.types import CourierAlertKind, Status
from waybill_watch.feeds.text_rules import Row, SignRule

S = Status
_DELIVERED: Row = (S.DELIVERED, SignRule.TEXT_ELSE_UNKNOWN)

#: Event/latest ``sub_status`` → canonical status. None: not a scan status (read the text).
SUB_STATUSES: dict[str, Row | None] = {
    "NotFound_Other": None,
    "NotFound_InvalidCode": None,
    "InfoReceived": (S.INFO_RECEIVED, None),
    "InTransit_PickedUp": (S.PICKED_UP, None),
    "InTransit_Other": (S.IN_TRANSIT, None),
    "InTransit_Departure": (S.IN_TRANSIT, None),
    "InTransit_Arrival": (S.IN_TRANSIT, None),
    "InTransit_CustomsProcessing": (S.CUSTOMS, None),
    "InTransit_CustomsReleased": (S.CUSTOMS, None),
    "InTransit_CustomsRequiringInformation": (S.CUSTOMS, None),
    "Expired_Other": None,
    "AvailableForPickup_Other": (S.AVAILABLE_FOR_PICKUP, None),
    "OutForDelivery_Other": (S.OUT_FOR_DELIVERY, None),
    "DeliveryFailure_Other": (S.FAILED_ATTEMPT, None),
    "DeliveryFailure_NoBody": (S.FAILED_ATTEMPT, None),
    "DeliveryFailure_Security": (S.FAILED_ATTEMPT, None),
    "DeliveryFailure_Rejected": (S.REJECTED, None),
    "DeliveryFailure_InvalidAddress": (S.FAILED_ATTEMPT, None),
    "Delivered_Other": _DELIVERED,
    "Exception_Other": (S.EXCEPTION, None),
    "Exception_Returning": (S.RETURNING, None),
    "Exception_Returned": (S.RETURNED, None),
    "Exception_NoBody": (S.EXCEPTION, None),
    "Exception_Security": (S.EXCEPTION, None),
    "Exception_Damage": (S.EXCEPTION, None),
    "Exception_Rejected": (S.REJECTED, None),
    "Exception_Delayed": (S.EXCEPTION, None),
    "Exception_Lost": (S.EXCEPTION, None),
    "Exception_Destroyed": (S.EXCEPTION, None),
    "Exception_Cancel": (S.EXCEPTION, None),
}

#: Main ``status`` (also the prefix of an unknown ``sub_status``) → canonical status.
MAIN_STATUSES: dict[str, Row | None] = {
    "NotFound": None,
    "InfoReceived": (S.INFO_RECEIVED, None),
    "InTransit": (S.IN_TRANSIT, None),
    "Expired": None,
    "AvailableForPickup": (S.AVAILABLE_FOR_PICKUP, None),
    "OutForDelivery": (S.OUT_FOR_DELIVERY, None),
    "DeliveryFailure": (S.FAILED_ATTEMPT, None),
    "Delivered": _DELIVERED,
    "Exception": (S.EXCEPTION, None),
}

#: Event ``stage`` (milestone key stages) → canonical status, used when ``sub_status`` is absent.
STAGES: dict[str, Row] = {
    "InfoReceived": (S.INFO_RECEIVED, None),
    "PickedUp": (S.PICKED_UP, None),
    "Departure": (S.IN_TRANSIT, None),
    "Arrival": (S.IN_TRANSIT, None),
    "AvailableForPickup": (S.AVAILABLE_FOR_PICKUP, None),
    "OutForDelivery": (S.OUT_FOR_DELIVERY, None),
    "Delivered": _DELIVERED,
    "Returning": (S.RETURNING, None),
    "Returned": (S.RETURNED, None),
}

#: ``track_info.latest_status.status`` values that are 17TRACK's own alerts.
ALERTS: dict[str, CourierAlertKind] = {
    "Expired": CourierAlertKind.TRANSIT_STALL,  # "in transit too long without delivery"
}

#: Webhook events carrying tracking data; any other event is acknowledged and ignored.
TRACKING_EVENTS = frozenset({"TRACKING_UPDATED", "TRACKING_STOPPED"})
