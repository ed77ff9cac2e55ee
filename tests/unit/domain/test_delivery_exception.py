"""delivery_exception: opens on a problem scan, updates on the next, resolves on delivery."""

from __future__ import annotations

from waybill_watch.domain.ids import anomaly_id

from .helpers import T0, WAYBILL, Driver, at, of, scan, summary


def test_failed_attempt_opens_with_its_status_as_reason_and_code_in_evidence() -> None:
    d = Driver()
    d.update(scan("out_for_delivery", at(0), site="西湖站"))
    events = d.update(scan("failed_attempt", at(2), site="西湖站", code="405"), now=at(2, 5))

    assert summary(events) == [("delivery_exception", "open", ["failed_attempt"])]
    event = events[0]
    assert event.severity == "high"
    assert event.scope == "waybill"
    assert event.subject == WAYBILL
    assert event.anomaly_id == anomaly_id("delivery_exception", WAYBILL, "-")
    assert event.detected_at == at(2, 5)
    assert event.evidence["courier_codes"] == ["405"]
    assert event.evidence["scans"][0]["status"] == "failed_attempt"
    assert event.evidence["scans"][0]["event_time"] == "2026-11-20T11:00:00.000+08:00"


def test_routine_scans_open_nothing() -> None:
    d = Driver()
    d.update(scan("picked_up", at(0)), scan("in_transit", at(5)), scan("out_for_delivery", at(20)))
    assert d.events == []


def test_second_problem_scan_updates_the_same_episode() -> None:
    d = Driver()
    first = d.update(scan("failed_attempt", at(1)))
    second = d.update(scan("rejected", at(3)))

    assert summary(second) == [("delivery_exception", "updated", ["failed_attempt", "rejected"])]
    assert second[0].anomaly_id == first[0].anomaly_id
    assert second[0].evidence["count"] == 2


def test_later_delivery_resolves() -> None:
    d = Driver()
    opened = d.update(scan("exception", at(1)))
    resolved = of("delivery_exception", d.update(scan("delivered", at(5), sign_type="recipient")))

    assert summary(resolved) == [("delivery_exception", "resolved", ["exception"])]
    assert resolved[0].anomaly_id == opened[0].anomaly_id
    assert resolved[0].evidence["resolved_by"]["status"] == "delivered"
    assert resolved[0].evidence["opened_at"] == "2026-11-20T10:00:00.000+08:00"


def test_returned_resolves_returning() -> None:
    d = Driver()
    d.update(scan("returning", at(1)))
    assert summary(of("delivery_exception", d.update(scan("returned", at(30))))) == [
        ("delivery_exception", "resolved", ["returning"])
    ]


def test_exception_older_than_the_latest_delivery_never_opens() -> None:
    """Near miss: the problem scan arrives late but happened before the delivery."""
    d = Driver()
    d.update(scan("delivered", at(5), sign_type="recipient"))
    events = d.update(scan("exception", at(4)), now=at(6))
    assert [e for e in events if e.type == "delivery_exception"] == []


def test_same_timestamp_delivery_sorts_after_the_exception() -> None:
    """Same event time: the lifecycle rank puts the exception first, and facts arriving
    together are seen one at a time in that order (contract §6), so the delivery resolves it."""
    d = Driver()
    events = d.update(scan("exception", at(1)), scan("delivered", at(1), sign_type="recipient"))
    assert summary(of("delivery_exception", events)) == [
        ("delivery_exception", "open", ["exception"]),
        ("delivery_exception", "resolved", ["exception"]),
    ]
    assert d.state is not None and "delivery_exception" not in d.state.episodes


def test_new_problem_after_resolution_opens_a_new_episode_with_a_new_id() -> None:
    d = Driver()
    first = d.update(scan("failed_attempt", at(1)))
    delivered = scan("delivered", at(2), sign_type="proxy")
    d.update(delivered)
    again = d.update(scan("rejected", at(3)))

    assert summary(again) == [("delivery_exception", "open", ["rejected"])]
    assert again[0].anomaly_id != first[0].anomaly_id
    assert again[0].anomaly_id == anomaly_id("delivery_exception", WAYBILL, delivered.event_id)


def test_duplicate_push_of_the_same_trace_emits_nothing() -> None:
    d = Driver()
    trace = (scan("in_transit", at(0)), scan("failed_attempt", at(1)))
    d.update(*trace)
    assert d.update(*trace, now=at(1, 30)) == []
    assert d.update(trace[1], now=at(2)) == []
    assert at(0) == T0
