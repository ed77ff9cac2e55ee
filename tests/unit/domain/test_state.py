"""WaybillState: event-time order, duplicate absorption, bounds, serialisation."""

from __future__ import annotations

import pytest

from waybill_watch.domain.state import MAX_SCANS, STATE_VERSION, WaybillState
from waybill_watch.domain.types import CourierAlertKind, Status

from .helpers import Driver, alert, at, push, scan


def test_scans_are_kept_in_event_time_order_whatever_the_arrival_order() -> None:
    d = Driver()
    d.update(scan("in_transit", at(5)), scan("picked_up", at(1)))
    d.update(scan("out_for_delivery", at(9)), scan("in_transit", at(3)), now=at(10))
    assert d.state is not None
    assert [r.t for r in d.state.scans] == sorted(r.t for r in d.state.scans)
    assert [r.status for r in d.state.scans] == [
        Status.PICKED_UP,
        Status.IN_TRANSIT,
        Status.IN_TRANSIT,
        Status.OUT_FOR_DELIVERY,
    ]


def test_duplicates_are_absorbed_and_only_new_scans_are_returned_in_event_order() -> None:
    d = Driver()
    a, b, c = scan("picked_up", at(1)), scan("in_transit", at(2)), scan("in_transit", at(3))
    first = d.engine.on_update(None, push(b, a, a), at(3))
    assert first.new_scans == [a, b]
    second = d.engine.on_update(first.state, push(c, b, a), at(4))
    assert second.new_scans == [c]
    third = d.engine.on_update(second.state, push(a, b, c), at(5))
    assert third.new_scans == []
    assert len(third.state.scans) == 3


def test_round_trip_keeps_every_fact_and_open_episode() -> None:
    d = Driver()
    d.order("shipped", at(0), promise=at(72), city="杭州市")
    d.update(
        scan("picked_up", at(1), site="上海", city="上海"),
        scan("exception", at(2), site="上海", code="413", description="包裹破损 13812345678"),
        scan("available_for_pickup", at(30), site="驿站"),
        scan("delivered", at(31), site="驿站", sign_type="station", signer="李四"),
        alerts=(alert(CourierAlertKind.TRANSIT_STALL, at(2)),),
    )
    d.order("not_received_reported", at(40))
    state = d.state
    assert state is not None and state.episodes
    data = state.to_bytes()
    assert data[0] == STATE_VERSION
    again = WaybillState.from_bytes(data)
    assert again == state
    assert again.to_bytes() == data


def test_unknown_state_version_is_refused() -> None:
    with pytest.raises(ValueError, match="version"):
        WaybillState.from_bytes(b'[99,"YT1"]')


def test_typical_state_stays_small() -> None:
    """A 12-scan trace with an order and open episodes: under 1 KiB serialised (v1: 1.4 KB)."""
    d = Driver()
    d.order("shipped", at(-1), promise=at(72), city="杭州市")
    route = ["上海转运中心", "嘉兴分拨", "杭州转运中心", "杭州西湖网点"]
    scans = [scan("picked_up", at(0), site="上海青浦网点", city="上海市")]
    scans += [scan("in_transit", at(2 + i), site=s, city=s[:2]) for i, s in enumerate(route * 2)]
    scans += [scan("out_for_delivery", at(20), site="杭州西湖网点", city="杭州市")]
    scans += [scan("failed_attempt", at(22), site="杭州西湖网点", code="405")]
    scans += [scan("exception", at(23), site="杭州西湖网点", code="413")]
    d.update(*scans)
    assert d.state is not None and len(d.state.scans) == 12
    assert len(d.state.to_bytes()) < 1024


def test_history_is_bounded_and_evicted_scans_are_still_duplicates() -> None:
    d = Driver()
    delivered = scan("delivered", at(0.5), sign_type="recipient")
    d.update(delivered, *(scan("in_transit", at(1 + i), site=f"S{i}") for i in range(MAX_SCANS)))
    state = d.state
    assert state is not None
    assert len(state.scans) == MAX_SCANS
    assert delivered.event_id in {r.event_id for r in state.scans}  # milestones survive
    assert len(state.evicted) == 1
    evicted = scan("in_transit", at(1), site="S0")
    assert d.engine.on_update(state, push(evicted), at(200)).new_scans == []


def test_personal_data_is_masked_before_it_is_stored() -> None:
    d = Driver()
    d.update(
        scan(
            "delivered",
            at(1),
            sign_type="proxy",
            signer="王小明",
            description="已签收，签收人：王小明，电话13812345678",
        )
    )
    raw = d.state.to_bytes() if d.state else b""
    assert b"13812345678" not in raw
    assert "王小明".encode() not in raw


def test_worst_case_state_stays_bounded() -> None:
    d = Driver()
    for i in range(40):
        d.order("shipped" if i % 3 == 0 else "not_received_reported", at(i), order_id=f"O-{i}")
    text = "派送失败：收件人电话无人接听，包裹暂存于杭州市西湖区文三路某某快递驿站，请尽快领取" * 3
    d.update(
        *(
            scan("exception", at(i / 10), site="杭州西湖文三路驿站", code="413", description=text)
            for i in range(600)
        )
    )
    state = d.state
    assert state is not None
    assert (len(state.scans), len(state.evicted), len(state.orders)) == (64, 512, 32)
    assert len(state.to_bytes()) < 64 * 1024
    assert len(state.facts("shipped")) >= 1  # every kind survives the order bound
