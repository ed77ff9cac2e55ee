"""status_regression: after_delivery (resolvable) and site_loop (never resolves)."""

from __future__ import annotations

from waybill_watch.domain.ids import anomaly_id

from .helpers import WAYBILL, Driver, at, of, scan, summary


def test_in_transit_after_delivery_opens_and_a_later_delivery_resolves() -> None:
    d = Driver()
    d.update(scan("out_for_delivery", at(0)))
    delivered = scan("delivered", at(1), sign_type="recipient")
    d.update(delivered)
    opened = of("status_regression", d.update(scan("in_transit", at(3), site="A")))
    assert summary(opened) == [("status_regression", "open", ["after_delivery"])]
    assert opened[0].severity == "warning"
    assert opened[0].anomaly_id == anomaly_id("status_regression", WAYBILL, delivered.event_id)

    resolved = of("status_regression", d.update(scan("delivered", at(9), sign_type="proxy")))
    assert summary(resolved) == [("status_regression", "resolved", ["after_delivery"])]


def test_scan_dated_before_the_delivery_is_no_regression() -> None:
    d = Driver()
    d.update(scan("out_for_delivery", at(0)), scan("delivered", at(2), sign_type="recipient"))
    d.update(scan("in_transit", at(1)), now=at(3))
    assert of("status_regression", d.events) == []


def test_out_of_order_arrival_still_detects_after_delivery() -> None:
    d = Driver()
    d.update(scan("in_transit", at(3)))
    d.update(scan("out_for_delivery", at(0)), scan("delivered", at(1), sign_type="recipient"))
    assert summary(of("status_regression", d.events)) == [
        ("status_regression", "open", ["after_delivery"])
    ]


def test_site_loop_opens_and_never_resolves() -> None:
    d = Driver()
    d.update(scan("picked_up", at(0), site="A"), scan("in_transit", at(1), site="A"))
    d.update(scan("in_transit", at(5), site="B"))
    opened = of("status_regression", d.update(scan("in_transit", at(9), site="A")))
    assert summary(opened) == [("status_regression", "open", ["site_loop"])]
    assert opened[0].anomaly_id == anomaly_id("status_regression", WAYBILL, "loop")
    assert opened[0].evidence["loop_scans"][0]["site"] == "A"

    d.update(scan("out_for_delivery", at(20)), scan("delivered", at(21), sign_type="recipient"))
    assert of("status_regression", d.events[1:]) == []


def test_consecutive_scans_at_one_site_and_return_trips_are_no_loop() -> None:
    d = Driver()
    d.update(
        scan("picked_up", at(0), site="A"),
        scan("in_transit", at(1), site="A"),
        scan("in_transit", at(2), site="A"),
        scan("in_transit", at(5), site="B"),
        scan("returning", at(6), site="B"),
        scan("in_transit", at(9), site="A"),
    )
    assert of("status_regression", d.events) == []


def test_loop_then_after_delivery_updates_the_loop_episode() -> None:
    d = Driver()
    d.update(
        scan("in_transit", at(0), site="A"),
        scan("in_transit", at(1), site="B"),
        scan("in_transit", at(2), site="A"),
    )
    d.update(scan("out_for_delivery", at(3)), scan("delivered", at(4), sign_type="recipient"))
    events = of("status_regression", d.update(scan("in_transit", at(6), site="C")))
    assert summary(events) == [("status_regression", "updated", ["after_delivery", "site_loop"])]
    assert of("status_regression", d.update(scan("delivered", at(9), sign_type="proxy"))) == []
