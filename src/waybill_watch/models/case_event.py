"""``cases.events`` records (contract §9, key: case id) and how a case id follows from an
anomaly: the case service writes them, the notifier and other consumers read them."""

from __future__ import annotations

import hashlib
from typing import Literal

from pydantic import Field

from waybill_watch.models.anomaly import AnomalyEvent, AnomalyType, Scope, Severity
from waybill_watch.models.base import Timestamp, WireModel

StepState = Literal["pending", "done", "skipped", "cancelled"]
CaseEventKind = Literal["opened", "step_due", "step_overdue", "step_done", "closed"]


class CaseEvent(WireModel):
    """One record of topic ``cases.events`` (key: case id)."""

    event: CaseEventKind
    event_id: str = Field(description="Deterministic: a re-sent event carries the same id.")
    case_id: str
    waybill: str | None = None
    subject: str
    scope: Scope
    type: AnomalyType
    severity: Severity
    merchant: str | None = None
    courier: str | None = None
    step: str | None = None
    due_at: Timestamp | None = None
    state: StepState | None = None
    outcome: str | None = None
    by: str | None = None
    note: str | None = None
    at: Timestamp
    opening: int = 1


def case_key(event: AnomalyEvent) -> str:
    """What a case is per: the waybill, or the episode for site and courier scopes."""
    if event.scope == "waybill" and event.waybill:
        return f"waybill:{event.waybill}"
    return f"episode:{event.anomaly_id}"


def case_id_for(key: str) -> str:
    """Deterministic case id (the same anomaly stream gives the same ids on every run), so
    a notification can link an anomaly to its case page before the case service answers."""
    return "C" + hashlib.sha256(key.encode()).hexdigest()[:15].upper()
