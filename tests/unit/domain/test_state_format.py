"""The stored form of ``WaybillState``: v2 round trips exactly whatever the state holds; states
stored as v1 (the orjson list layout) still load."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from waybill_watch.domain.ids import stable_id
from waybill_watch.domain.records import (
    ALERT_CODES,
    ORDER_KINDS,
    SIGN_CODES,
    STATUS_CODES,
    AlertFact,
    Episode,
    OrderFact,
    ScanRecord,
    short_ref,
)
from waybill_watch.domain.state import MAX_SCANS, STATE_VERSION, WaybillState
from waybill_watch.domain.types import CourierAlertKind, SignType, Status

from .helpers import Driver, alert, at, scan

# -- generated states ----------------------------------------------------------------------

# Instants anywhere an orjson integer can hold their differences: whole seconds (as feeds give
# them) or not.
instants = st.one_of(
    st.integers(-(2**40), 2**40).map(lambda s: s * 1000), st.integers(-(2**50), 2**50)
)
hex_ids = st.binary(min_size=16, max_size=16).map(bytes.hex)
# Mostly what feeds give (32 hex digits), and anything else an event id may be.
event_ids = st.one_of(
    hex_ids,
    hex_ids.map(str.upper),
    st.binary(min_size=1, max_size=24).map(bytes.hex),
    st.text(min_size=1, max_size=40),
)
texts = st.one_of(st.none(), st.sampled_from(["杭州", "杭州西湖网点", ""]), st.text(max_size=20))
signs = st.one_of(st.none(), st.sampled_from(SIGN_CODES))


@st.composite
def scan_records(draw: st.DrawFn) -> ScanRecord:
    site = draw(texts)
    text = draw(texts)
    if site is not None and text is not None and draw(st.booleans()):
        text = f"【{site}】{text}"  # the couriers' usual heading (stored without it)
    return ScanRecord(
        t=draw(instants),
        status=draw(st.sampled_from(STATUS_CODES)),
        event_id=draw(event_ids),
        site=site,
        city=draw(texts),
        sign_type=draw(signs),
        code=draw(texts),
        signer=draw(texts),
        text=text,
    )


order_facts = st.builds(
    OrderFact,
    t=instants,
    kind=st.sampled_from(ORDER_KINDS),
    ref=event_ids,
    promise=st.none() | instants,
    city=texts,
    merchant=texts,
    order_id=texts,
)
alert_facts = st.builds(
    AlertFact,
    kind=st.sampled_from(ALERT_CODES),
    reported=instants,
    received=instants,
    code=st.text(max_size=5),
    message=st.text(max_size=20),
)
episodes = st.builds(
    Episode,
    key=st.one_of(hex_ids, st.just("-"), st.text(max_size=10)),
    opened=instants,
    reasons=st.lists(st.text(max_size=12), max_size=3),
    support=st.integers(0, 100),
    site=texts,
)
evicted_refs = st.one_of(
    st.lists(st.binary(min_size=8, max_size=8).map(bytes.hex), max_size=20).map(sorted),
    st.lists(st.text(max_size=18), max_size=4),
)


@st.composite
def states(draw: st.DrawFn) -> WaybillState:
    alerts = draw(st.lists(alert_facts, max_size=3))
    return WaybillState(
        waybill=draw(st.text(min_size=1, max_size=20)),
        courier=draw(texts),
        merchant_hint=draw(texts),
        scans=draw(st.lists(scan_records(), max_size=12)),
        evicted=draw(evicted_refs),
        orders=draw(st.lists(order_facts, max_size=4)),
        alerts={a.kind: a for a in alerts},
        episodes=draw(st.dictionaries(st.text(max_size=20), episodes, max_size=3)),
        next_due=draw(st.none() | instants),
        last_scan_received=draw(st.none() | instants),
        retired=draw(st.none() | st.tuples(instants, instants)),
    )


# -- v2 ------------------------------------------------------------------------------------


@settings(max_examples=400, deadline=None)
@given(state=states())
def test_any_state_round_trips_exactly(state: WaybillState) -> None:
    data = state.to_bytes()
    assert data[0] == STATE_VERSION == 2
    again = WaybillState.from_bytes(data)
    assert again == state
    assert again.to_bytes() == data
    assert WaybillState.from_bytes(bytearray(data)) == state
    assert WaybillState.from_bytes(memoryview(data)) == state


@settings(max_examples=200, deadline=None)
@given(state=states())
def test_any_state_stored_as_v1_loads_exactly(state: WaybillState) -> None:
    assert WaybillState.from_bytes(_v1(state)) == state
    assert WaybillState.from_bytes(_v1(state).decode()) == state  # v1 could be given as text


def test_a_typical_trace_is_stored_compactly() -> None:
    """Ids as binary, each site and city name once, times as gaps: under 60 % of v1."""
    d = Driver()
    d.order("shipped", at(-1), promise=at(72), city="杭州市")
    route = ["上海青浦网点", "上海转运中心", "嘉兴分拨", "杭州转运中心", "杭州西湖网点"]
    scans = [scan("picked_up", at(0), site=route[0], city="上海市")]
    scans += [
        scan("in_transit", at(1 + i + half / 2), site=site, city=site[:2])
        for i, site in enumerate(route)
        for half in (0, 1)  # arrival, departure
    ]
    scans += [scan("out_for_delivery", at(20), site=route[-1], city="杭州市")]
    text = f"【{route[-1]}】快件已在快递柜签收"  # the heading names the scan's site: left off
    scans += [scan("delivered", at(22), site=route[-1], sign_type="locker", description=text)]
    d.update(*scans)
    state = d.state
    assert state is not None and len(state.scans) == 13
    data = state.to_bytes()
    assert len(data) < 0.6 * len(_v1(state))
    for scan_record in state.scans:  # event ids are not stored as text
        assert scan_record.event_id.encode() not in data
    assert data.count("杭州西湖网点".encode()) == 1
    again = WaybillState.from_bytes(data)
    assert again == state and again.scans[-1].text == text


def test_order_refs_and_evicted_refs_round_trip() -> None:
    d = Driver()
    d.order("shipped", at(0), city="杭州市", order_id="O-1")
    d.order("receipt_confirmed", at(30), order_id="O-1")
    d.update(*(scan("in_transit", at(1 + i / 10), site=f"S{i % 3}") for i in range(MAX_SCANS + 3)))
    state = d.state
    assert state is not None and len(state.evicted) == 3 and len(state.orders) == 2
    again = WaybillState.from_bytes(state.to_bytes())
    assert again.evicted == state.evicted and again.orders == state.orders
    assert again.known_ids()(state.scans[0].event_id)


def test_unknown_versions_are_refused() -> None:
    for data in (b'[99,"YT1"]', b"\x07\x00\x00", b"", b"{}"):
        with pytest.raises(ValueError, match="version"):
            WaybillState.from_bytes(data)


# -- v1, as stored by the previous release -------------------------------------------------

#: The round-trip scenario of ``test_state.py`` stored by v1 (two order facts, problem and
#: delivery scans, a courier alert, an open episode), plus two evicted refs added by hand.
V1_STATE = (
    b'[1,"YT1234567890123","YTO",null,[[1795140000000,1,"d464cb51c589cb0f7fcb107459e4e038",'
    b'"\xe4\xb8\x8a\xe6\xb5\xb7","\xe4\xb8\x8a\xe6\xb5\xb7"],[1795143600000,7,'
    b'"90cd63db84e92e22e0b45fa4b8f6ec97","\xe4\xb8\x8a\xe6\xb5\xb7",null,null,"413",null,'
    b'"\xe5\x8c\x85\xe8\xa3\xb9\xe7\xa0\xb4\xe6\x8d\x9f 138****5678"],[1795244400000,4,'
    b'"801f4914cc008a6809deb8db78b5f445","\xe9\xa9\xbf\xe7\xab\x99",null,null,null,null,'
    b'"available_for_pickup @ \xe9\xa9\xbf\xe7\xab\x99"],[1795248000000,5,'
    b'"ff529c30563edfcb6640dd203e4c978b","\xe9\xa9\xbf\xe7\xab\x99",null,3,null,"\xe6\x9d\x8e*",'
    b'"delivered @ \xe9\xa9\xbf\xe7\xab\x99"]],["0123456789abcdef","fedcba9876543210"],'
    b'[[1795136400000,0,"7e6c501e565e27b4965e21131326781d",1795395600000,'
    b'"\xe6\x9d\xad\xe5\xb7\x9e\xe5\xb8\x82","shop-42","O-981"],[1795280400000,2,'
    b'"8d24d17e1b1829b56a42b2da9ea2e454",null,null,"shop-42","O-981"]],'
    b'[[2,1795143600000,1795143600000,"403","courier alert"]],'
    b'{"signed_not_received":["-",1795280400000,["not_received_reported"],1]},null,1795248000000]'
)
#: A v1 retirement marker.
V1_MARKER = (
    b'[1,"YT1234567890123","YTO","shop-42",[],[],[],[],{},1812000230391,null,'
    b"[1795280400000,1796448230391]]"
)


def test_a_v1_state_loads_with_every_fact_and_is_written_back_as_v2() -> None:
    state = WaybillState.from_bytes(V1_STATE)
    assert [(r.status, r.site, r.city, r.sign_type, r.code, r.signer) for r in state.scans] == [
        (Status.PICKED_UP, "上海", "上海", None, None, None),
        (Status.EXCEPTION, "上海", None, None, "413", None),
        (Status.AVAILABLE_FOR_PICKUP, "驿站", None, None, None, None),
        (Status.DELIVERED, "驿站", None, SignType.STATION, None, "李*"),
    ]
    assert state.scans[1].text == "包裹破损 138****5678"
    assert state.scans[0].event_id == "d464cb51c589cb0f7fcb107459e4e038"
    assert state.evicted == ["0123456789abcdef", "fedcba9876543210"]
    shipped, complaint = state.orders
    assert (shipped.kind, shipped.promise, shipped.city) == ("shipped", 1795395600000, "杭州市")
    assert complaint.ref == "8d24d17e1b1829b56a42b2da9ea2e454"
    assert complaint.ref == stable_id(
        "order",
        "not_received_reported",
        state.waybill,
        1795280400000,
        None,
        None,
        "shop-42",
        "O-981",
    )
    assert state.alerts[CourierAlertKind.TRANSIT_STALL].message == "courier alert"
    assert state.episodes["signed_not_received"].reasons == ["not_received_reported"]
    assert (state.next_due, state.last_scan_received, state.retired) == (None, 1795248000000, None)

    data = state.to_bytes()
    assert data[0] == STATE_VERSION and len(data) < 0.75 * len(V1_STATE)
    assert WaybillState.from_bytes(data) == state
    assert _v1(state) == V1_STATE  # the test's v1 writer is the v1 layout


def test_the_v1_state_is_what_the_same_facts_give_today() -> None:
    """The v1 blob above came from this scenario: loading it gives today's state exactly."""
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
    assert d.state is not None
    d.state.evicted = ["0123456789abcdef", "fedcba9876543210"]
    assert WaybillState.from_bytes(V1_STATE) == d.state


def test_a_v1_marker_loads_and_stays_small() -> None:
    marker = WaybillState.from_bytes(V1_MARKER)
    assert marker.is_marker and marker.merchant == "shop-42"
    assert marker.retired == (1795280400000, 1796448230391)
    assert marker.next_due == 1812000230391
    data = marker.to_bytes()
    assert len(data) <= len(V1_MARKER)
    assert WaybillState.from_bytes(data) == marker


def test_short_refs_are_16_hex_digits() -> None:
    """The evicted block stores them as 8 bytes (anything else still round-trips, as text)."""
    ref = short_ref("d464cb51c589cb0f7fcb107459e4e038")
    assert len(ref) == 16 and bytes.fromhex(ref).hex() == ref


# -- the v1 layout, written as v1 did ------------------------------------------------------


def _v1(state: WaybillState) -> bytes:
    tail = [list(state.retired)] if state.retired is not None else []
    return orjson.dumps(
        [
            1,
            state.waybill,
            state.courier,
            state.merchant_hint,
            [_v1_scan(r) for r in state.scans],
            state.evicted,
            [
                _trim(
                    [
                        f.t,
                        ORDER_KINDS.index(f.kind),
                        f.ref,
                        f.promise,
                        f.city,
                        f.merchant,
                        f.order_id,
                    ]
                )
                for f in state.orders
            ],
            [
                [ALERT_CODES.index(a.kind), a.reported, a.received, a.code, a.message]
                for a in sorted(state.alerts.values(), key=lambda a: a.kind)
            ],
            {t: e.dump() for t, e in sorted(state.episodes.items())},
            state.next_due,
            state.last_scan_received,
            *tail,
        ]
    )


def _v1_scan(r: ScanRecord) -> list[Any]:
    sign = SIGN_CODES.index(r.sign_type) if r.sign_type is not None else None
    row = [r.t, STATUS_CODES.index(r.status), r.event_id, r.site, r.city, sign, r.code]
    return _trim([*row, r.signer, r.text])


def _trim(row: list[Any]) -> list[Any]:
    while row and row[-1] is None:
        row.pop()
    return row
