"""Kdniao code tables (contract §5.1, reference §1.6) as data, documented in docs/feeds.md."""

from __future__ import annotations

from waybill_watch.domain.types import CourierAlertKind, Status
from waybill_watch.feeds.text_rules import WEAK_STATUSES, Row, SignRule, StateCheck

S = Status

#: Trace ``Action`` (RequestType 102) → canonical status and how ``sign_type`` is decided.
ACTIONS: dict[str, Row] = {
    "10": (S.INFO_RECEIVED, None),
    "1": (S.PICKED_UP, None),
    "2": (S.IN_TRANSIT, None),
    "201": (S.IN_TRANSIT, None),
    "204": (S.IN_TRANSIT, None),
    "205": (S.IN_TRANSIT, None),
    "206": (S.IN_TRANSIT, None),
    "5": (S.IN_TRANSIT, None),
    "202": (S.OUT_FOR_DELIVERY, None),
    "419": (S.OUT_FOR_DELIVERY, None),
    "211": (S.AVAILABLE_FOR_PICKUP, None),
    "3": (S.DELIVERED, SignRule.TEXT_ELSE_UNKNOWN),
    "301": (S.DELIVERED, SignRule.TEXT_ELSE_RECIPIENT),
    "302": (S.DELIVERED, SignRule.TEXT_ELSE_RECIPIENT),
    "418": (S.DELIVERED, SignRule.TEXT_ELSE_RECIPIENT),
    "304": (S.DELIVERED, SignRule.PROXY),
    "311": (S.DELIVERED, SignRule.STATION_ELSE_LOCKER),
    "4": (S.EXCEPTION, None),
    "413": (S.EXCEPTION, None),
    "414": (S.EXCEPTION, None),
    "415": (S.EXCEPTION, None),
    "420": (S.EXCEPTION, None),
    "421": (S.EXCEPTION, None),
    "422": (S.EXCEPTION, None),
    "423": (S.EXCEPTION, None),
    "604": (S.EXCEPTION, None),
    "405": (S.FAILED_ATTEMPT, None),
    "416": (S.FAILED_ATTEMPT, None),
    "404": (S.REJECTED, None),
    "407": (S.RETURNING, None),
    "406": (S.RETURNED, None),
    "6": (S.CUSTOMS, None),
    "601": (S.CUSTOMS, None),
    "602": (S.CUSTOMS, None),
    "603": (S.CUSTOMS, None),
}

#: Waybill-level ``StateEx`` codes that are Kdniao's own alerts, not scans. On a trace these
#: codes (and 0) say nothing about the scan itself, so such a trace is read from its text.
ALERTS: dict[str, CourierAlertKind] = {
    "401": CourierAlertKind.NO_FIRST_SCAN,
    "402": CourierAlertKind.DELIVERY_OVERDUE,
    "403": CourierAlertKind.TRANSIT_STALL,
    "412": CourierAlertKind.LOCKER_UNCOLLECTED,
}

#: Chinese labels of the alert codes (used as the alert message when Kdniao gives no Reason).
ALERT_LABELS: dict[str, str] = {
    "401": "发货无信息",
    "402": "超时未签收",
    "403": "超时未更新",
    "412": "快递柜或驿站超时未取",
}

#: Trace Actions read from the text as if absent: "no trace" and the alert codes.
TEXT_ACTIONS: frozenset[str] = frozenset({"0", *ALERTS})

#: Waybill ``State`` as a cross-check of the latest trace of a 101 push: (status, the inferred
#: statuses it overrides). A text no rule recognises (None) always takes the State; "signed" and
#: "problem" also override the weak in-transit readings of a text the rules misread.
STATE_CHECK: dict[str, StateCheck] = {
    "1": (S.PICKED_UP, frozenset({None})),
    "2": (S.IN_TRANSIT, frozenset({None})),
    "201": (S.IN_TRANSIT, frozenset({None})),
    "5": (S.IN_TRANSIT, frozenset({None})),
    "3": (S.DELIVERED, WEAK_STATUSES),
    "4": (S.EXCEPTION, WEAK_STATUSES),
    "6": (S.CUSTOMS, frozenset({None, S.IN_TRANSIT})),
}

#: RequestType values: read as tracking pushes, or acknowledged and ignored.
TRACKING_REQUEST_TYPES = frozenset({"101", "102"})
IGNORED_REQUEST_TYPES: dict[str, str] = {"107": "kdniao RequestType 107 (cash-on-delivery status)"}
