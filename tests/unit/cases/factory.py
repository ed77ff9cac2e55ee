"""Anomaly events as the worker writes them, for the case service's tests."""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from typing import Any

from waybill_watch.models.anomaly import AnomalyEvent
from waybill_watch.timefmt import zone

T0 = datetime(2026, 11, 5, 8, 49, 3, tzinfo=zone("Asia/Shanghai"))

LADDER = (
    ("contact_recipient", timedelta(hours=2)),
    ("request_sign_proof", timedelta(hours=24)),
    ("escalate_platform", timedelta(hours=48)),
    ("escalate_regulator", timedelta(days=7)),
)

SIGNED_SCAN = {
    "event_id": "d33786599283a53f5e25715eb6f2ad69",
    "event_time": "2026-11-04T08:57:09.000+08:00",
    "status": "delivered",
    "sign_type": "recipient",
    "signer": "本*",
    "city": "石家庄",
    "site": "石家庄长安区建设路营业部",
    "courier_code": "301",
    "description": "【石家庄长安区建设路营业部】快件已签收，签收人：本*",
}
PICKUP_SCAN = {
    "event_id": "a1",
    "event_time": "2026-11-02T10:00:00.000+08:00",
    "status": "picked_up",
    "city": "杭州",
    "site": "杭州滨江区网点",
}


def anomaly_id(kind: str, subject: str, episode: int = 0) -> str:
    return hashlib.md5(f"{kind}|{subject}|{episode}".encode()).hexdigest()


def event(
    kind: str = "signed_not_received",
    status: str = "open",
    *,
    waybill: str | None = "JDVA00353556371",
    merchant: str | None = "shop-03",
    courier: str = "JD",
    at: datetime = T0,
    episode: int = 0,
    scope: str = "waybill",
    subject: str | None = None,
    evidence: dict[str, Any] | None = None,
    severity: str = "critical",
    actions: bool | None = None,
) -> AnomalyEvent:
    subject = subject or waybill or courier
    if evidence is None:
        if status == "resolved":
            evidence = {"resolved_by": {"order_events": [{"type": "receipt_confirmed"}]}}
        else:
            evidence = {
                "scans": [SIGNED_SCAN],
                "order_events": [{"type": "not_received_reported", "occurred_at": at.isoformat()}],
                "lane": {"origin_city": "杭州", "destination_city": "石家庄市"},
                "timeline": {"scans": [PICKUP_SCAN, SIGNED_SCAN], "order_events": []},
            }
    with_actions = actions if actions is not None else kind == "signed_not_received"
    return AnomalyEvent.model_validate(
        {
            "anomaly_id": anomaly_id(kind, subject, episode),
            "type": kind,
            "status": status,
            "severity": severity,
            "scope": scope,
            "subject": subject,
            "waybill": waybill if scope == "waybill" else None,
            "courier": courier,
            "merchant": merchant if scope == "waybill" else None,
            "reasons": ["not_received_reported"],
            "detected_at": at,
            "evidence": evidence,
            "actions": (
                [{"step": s, "due_at": at + d} for s, d in LADDER]
                if with_actions and status != "resolved"
                else []
            ),
        }
    )
