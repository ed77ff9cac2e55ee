"""The case logic, pure: anomaly events, timers and people's actions in, a new case and its
``cases.events`` out. No database, no Kafka, no HTTP: the service layer loads a case, calls
one of these on a copy, and saves the result with its events in one transaction.

Rules (README "Cases"):
* One case per waybill: every episode of the waybill attaches to it. A closed waybill case
  reopens (``opening`` + 1, a new ``opened`` event) when a new episode opens. Site and courier
  episodes get a case each, listing the waybills their evidence names.
* An episode brings its type's playbook steps, due after the moment it joined (the anomaly's
  own ``actions`` win for steps of the same code). A step code already pending is not added
  twice.
* Applying the same anomaly event twice (a redelivery, a duplicate) changes nothing: each
  applied event is remembered as ``status@detected_at`` on its episode.
* When every episode has resolved and the playbook says ``auto_close``, the case closes with
  the outcome the data gives (``receipt_confirmed``, ``delivered`` or ``resolved_by_data``)
  and pending steps are cancelled.
* Timers: ``step_due`` at a step's ``remind_at``, ``step_overdue`` at its ``due_at``, each at
  most once per step; neither fires for a step no longer pending.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from waybill_watch.cases.model import (
    SYSTEM,
    AnomalyRef,
    Case,
    CaseEvent,
    CaseEventKind,
    LogEntry,
    Note,
    Step,
)
from waybill_watch.cases.playbooks import Playbooks
from waybill_watch.models.anomaly import AnomalyEvent
from waybill_watch.models.case_event import case_id_for, case_key

_SEVERITY_RANK = {"info": 0, "warning": 1, "high": 2, "critical": 3}


class CaseError(Exception):
    """A person's action the case does not allow (HTTP maps the subclasses)."""


class UnknownStep(CaseError):
    """The case has no such step (404)."""


class Conflict(CaseError):
    """The case or step is not in a state that allows it (409)."""


class BadOutcome(CaseError):
    """An outcome code the playbook file does not define (422)."""


@dataclass
class Decision:
    """A changed case and the events the change emits, in order."""

    case: Case
    events: list[CaseEvent] = field(default_factory=list)


def _event_id(case: Case, kind: CaseEventKind, step: str | None) -> str:
    raw = f"{case.case_id}|{case.opening}|{kind}|{step or ''}"
    return hashlib.sha256(raw.encode()).hexdigest()[:32]


def _emit(
    case: Case, kind: CaseEventKind, at: datetime, step: Step | None = None, **extra: Any
) -> CaseEvent:
    return CaseEvent(
        event=kind,
        event_id=_event_id(case, kind, step.step if step else None),
        case_id=case.case_id,
        waybill=case.waybill,
        subject=case.subject,
        scope=case.scope,
        type=case.type,
        severity=case.severity,
        merchant=case.merchant,
        courier=case.courier,
        step=step.step if step else None,
        due_at=step.due_at if step else None,
        state=step.state if step else None,
        at=at,
        opening=case.opening,
        **extra,
    )


# -- anomalies ---------------------------------------------------------------------------


def apply_anomaly(
    case: Case | None, event: AnomalyEvent, playbooks: Playbooks, now: datetime
) -> Decision | None:
    """Attach one anomaly event; ``None`` when it changes nothing (duplicate, or a resolution
    of an episode no case knows)."""
    mark = f"{event.status}@{event.detected_at.isoformat()}"
    if case is not None:
        known = case.anomaly(event.anomaly_id)
        if known is not None and mark in known.seen:
            return None
        case = case.model_copy(deep=True)
    if case is None:
        if event.status == "resolved":
            return None
        case = _new_case(event, now)
        decision = Decision(case)
        _attach(decision, event, mark, playbooks, now)
        decision.events.insert(0, _emit(case, "opened", now))
        return decision
    decision = Decision(case)
    ref = case.anomaly(event.anomaly_id)
    if case.status == "closed":
        if event.status == "resolved" or ref is not None:
            # late news about an episode of a closed case: keep it, reopen nothing
            _attach(decision, event, mark, playbooks, now)
            return decision
        _reopen(case, event, now)
        _attach(decision, event, mark, playbooks, now)
        decision.events.insert(0, _emit(case, "opened", now))
        return decision
    _attach(decision, event, mark, playbooks, now)
    _maybe_auto_close(decision, playbooks, now)
    return decision


def _new_case(event: AnomalyEvent, now: datetime) -> Case:
    key = case_key(event)
    return Case(
        case_id=case_id_for(key),
        scope=event.scope,
        subject=event.subject,
        waybill=event.waybill,
        merchant=event.merchant,
        courier=event.courier,
        type=event.type,
        severity=event.severity,
        opened_at=now,
        updated_at=now,
        log=[LogEntry(at=now, by=SYSTEM, what="opened", detail={"anomaly_id": event.anomaly_id})],
    )


def _reopen(case: Case, event: AnomalyEvent, now: datetime) -> None:
    case.opening += 1
    case.status = "open"
    case.outcome = case.closed_by = None
    case.closed_at = None
    case.type, case.severity = event.type, event.severity
    case.opened_at = now
    case.log.append(
        LogEntry(at=now, by=SYSTEM, what="reopened", detail={"anomaly_id": event.anomaly_id})
    )


def _attach(
    decision: Decision, event: AnomalyEvent, mark: str, playbooks: Playbooks, now: datetime
) -> None:
    case = decision.case
    case.updated_at = now
    case.merchant = case.merchant or event.merchant
    case.courier = case.courier or event.courier
    _take_places(case, event.evidence)
    ref = case.anomaly(event.anomaly_id)
    if ref is None:
        ref = AnomalyRef(
            anomaly_id=event.anomaly_id,
            type=event.type,
            status=event.status,
            severity=event.severity,
            reasons=list(event.reasons),
            opened_at=event.detected_at,
            last_at=event.detected_at,
        )
        case.anomalies.append(ref)
        if event.status != "resolved" and case.status == "open":
            _add_steps(decision, event, playbooks, now)
    ref.seen.append(mark)
    if event.detected_at >= ref.last_at or event.status == "resolved":
        ref.last_at = max(ref.last_at, event.detected_at)
        ref.reasons = list(event.reasons) or ref.reasons
        ref.severity = event.severity
    if event.status == "resolved":
        ref.status = "resolved"
        ref.resolved_at = event.detected_at
        ref.resolved_by = event.evidence.get("resolved_by") or {}
    else:
        if ref.status != "resolved":
            ref.status = event.status
        ref.evidence = event.evidence
    if _SEVERITY_RANK[event.severity] > _SEVERITY_RANK[case.severity] and case.status == "open":
        case.severity = event.severity
    waybills = event.evidence.get("waybills")
    if isinstance(waybills, list):
        case.waybills = sorted({*case.waybills, *(str(w) for w in waybills)})
    case.log.append(
        LogEntry(
            at=now,
            by=SYSTEM,
            what=f"anomaly_{event.status}",
            detail={
                "anomaly_id": event.anomaly_id,
                "type": event.type,
                "reasons": list(event.reasons),
                "detected_at": event.detected_at.isoformat(),
            },
        )
    )


def _take_places(case: Case, evidence: dict[str, Any]) -> None:
    """Lane and site for the review: the anomaly's ``lane`` evidence, its scans' site."""
    lane = evidence.get("lane")
    if isinstance(lane, dict):
        case.origin_city = case.origin_city or lane.get("origin_city")
        case.destination_city = lane.get("destination_city") or case.destination_city
    if not case.destination_city and isinstance(evidence.get("destination_city"), str):
        case.destination_city = evidence["destination_city"]
    site = evidence.get("site")
    if isinstance(site, str) and site:
        case.site = case.site or site
    scans = evidence.get("scans")
    if isinstance(scans, list) and scans and not case.site:
        last = scans[-1]
        if isinstance(last, dict) and isinstance(last.get("site"), str):
            case.site = last["site"]


def _add_steps(
    decision: Decision, event: AnomalyEvent, playbooks: Playbooks, now: datetime
) -> None:
    case = decision.case
    playbook = playbooks.for_type(event.type)
    pending = {s.step: s for s in case.steps if s.state == "pending"}
    actions = {a.step: a.due_at for a in event.actions}
    for spec in playbook.steps:
        due = actions.get(spec.step) or now + spec.due
        lead = spec.remind if spec.remind is not None else playbook.remind
        remind = max(now, due - lead)
        same = pending.get(spec.step)
        if same is not None:
            # one step, the tighter deadline: a signed_not_received ladder (+2 h) overrides
            # a suspicious_signature's +4 h for the same contact_recipient
            if due < same.due_at:
                same.due_at, same.remind_at = due, min(same.remind_at, remind)
                same.anomaly_type = event.type
            continue
        case.steps = [s for s in case.steps if s.step != spec.step or s.state == "pending"]
        case.steps.append(
            Step(
                step=spec.step,
                title=spec.title,
                anomaly_type=event.type,
                due_at=due,
                remind_at=remind,
            )
        )


def _maybe_auto_close(decision: Decision, playbooks: Playbooks, now: datetime) -> None:
    case = decision.case
    if case.status != "open" or any(a.status != "resolved" for a in case.anomalies):
        return
    if not all(playbooks.for_type(a.type).auto_close for a in case.anomalies):
        return
    _close(decision, _outcome_from_data(case), SYSTEM, "", now)


def _outcome_from_data(case: Case) -> str:
    facts: list[dict[str, Any]] = []
    for ref in case.anomalies:
        by = ref.resolved_by or {}
        facts.extend(x for x in by.get("order_events", []) if isinstance(x, dict))
        facts.extend(x for x in by.get("scans", []) if isinstance(x, dict))
        facts.append(by)
    if any(f.get("type") == "receipt_confirmed" for f in facts):
        return "receipt_confirmed"
    if any(f.get("status") == "delivered" for f in facts):
        return "delivered"
    return "resolved_by_data"


# -- timers ------------------------------------------------------------------------------


def fire_timers(case: Case, now: datetime) -> Decision | None:
    """Reminders and overdue marks that are due at ``now``; ``None`` when nothing is."""
    if case.status != "open":
        return None
    due = [
        s
        for s in case.steps
        if s.state == "pending"
        and ((not s.due_fired and s.remind_at <= now) or (not s.overdue_fired and s.due_at <= now))
    ]
    if not due:
        return None
    decision = Decision(case.model_copy(deep=True))
    for step in sorted(decision.case.steps, key=lambda s: (s.remind_at, s.step)):
        if step.state != "pending":
            continue
        if not step.due_fired and step.remind_at <= now:
            step.due_fired = True
            decision.events.append(_emit(decision.case, "step_due", now, step))
        if not step.overdue_fired and step.due_at <= now:
            step.overdue_fired = True
            decision.events.append(_emit(decision.case, "step_overdue", now, step))
    return decision


# -- people ------------------------------------------------------------------------------


def complete_step(
    case: Case,
    step_code: str,
    state: str,
    outcome: str,
    note: str,
    by: str,
    playbooks: Playbooks,
    now: datetime,
) -> Decision:
    """Mark a pending step done or skipped, by a named person."""
    if outcome not in playbooks.step_outcomes:
        raise BadOutcome(
            f"unknown step outcome {outcome!r}; one of {sorted(playbooks.step_outcomes)}"
        )
    if state not in ("done", "skipped"):
        raise Conflict(f"a step can be set to done or skipped, not {state!r}")
    decision = Decision(case.model_copy(deep=True))
    case = decision.case
    step = next((s for s in case.steps if s.step == step_code and s.state == "pending"), None)
    if step is None:
        if not any(s.step == step_code for s in case.steps):
            raise UnknownStep(f"case {case.case_id} has no step {step_code!r}")
        raise Conflict(f"step {step_code!r} of case {case.case_id} is not pending")
    if case.status != "open":
        raise Conflict(f"case {case.case_id} is closed")
    step.state = state  # type: ignore[assignment]
    step.outcome, step.note, step.by, step.at = outcome, note or None, by, now
    case.updated_at = now
    case.log.append(
        LogEntry(
            at=now, by=by, what=f"step_{state}", detail={"step": step_code, "outcome": outcome}
        )
    )
    decision.events.append(_emit(case, "step_done", now, step, outcome=outcome, by=by))
    return decision


def close_case(
    case: Case, outcome: str, note: str, by: str, playbooks: Playbooks, now: datetime
) -> Decision:
    """Close by hand with an outcome; pending steps are cancelled."""
    if outcome not in playbooks.outcomes:
        raise BadOutcome(f"unknown case outcome {outcome!r}; one of {sorted(playbooks.outcomes)}")
    if case.status != "open":
        raise Conflict(f"case {case.case_id} is already closed")
    decision = Decision(case.model_copy(deep=True))
    _close(decision, outcome, by, note, now)
    return decision


def add_note(case: Case, text: str, by: str, now: datetime) -> Decision:
    """A note by a named person (no event: notes are not a lifecycle change)."""
    decision = Decision(case.model_copy(deep=True))
    decision.case.notes.append(Note(by=by, at=now, text=text))
    decision.case.updated_at = now
    decision.case.log.append(LogEntry(at=now, by=by, what="note"))
    return decision


def _close(decision: Decision, outcome: str, by: str, note: str, now: datetime) -> None:
    case = decision.case
    for step in case.steps:
        if step.state == "pending":
            step.state, step.at, step.by = "cancelled", now, by
    case.status, case.outcome, case.closed_by, case.closed_at = "closed", outcome, by, now
    case.updated_at = now
    if note:
        case.notes.append(Note(by=by, at=now, text=note))
    case.log.append(LogEntry(at=now, by=by, what="closed", detail={"outcome": outcome}))
    decision.events.append(_emit(case, "closed", now, outcome=outcome, by=by, note=note or None))
