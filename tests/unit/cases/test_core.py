"""The case logic, pure: anomalies, timers and people's actions against the playbooks."""

from __future__ import annotations

from datetime import timedelta

import pytest

from waybill_watch.cases import core
from waybill_watch.cases.playbooks import load_playbooks

from .factory import LADDER, T0, event

PLAYBOOKS = load_playbooks()
NOW = T0 + timedelta(seconds=5)


def opened() -> core.Decision:
    decision = core.apply_anomaly(None, event(), PLAYBOOKS, NOW)
    assert decision is not None
    return decision


def test_an_open_anomaly_opens_a_case_with_its_playbook_steps_due_on_the_anomalys_ladder():
    decision = opened()
    case = decision.case
    assert [e.event for e in decision.events] == ["opened"]
    assert case.status == "open" and case.waybill == "JDVA00353556371"
    assert [s.step for s in case.steps] == [s for s, _ in LADDER]
    # the anomaly's actions (the worker's ladder) set the due times, not the service's clock
    assert [s.due_at for s in case.steps] == [T0 + d for _, d in LADDER]
    assert case.steps[0].remind_at == T0 + timedelta(hours=1, minutes=30)
    assert (case.origin_city, case.destination_city) == ("杭州", "石家庄市")
    assert case.site == "石家庄长安区建设路营业部"


def test_the_same_event_applied_twice_changes_nothing():
    case = opened().case
    assert core.apply_anomaly(case, event(), PLAYBOOKS, NOW + timedelta(minutes=1)) is None


def test_a_second_episode_of_the_waybill_attaches_to_its_case_without_doubling_steps():
    case = opened().case
    second = event("suspicious_signature", severity="high", at=T0 + timedelta(minutes=3))
    decision = core.apply_anomaly(case, second, PLAYBOOKS, NOW + timedelta(minutes=3))
    assert decision is not None and decision.events == []
    assert decision.case.case_id == case.case_id
    assert [a.type for a in decision.case.anomalies] == [
        "signed_not_received",
        "suspicious_signature",
    ]
    codes = [s.step for s in decision.case.steps]
    assert codes.count("contact_recipient") == 1 and codes.count("request_sign_proof") == 1
    assert decision.case.severity == "critical"  # the highest of its episodes


def test_a_shared_step_takes_the_tighter_due_time():
    first = event("suspicious_signature", severity="high", actions=False)
    case = core.apply_anomaly(None, first, PLAYBOOKS, NOW).case  # type: ignore[union-attr]
    [contact] = [s for s in case.steps if s.step == "contact_recipient"]
    assert contact.due_at == NOW + timedelta(hours=4)
    later = core.apply_anomaly(case, event(at=T0 + timedelta(minutes=1)), PLAYBOOKS, NOW)
    assert later is not None
    [contact] = [s for s in later.case.steps if s.step == "contact_recipient"]
    assert contact.due_at == T0 + timedelta(minutes=1, hours=2)
    assert contact.anomaly_type == "signed_not_received"


def test_receipt_confirmed_resolves_and_closes_the_case_cancelling_pending_steps():
    case = opened().case
    resolved = event(status="resolved", at=T0 + timedelta(hours=3))
    decision = core.apply_anomaly(case, resolved, PLAYBOOKS, NOW + timedelta(hours=3))
    assert decision is not None
    assert [e.event for e in decision.events] == ["closed"]
    closed = decision.case
    assert (closed.status, closed.outcome, closed.closed_by) == (
        "closed",
        "receipt_confirmed",
        "system",
    )
    assert {s.state for s in closed.steps} == {"cancelled"}


def test_a_case_stays_open_while_one_of_its_episodes_is_open():
    case = opened().case
    second = event("delivery_exception", severity="high", at=T0 + timedelta(minutes=3))
    case = core.apply_anomaly(case, second, PLAYBOOKS, NOW).case  # type: ignore[union-attr]
    done = core.apply_anomaly(case, event(status="resolved"), PLAYBOOKS, NOW)
    assert done is not None and done.case.status == "open" and done.events == []


def test_a_new_episode_reopens_a_closed_waybill_case():
    case = core.apply_anomaly(opened().case, event(status="resolved"), PLAYBOOKS, NOW).case  # type: ignore[union-attr]
    later = event("transit_stall", severity="warning", episode=1, at=T0 + timedelta(days=2))
    decision = core.apply_anomaly(case, later, PLAYBOOKS, T0 + timedelta(days=2))
    assert decision is not None
    assert [e.event for e in decision.events] == ["opened"]
    assert decision.case.opening == 2 and decision.case.status == "open"
    assert decision.case.type == "transit_stall"
    assert decision.events[0].event_id != opened().events[0].event_id


def test_a_resolution_nobody_opened_makes_no_case():
    assert core.apply_anomaly(None, event(status="resolved"), PLAYBOOKS, NOW) is None


def test_site_episodes_get_a_case_each_listing_their_waybills():
    spike = event(
        "site_stall_spike",
        scope="site",
        subject="ZTO:天津转运中心",
        courier="ZTO",
        severity="warning",
        evidence={"site": "天津转运中心", "waybills": ["W2", "W1"], "open_stalls": 10},
    )
    decision = core.apply_anomaly(None, spike, PLAYBOOKS, NOW)
    assert decision is not None
    assert decision.case.scope == "site" and decision.case.waybill is None
    assert decision.case.waybills == ["W1", "W2"] and decision.case.site == "天津转运中心"
    other = spike.model_copy(update={"anomaly_id": "x" * 32})
    assert core.case_key(other) != core.case_key(spike)


def test_timers_fire_the_reminder_then_the_overdue_mark_once_each():
    case = opened().case
    step = case.steps[0]
    assert core.fire_timers(case, step.remind_at - timedelta(seconds=1)) is None
    due = core.fire_timers(case, step.remind_at)
    assert due is not None and [(e.event, e.step) for e in due.events] == [
        ("step_due", "contact_recipient")
    ]
    assert core.fire_timers(due.case, step.remind_at + timedelta(minutes=1)) is None
    late = core.fire_timers(due.case, step.due_at)
    assert late is not None and [(e.event, e.step) for e in late.events] == [
        ("step_overdue", "contact_recipient")
    ]
    assert core.fire_timers(late.case, step.due_at + timedelta(hours=1)) is None
    assert late.case.next_timer_at() == late.case.steps[1].remind_at


def test_a_step_done_before_its_due_time_never_fires():
    case = opened().case
    done = core.complete_step(
        case, "contact_recipient", "done", "reached_buyer", "found at guard", "li", PLAYBOOKS, NOW
    )
    assert [(e.event, e.state, e.by) for e in done.events] == [("step_done", "done", "li")]
    # past contact_recipient's due time, before the next step's reminder: nothing fires
    assert core.fire_timers(done.case, T0 + timedelta(hours=3)) is None
    assert done.case.steps[0].on_time


def test_people_get_clear_errors():
    case = opened().case
    with pytest.raises(core.UnknownStep):
        core.complete_step(case, "nope", "done", "done", "", "li", PLAYBOOKS, NOW)
    with pytest.raises(core.BadOutcome):
        core.complete_step(case, "contact_recipient", "done", "??", "", "li", PLAYBOOKS, NOW)
    done = core.complete_step(
        case, "contact_recipient", "skipped", "not_needed", "", "li", PLAYBOOKS, NOW
    )
    with pytest.raises(core.Conflict):
        core.complete_step(done.case, "contact_recipient", "done", "done", "", "li", PLAYBOOKS, NOW)
    closed = core.close_case(done.case, "found_with_guard", "guard room", "li", PLAYBOOKS, NOW)
    assert [e.event for e in closed.events] == ["closed"]
    assert closed.case.notes[-1].text == "guard room"
    with pytest.raises(core.Conflict):
        core.close_case(closed.case, "other", "", "li", PLAYBOOKS, NOW)


def test_event_ids_are_deterministic():
    again = core.apply_anomaly(None, event(), PLAYBOOKS, NOW + timedelta(hours=1))
    assert again is not None
    assert again.events[0].event_id == opened().events[0].event_id
    assert again.case.case_id == opened().case.case_id
