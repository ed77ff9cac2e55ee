"""suspicious_signature and signed_not_received."""

from __future__ import annotations

from waybill_watch.domain.ids import anomaly_id

from .helpers import WAYBILL, Driver, at, of, scan, summary


def _normal_route(d: Driver) -> None:
    d.update(scan("picked_up", at(0), city="上海"), scan("in_transit", at(6), city="杭州"))
    d.update(scan("out_for_delivery", at(24), city="杭州市"))


# -- suspicious_signature -------------------------------------------------------------------


def test_delivery_after_a_delivery_scan_in_the_right_city_at_noon_is_fine() -> None:
    d = Driver()
    d.order("shipped", at(-2), city="杭州市")
    _normal_route(d)
    d.update(scan("delivered", at(27), city="杭州", sign_type="recipient"))  # 12:00 local
    assert of("suspicious_signature", d.events) == []


def test_signed_without_any_hand_over_scan() -> None:
    d = Driver()
    d.update(scan("picked_up", at(0)), scan("in_transit", at(6)))
    events = of("suspicious_signature", d.update(scan("delivered", at(27), sign_type="recipient")))
    assert summary(events) == [("suspicious_signature", "open", ["no_delivery_scan"])]
    assert events[0].severity == "high"
    assert events[0].anomaly_id == anomaly_id("suspicious_signature", WAYBILL, "-")


def test_city_mismatch_needs_both_cities_and_ignores_trailing_shi() -> None:
    d = Driver()
    _normal_route(d)
    d.update(scan("delivered", at(27), city="宁波市", sign_type="recipient"))
    assert of("suspicious_signature", d.events) == []  # destination unknown: no judgement

    late = Driver()
    late.order("shipped", at(-2), city="杭州市")
    _normal_route(late)
    events = late.update(scan("delivered", at(27), city="宁波", sign_type="recipient"))
    assert summary(of("suspicious_signature", events)) == [
        ("suspicious_signature", "open", ["city_mismatch"])
    ]
    assert events[0].evidence["destination_city"] == "杭州市"


def test_odd_hours_are_local_time_00_to_06() -> None:
    d = Driver()
    _normal_route(d)
    inside = d.update(scan("delivered", at(44), sign_type="recipient"))  # 05:00 local
    assert summary(of("suspicious_signature", inside)) == [
        ("suspicious_signature", "open", ["odd_hours"])
    ]

    edge = Driver()
    _normal_route(edge)
    edge.update(scan("delivered", at(45), sign_type="recipient"))  # 06:00 local: not odd
    assert of("suspicious_signature", edge.events) == []


def test_a_late_hand_over_scan_never_retracts_and_receipt_resolves() -> None:
    d = Driver()
    d.update(scan("in_transit", at(6)))
    opened = d.update(scan("delivered", at(27), sign_type="recipient"))
    assert summary(of("suspicious_signature", opened)) == [
        ("suspicious_signature", "open", ["no_delivery_scan"])
    ]
    assert of("suspicious_signature", d.update(scan("out_for_delivery", at(25)), now=at(28))) == []

    resolved = of("suspicious_signature", d.order("receipt_confirmed", at(30)))
    assert summary(resolved) == [("suspicious_signature", "resolved", ["no_delivery_scan"])]
    assert resolved[0].anomaly_id == opened[0].anomaly_id
    assert resolved[0].evidence["resolved_by"]["type"] == "receipt_confirmed"


def test_destination_known_later_updates_with_city_mismatch() -> None:
    d = Driver()
    d.update(scan("in_transit", at(6)))
    d.update(scan("delivered", at(27), city="宁波", sign_type="recipient"))
    events = of("suspicious_signature", d.order("shipped", at(-2), now=at(28), city="杭州"))
    assert summary(events) == [
        ("suspicious_signature", "updated", ["no_delivery_scan", "city_mismatch"])
    ]


def test_delivery_confirmed_before_the_scan_arrived_is_not_suspicious() -> None:
    d = Driver()
    d.order("receipt_confirmed", at(30))
    d.update(scan("delivered", at(27), sign_type="recipient"), now=at(31))
    assert of("suspicious_signature", d.events) == []


# -- signed_not_received --------------------------------------------------------------------


def _delivered(d: Driver) -> None:
    _normal_route(d)
    d.update(scan("delivered", at(27), sign_type="proxy", signer="张三丰"))


def test_complaint_after_signing_opens_critical_with_the_escalation_ladder() -> None:
    d = Driver()
    _delivered(d)
    events = d.order("not_received_reported", at(50), now=at(50, 1))

    assert summary(events) == [("signed_not_received", "open", ["not_received_reported"])]
    event = events[0]
    assert event.severity == "critical"
    assert event.merchant == "shop-42"
    assert event.detected_at == at(50, 1)
    assert [(a.step, a.due_at) for a in event.actions] == [
        ("contact_recipient", at(52, 1)),
        ("request_sign_proof", at(74, 1)),
        ("escalate_platform", at(98, 1)),
        ("escalate_regulator", at(218, 1)),
    ]
    assert event.evidence["scans"][0]["signer"] == "张**"
    assert event.evidence["order_events"][0]["type"] == "not_received_reported"


def test_complaint_while_in_transit_does_not_open() -> None:
    d = Driver()
    _normal_route(d)
    assert of("signed_not_received", d.order("not_received_reported", at(26))) == []


def test_delivery_scan_arriving_after_the_complaint_but_dated_before_opens_it() -> None:
    d = Driver()
    _normal_route(d)
    d.order("not_received_reported", at(50))
    events = d.update(scan("delivered", at(27), sign_type="proxy"), now=at(51))
    assert summary(of("signed_not_received", events)) == [
        ("signed_not_received", "open", ["not_received_reported"])
    ]
    assert events[0].detected_at == at(51)


def test_second_complaint_updates_keeps_the_ladder_and_receipt_resolves() -> None:
    d = Driver()
    _delivered(d)
    opened = d.order("not_received_reported", at(50))
    updated = d.order("not_received_reported", at(60), order_id="O-982")
    assert summary(updated) == [("signed_not_received", "updated", ["not_received_reported"])]
    assert updated[0].anomaly_id == opened[0].anomaly_id
    assert [a.due_at for a in updated[0].actions] == [a.due_at for a in opened[0].actions]

    resolved = of("signed_not_received", d.order("receipt_confirmed", at(70)))
    assert summary(resolved) == [("signed_not_received", "resolved", ["not_received_reported"])]
    assert resolved[0].actions == []


def test_same_complaint_twice_is_one_fact() -> None:
    d = Driver()
    _delivered(d)
    d.order("not_received_reported", at(50))
    assert d.order("not_received_reported", at(50), now=at(55)) == []


def test_new_complaint_after_resolution_opens_a_new_id() -> None:
    d = Driver()
    _delivered(d)
    first = d.order("not_received_reported", at(50))
    d.order("receipt_confirmed", at(70))
    again = d.order("not_received_reported", at(80))
    assert summary(again) == [("signed_not_received", "open", ["not_received_reported"])]
    assert again[0].anomaly_id != first[0].anomaly_id


def test_waybill_anomalies_carry_the_lane_and_the_whole_timeline_for_the_case_service() -> None:
    d = Driver()
    d.order("shipped", at(-2), city="杭州市")
    _delivered(d)
    [opened] = d.order("not_received_reported", at(50), now=at(50, 1))
    assert opened.evidence["lane"] == {"origin_city": "上海", "destination_city": "杭州市"}
    timeline = opened.evidence["timeline"]
    assert [s["status"] for s in timeline["scans"]] == [
        "picked_up",
        "in_transit",
        "out_for_delivery",
        "delivered",
    ]
    assert timeline["scans"][-1]["signer"] == "张**"  # masked like all evidence
    assert [o["type"] for o in timeline["order_events"]] == ["shipped", "not_received_reported"]
    [resolved] = d.order("receipt_confirmed", at(60), now=at(60))
    assert "timeline" not in resolved.evidence  # the case already has it
