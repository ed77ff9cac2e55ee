"""The case: what the team working a delivery problem knows and has done (contract §9).

A case is one document: its anomaly episodes, the SOP steps they brought, the notes and an
activity log. The pure functions of ``core`` change it; the store keeps it whole (a JSONB
document in PostgreSQL) next to the few columns the queue, the timers and the review query.
These models are also the REST API's response bodies; the ``cases.events`` record is
``models.case_event.CaseEvent`` (re-exported here).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from waybill_watch.models.anomaly import AnomalyStatus, AnomalyType, Scope, Severity
from waybill_watch.models.base import Timestamp, WireModel
from waybill_watch.models.case_event import CaseEvent, CaseEventKind, StepState

CaseStatus = Literal["open", "closed"]

#: Who acts when the data, not a person, changes a case.
SYSTEM = "system"


class CaseModel(BaseModel):
    """Mutable inside ``core`` (on a copy); tolerant of fields added by newer versions."""

    model_config = ConfigDict(extra="ignore", validate_assignment=False)


class AnomalyRef(CaseModel):
    """One anomaly episode attached to the case, with its latest evidence."""

    anomaly_id: str
    type: AnomalyType
    status: AnomalyStatus
    severity: Severity
    reasons: list[str] = Field(default_factory=list)
    opened_at: Timestamp
    last_at: Timestamp = Field(description="detected_at of the latest event applied")
    resolved_at: Timestamp | None = None
    evidence: dict[str, Any] = Field(default_factory=dict)
    resolved_by: dict[str, Any] | None = None
    #: ``status@detected_at`` of every event applied: a re-delivered event changes nothing.
    seen: list[str] = Field(default_factory=list)


class Step(CaseModel):
    """One SOP step: due by ``due_at``; ``step_due`` fires at ``remind_at``."""

    step: str
    title: str = ""
    anomaly_type: AnomalyType
    due_at: Timestamp
    remind_at: Timestamp
    state: StepState = "pending"
    outcome: str | None = None
    note: str | None = None
    by: str | None = None
    at: Timestamp | None = None
    due_fired: bool = False
    overdue_fired: bool = False

    def overdue(self, now: datetime) -> bool:
        """Pending and past its due time."""
        return self.state == "pending" and self.due_at <= now

    @property
    def on_time(self) -> bool:
        """Done or skipped by its due time."""
        return self.state in ("done", "skipped") and self.at is not None and self.at <= self.due_at


class Note(CaseModel):
    """A free-text note by a named person."""

    by: str
    at: Timestamp
    text: str


class LogEntry(CaseModel):
    """One line of the case's activity timeline (the dossier prints it)."""

    at: Timestamp
    by: str
    what: str
    detail: dict[str, Any] = Field(default_factory=dict)


class Case(CaseModel):
    """One case: per waybill (all its episodes), or per site / courier episode."""

    case_id: str
    scope: Scope
    subject: str
    waybill: str | None = None
    merchant: str | None = None
    courier: str | None = None
    site: str | None = None
    origin_city: str | None = None
    destination_city: str | None = None
    #: The first anomaly type of the current opening: the queue's and the review's type.
    type: AnomalyType
    severity: Severity
    status: CaseStatus = "open"
    outcome: str | None = None
    closed_by: str | None = None
    opened_at: Timestamp
    closed_at: Timestamp | None = None
    updated_at: Timestamp
    #: Times the case opened (a closed waybill case reopens on a new episode).
    opening: int = 1
    anomalies: list[AnomalyRef] = Field(default_factory=list)
    steps: list[Step] = Field(default_factory=list)
    notes: list[Note] = Field(default_factory=list)
    log: list[LogEntry] = Field(default_factory=list)
    #: Waybills a site or courier episode concerns (from its evidence).
    waybills: list[str] = Field(default_factory=list)

    def anomaly(self, anomaly_id: str) -> AnomalyRef | None:
        """The attached episode ``anomaly_id``, if any."""
        return next((a for a in self.anomalies if a.anomaly_id == anomaly_id), None)

    def pending_steps(self) -> list[Step]:
        """Steps still to do, earliest due first."""
        return sorted((s for s in self.steps if s.state == "pending"), key=lambda s: s.due_at)

    def next_due_at(self) -> datetime | None:
        """Due time of the earliest pending step (the queue's order)."""
        pending = self.pending_steps()
        return pending[0].due_at if pending else None

    def next_timer_at(self) -> datetime | None:
        """When the timers must look at this case next (a reminder or a due time)."""
        times: list[datetime] = []
        for step in self.steps:
            if step.state != "pending":
                continue
            if not step.due_fired:
                times.append(step.remind_at)
            elif not step.overdue_fired:
                times.append(step.due_at)
        return min(times) if times else None

    def overdue(self, now: datetime) -> bool:
        """Any pending step past its due time."""
        return any(s.overdue(now) for s in self.steps)


class StepUpdate(WireModel):
    """Body of ``POST /api/cases/{case_id}/steps/{step}``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    state: Literal["done", "skipped"]
    outcome: str = Field(min_length=1, max_length=64)
    note: str = Field("", max_length=4000)


class CloseRequest(WireModel):
    """Body of ``POST /api/cases/{case_id}/close``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    outcome: str = Field(min_length=1, max_length=64)
    note: str = Field("", max_length=4000)


class NoteRequest(WireModel):
    """Body of ``POST /api/cases/{case_id}/notes``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    text: str = Field(min_length=1, max_length=4000)


class CaseSummary(WireModel):
    """One row of the queue / ``GET /api/cases``."""

    case_id: str
    scope: Scope
    subject: str
    waybill: str | None
    merchant: str | None
    courier: str | None
    site: str | None
    type: AnomalyType
    types: list[AnomalyType]
    severity: Severity
    status: CaseStatus
    outcome: str | None
    opened_at: Timestamp
    closed_at: Timestamp | None
    next_due_at: Timestamp | None
    next_step: str | None
    overdue: bool


class CasePage(WireModel):
    """``GET /api/cases``: one page and the cursor of the next (``null`` at the end)."""

    items: list[CaseSummary]
    next_cursor: str | None


__all__ = [
    "AnomalyRef",
    "Case",
    "CaseEvent",
    "CaseEventKind",
    "CasePage",
    "CaseSummary",
    "CloseRequest",
    "LogEntry",
    "Note",
    "NoteRequest",
    "Step",
    "StepState",
    "StepUpdate",
]
