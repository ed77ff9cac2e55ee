"""Facts that arrive together (contract §6): event-triggered rules see every fact as it becomes
known, in event-time order among the facts of one push.

A trigger and its resolution in the same push emit ``open`` then ``resolved``; the order the
push lists them in does not matter, a duplicate push adds nothing, and the same facts arriving
resolution first (in an earlier push) open nothing. ``suspicious_signature`` and
``signed_not_received`` are resolved by an order event, which never shares a push with scans:
for them a push can only open or update, and each of its scans is seen in turn.

The property at the end pins the rule down: one push gives exactly what its new scans give
pushed one at a time in event-time order (events byte for byte, and the state).
"""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from waybill_watch import jsonio
from waybill_watch.domain.config import DetectionSettings
from waybill_watch.domain.engine import WaybillEngine
from waybill_watch.domain.ids import anomaly_id
from waybill_watch.domain.state import ScanRecord, WaybillState
from waybill_watch.domain.types import Scan

from .helpers import WAYBILL, Driver, at, of, order, push, scan, summary
from .test_properties import arrivals, histories


def _same_push_three_ways(anomaly_type: str, *scans: Scan) -> list[tuple[str, str, list[str]]]:
    """The events of one type for ``scans`` in one push, checking that the push listed in
    reverse gives the same events and that a duplicate of it adds nothing."""
    d = Driver()
    events = of(anomaly_type, d.update(*scans))
    reverse = Driver()
    assert [e.anomaly_id for e in of(anomaly_type, reverse.update(*reversed(scans)))] == [
        e.anomaly_id for e in events
    ]
    assert summary(of(anomaly_type, reverse.events)) == summary(events)
    assert d.state is not None and reverse.state is not None
    before = d.state.to_bytes()
    assert d.update(*scans) == []
    assert d.state.to_bytes() == before == reverse.state.to_bytes()
    return summary(events)


# -- delivery_exception ---------------------------------------------------------------------


def test_failed_attempt_and_delivery_in_one_push_open_then_resolve() -> None:
    failed = scan("failed_attempt", at(1), code="405")
    delivered = scan("delivered", at(3), sign_type="recipient")
    assert _same_push_three_ways("delivery_exception", failed, delivered) == [
        ("delivery_exception", "open", ["failed_attempt"]),
        ("delivery_exception", "resolved", ["failed_attempt"]),
    ]
    d = Driver()
    events = of("delivery_exception", d.update(delivered, failed))
    assert (
        events[0].anomaly_id
        == events[1].anomaly_id
        == anomaly_id("delivery_exception", WAYBILL, "-")
    )
    assert events[0].evidence["scans"][0]["courier_code"] == "405"
    assert events[1].evidence["resolved_by"]["event_id"] == delivered.event_id


def test_exception_return_and_returned_in_one_push_open_update_resolve() -> None:
    assert _same_push_three_ways(
        "delivery_exception",
        scan("exception", at(1)),
        scan("returning", at(2)),
        scan("returned", at(9)),
    ) == [
        ("delivery_exception", "open", ["exception"]),
        ("delivery_exception", "updated", ["exception", "returning"]),
        ("delivery_exception", "resolved", ["exception", "returning"]),
    ]


def test_resolution_arriving_before_its_trigger_opens_nothing() -> None:
    d = Driver()
    d.update(scan("delivered", at(3), sign_type="recipient"))
    d.update(scan("failed_attempt", at(1)), now=at(4))
    assert of("delivery_exception", d.events) == []


def test_two_late_deliveries_each_move_the_boundary_before_a_known_problem() -> None:
    """The exception was known; the deliveries before it arrive together: each is seen in turn."""
    d = Driver()
    d.update(scan("exception", at(5)))
    first = scan("delivered", at(1), sign_type="recipient")
    second = scan("delivered", at(2), sign_type="recipient")
    events = of("delivery_exception", d.update(second, first, now=at(6)))
    assert summary(events) == [
        ("delivery_exception", "resolved", ["exception"]),
        ("delivery_exception", "open", ["exception"]),
        ("delivery_exception", "resolved", ["exception"]),
        ("delivery_exception", "open", ["exception"]),
    ]
    keys = ["-", first.event_id, first.event_id, second.event_id]
    assert [e.anomaly_id for e in events] == [
        anomaly_id("delivery_exception", WAYBILL, k) for k in keys
    ]


# -- status_regression ----------------------------------------------------------------------


def test_signed_sent_out_again_and_signed_again_in_one_push_open_then_resolve() -> None:
    """The contract's own example."""
    first = scan("delivered", at(2), sign_type="proxy")
    trace = (
        scan("out_for_delivery", at(1)),
        first,
        scan("out_for_delivery", at(5)),
        scan("delivered", at(6), sign_type="recipient"),
    )
    assert _same_push_three_ways("status_regression", *trace) == [
        ("status_regression", "open", ["after_delivery"]),
        ("status_regression", "resolved", ["after_delivery"]),
    ]
    d = Driver()
    events = of("status_regression", d.update(*trace))
    assert {e.anomaly_id for e in events} == {
        anomaly_id("status_regression", WAYBILL, first.event_id)
    }
    assert of("suspicious_signature", d.events) == []  # both signings followed a hand-over


def test_the_same_scans_in_two_pushes_give_the_same_events() -> None:
    trace = (
        scan("out_for_delivery", at(1)),
        scan("delivered", at(2), sign_type="proxy"),
        scan("out_for_delivery", at(5)),
        scan("delivered", at(6), sign_type="recipient"),
    )
    together = Driver()
    together.update(*trace, now=at(6))
    apart = Driver()
    apart.update(*trace[:3], now=at(6))
    apart.update(trace[3], now=at(6))
    assert [jsonio.dumps(e) for e in apart.events] == [jsonio.dumps(e) for e in together.events]


def test_later_scans_arriving_first_open_no_regression() -> None:
    d = Driver()
    d.update(scan("out_for_delivery", at(5)), scan("delivered", at(6), sign_type="recipient"))
    d.update(scan("out_for_delivery", at(1)), scan("delivered", at(2), sign_type="proxy"))
    assert of("status_regression", d.events) == []


def test_site_loop_then_delivery_in_one_push_stays_open() -> None:
    assert _same_push_three_ways(
        "status_regression",
        scan("in_transit", at(0), site="A"),
        scan("in_transit", at(1), site="B"),
        scan("in_transit", at(2), site="A"),
        scan("out_for_delivery", at(3)),
        scan("delivered", at(4), sign_type="recipient"),
    ) == [("status_regression", "open", ["site_loop"])]


# -- suspicious_signature -------------------------------------------------------------------


def test_two_suspicious_signings_in_one_push_open_then_update() -> None:
    trace = (
        scan("in_transit", at(0)),
        scan("delivered", at(2), sign_type="recipient"),  # 11:00, no hand-over before it
        scan("out_for_delivery", at(14)),
        scan("delivered", at(16), sign_type="recipient"),  # 01:00 local
    )
    assert _same_push_three_ways("suspicious_signature", *trace) == [
        ("suspicious_signature", "open", ["no_delivery_scan"]),
        ("suspicious_signature", "updated", ["no_delivery_scan", "odd_hours"]),
    ]
    d = Driver()
    d.update(*trace)
    resolved = of("suspicious_signature", d.order("receipt_confirmed", at(20)))
    assert summary(resolved) == [
        ("suspicious_signature", "resolved", ["no_delivery_scan", "odd_hours"])
    ]


# -- signed_not_received --------------------------------------------------------------------


def test_complaint_known_and_a_push_showing_it_signed_then_out_again_opens() -> None:
    """At the signing the complaint contradicts a signed parcel; the later scan of the same
    push (out again, still before the complaint) never retracts that."""
    d = Driver()
    d.update(scan("in_transit", at(0)))
    assert d.order("not_received_reported", at(10)) == []
    signed = scan("delivered", at(2), sign_type="proxy")
    trace = (signed, scan("out_for_delivery", at(5)))
    assert _complaint_first(trace) == [("signed_not_received", "open", ["not_received_reported"])]
    events = of("signed_not_received", d.update(*trace, now=at(11)))
    assert events[0].evidence["scans"][0]["event_id"] == signed.event_id
    assert events[0].actions[0].step == "contact_recipient"
    assert d.update(*trace, now=at(12)) == []
    resolved = of("signed_not_received", d.order("receipt_confirmed", at(20)))
    assert summary(resolved) == [("signed_not_received", "resolved", ["not_received_reported"])]


def test_scans_after_the_complaint_open_nothing_whatever_they_show() -> None:
    trace = (scan("delivered", at(12), sign_type="proxy"), scan("out_for_delivery", at(13)))
    assert _complaint_first(trace) == []


def _complaint_first(trace: tuple[Scan, ...]) -> list[tuple[str, str, list[str]]]:
    """signed_not_received for a complaint at +10 h, then ``trace`` in one push (either way
    round); a duplicate of the push adds nothing."""
    results = []
    for scans in (trace, trace[::-1]):
        d = Driver()
        d.update(scan("in_transit", at(0)))
        d.order("not_received_reported", at(10))
        results.append(summary(of("signed_not_received", d.update(*scans, now=at(14)))))
        assert d.update(*scans, now=at(15)) == []
    assert results[0] == results[1]
    return results[0]


# -- one push == its new scans one at a time --------------------------------------------------

ENGINE = WaybillEngine(DetectionSettings())
PUSH_AT = at(21)  # every generated scan is within 20 h: no deadline has passed yet


def _order_key(s: Scan) -> tuple[int, int, str]:
    return ScanRecord.from_scan(s).order


@st.composite
def _orders(draw: st.DrawFn) -> list[tuple[int, Any]]:
    """Order events (shipped with a destination, complaints, receipts), each with the number
    of pushes to apply before it."""
    kinds = st.sampled_from(("shipped", "not_received_reported", "receipt_confirmed"))
    specs = draw(
        st.lists(
            st.tuples(kinds, st.integers(0, 20 * 6), st.integers(0, 4), st.booleans()),
            max_size=4,
        )
    )
    return [
        (after, order(kind, at(0, 10 * step), city="杭州" if hangzhou else "宁波"))
        for kind, step, after, hangzhou in specs
    ]


def _run(pushes: list[list[Scan]], orders: list[tuple[int, Any]], one_by_one: bool) -> Any:
    state: WaybillState | None = None
    events: list[Any] = []

    def apply_orders(done: int) -> None:
        nonlocal state
        for after, event in orders:
            if after == done:
                out = ENGINE.on_order(state, event, PUSH_AT)
                state = out.state
                events.extend(out.anomalies)

    for done, scans in enumerate(pushes):
        apply_orders(done)
        if one_by_one:
            known = state.known_ids() if state is not None else (lambda _: False)
            new = {s.event_id: s for s in scans if not known(s.event_id)}
            batches = [[s] for s in sorted(new.values(), key=_order_key)] or [scans]
        else:
            batches = [scans]
        for batch in batches:
            out = ENGINE.on_update(state, push(*batch, received=PUSH_AT), PUSH_AT)
            state = out.state
            events.extend(out.anomalies)
    apply_orders(len(pushes))
    assert state is not None
    return state.to_bytes(), [jsonio.dumps(e) for e in events]


@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_one_push_equals_its_new_scans_one_at_a_time_in_event_time_order(
    data: st.DataObject,
) -> None:
    scans = data.draw(histories(loop_free=data.draw(st.booleans())))
    pushes = data.draw(arrivals(scans))
    orders = data.draw(_orders())
    assert _run(pushes, orders, one_by_one=False) == _run(pushes, orders, one_by_one=True)
