"""Kuaidi100 state tables (reference §2.5) as data, documented in docs/feeds.md."""

from __future__ import annotations

from waybill_watch.domain.types import CourierAlertKind, Status
from waybill_watch.feeds.text_rules import WEAK_STATUSES, Row, SignRule, StateCheck

S = Status

#: ``lastResult.state`` / ``data[].statusCode`` (base and advanced codes) → canonical status.
STATES: dict[str, Row] = {
    "0": (S.IN_TRANSIT, None),
    "1001": (S.IN_TRANSIT, None),
    "1002": (S.IN_TRANSIT, None),
    "1003": (S.IN_TRANSIT, None),
    "7": (S.IN_TRANSIT, None),
    "1": (S.PICKED_UP, None),
    "103": (S.PICKED_UP, None),
    "101": (S.INFO_RECEIVED, None),
    "102": (S.INFO_RECEIVED, None),
    "5": (S.OUT_FOR_DELIVERY, None),
    "501": (S.AVAILABLE_FOR_PICKUP, None),
    "3": (S.DELIVERED, SignRule.TEXT_ELSE_UNKNOWN),
    "301": (S.DELIVERED, SignRule.TEXT_ELSE_RECIPIENT),
    "302": (S.DELIVERED, SignRule.TEXT_ELSE_RECIPIENT),
    "303": (S.DELIVERED, SignRule.PROXY),
    "304": (S.DELIVERED, SignRule.STATION_ELSE_LOCKER),
    "6": (S.RETURNING, None),
    "4": (S.RETURNED, None),
    "401": (S.EXCEPTION, None),
    "14": (S.REJECTED, None),
    "203": (S.REJECTED, None),
    "2": (S.EXCEPTION, None),
    "204": (S.FAILED_ATTEMPT, None),
    "206": (S.FAILED_ATTEMPT, None),
    "207": (S.EXCEPTION, None),
    "208": (S.EXCEPTION, None),
    "209": (S.EXCEPTION, None),
    "210": (S.EXCEPTION, None),
    "8": (S.CUSTOMS, None),
    "10": (S.CUSTOMS, None),
    "11": (S.CUSTOMS, None),
    "12": (S.CUSTOMS, None),
    "13": (S.EXCEPTION, None),
}

#: ``lastResult.state`` codes that are Kuaidi100's own timeout alerts (like Kdniao 402/403/412).
#: On a trace they say nothing about the scan, so such a trace is read from its text.
ALERTS: dict[str, CourierAlertKind] = {
    "201": CourierAlertKind.DELIVERY_OVERDUE,
    "202": CourierAlertKind.TRANSIT_STALL,
    "205": CourierAlertKind.LOCKER_UNCOLLECTED,
}

#: ``status=abort`` messages → alerts (matched as substrings of ``message``).
ABORT_MESSAGES: tuple[tuple[str, CourierAlertKind], ...] = (
    ("3天查询无记录", CourierAlertKind.NO_FIRST_SCAN),
    ("60天无变化", CourierAlertKind.TRANSIT_STALL),
)

#: ``data[].status`` names (resultv2 = 1) → their code in ``STATES``/``ALERTS``.
STATUS_NAMES: dict[str, str] = {
    "在途": "0",
    "揽收": "1",
    "疑难": "2",
    "签收": "3",
    "退签": "4",
    "派件": "5",
    "退回": "6",
    "转投": "7",
    "清关": "8",
    "拒签": "14",
    "已下单": "101",
    "待揽收": "102",
    "已揽收": "103",
    "到达派件城市": "1001",
    "干线": "1002",
    "转递": "1003",
    "投柜或驿站": "501",
    "本人签收": "301",
    "派件异常后签收": "302",
    "代签": "303",
    "投柜或站签收": "304",
    "已销单": "401",
    "超时未签收": "201",
    "超时未更新": "202",
    "拒收": "203",
    "派件异常": "204",
    "柜或驿站超时未取": "205",
    "无法联系": "206",
    "超区": "207",
    "滞留": "208",
    "破损": "209",
    "销单": "210",
    "待清关": "10",
    "清关中": "11",
    "已清关": "12",
    "清关异常": "13",
}

#: ``lastResult.state`` as a cross-check of the latest trace when that trace has no code of its
#: own (derived from ``STATES``: signed and problem states also override weak text readings).
STATE_CHECK: dict[str, StateCheck] = {
    code: (
        status,
        WEAK_STATUSES if status in (S.DELIVERED, S.EXCEPTION) else frozenset({None}),
    )
    for code, (status, _rule) in STATES.items()
}
