"""Anomaly events (contract §6), topic ``anomalies`` keyed by subject."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from waybill_watch.models.base import Timestamp, WireModel

AnomalyStatus = Literal["open", "updated", "resolved"]
Severity = Literal["info", "warning", "high", "critical"]
Scope = Literal["waybill", "courier", "site"]
AnomalyType = Literal[
    "delivery_exception",
    "suspicious_signature",
    "signed_not_received",
    "status_regression",
    "locker_uncollected",
    "transit_stall",
    "no_first_scan",
    "delivery_overdue",
    "bulk_signing",
    "feed_silence",
    "site_stall_spike",
]


class Action(WireModel):
    """One step of the escalation ladder with its due time."""

    step: str
    due_at: Timestamp


class AnomalyEvent(WireModel):
    """One lifecycle event of an anomaly episode."""

    anomaly_id: str
    type: AnomalyType
    status: AnomalyStatus
    severity: Severity
    scope: Scope
    subject: str
    waybill: str | None = None
    courier: str | None = None
    merchant: str | None = None
    reasons: list[str] = Field(default_factory=list)
    detected_at: Timestamp
    evidence: dict[str, Any] = Field(default_factory=dict)
    actions: list[Action] = Field(default_factory=list)
