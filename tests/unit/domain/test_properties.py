"""Order independence and idempotence, as properties over generated scan histories.

What the contract lets us promise (a later fact never retracts an ``open``):

* any arrival order, duplication and split into pushes of the same scans gives the same final
  facts and the same final set of open episodes ``(type, anomaly_id)``, with the same state
  bytes — except ``suspicious_signature``, whose ``no_delivery_scan`` is judged on the scans
  present when the signing scan is seen (a late earlier hand-over scan cannot retract it);
* when pushes are whole-trace snapshots (Kdniao re-sends the full trace), that holds for every
  type, ``suspicious_signature`` included;
* duplicated pushes alone change nothing: the same events, byte for byte, and the same state.

Generated histories keep each push's clock before any deadline (all scans within 20 h, pushes
at +21 h), then one tick at +100 h fires the deadlines on the final facts.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from waybill_watch import jsonio
from waybill_watch.domain.config import DetectionSettings
from waybill_watch.domain.engine import WaybillEngine
from waybill_watch.domain.records import RANK
from waybill_watch.domain.state import WaybillState
from waybill_watch.domain.types import Scan

from .helpers import at, push, scan

STATUSES = (
    "picked_up",
    "in_transit",
    "in_transit",
    "out_for_delivery",
    "available_for_pickup",
    "delivered",
    "failed_attempt",
    "exception",
    "rejected",
    "returning",
    "returned",
)
SIGN = ("recipient", "proxy", "locker", None)
ENGINE = WaybillEngine(DetectionSettings())
PUSH_AT = at(21)
TICK_AT = at(100)
LOOSE = frozenset({"suspicious_signature"})


@st.composite
def histories(draw: st.DrawFn, loop_free: bool = True) -> list[Scan]:
    """Distinct scans within 20 hours; sites follow event time when ``loop_free``."""
    specs = draw(
        st.lists(
            st.tuples(
                st.sampled_from(STATUSES),
                st.integers(min_value=0, max_value=20 * 6),  # 10-minute steps
                st.sampled_from(SIGN),
                st.sampled_from(("A", "B", "C")),
            ),
            min_size=1,
            max_size=14,
        )
    )
    out: dict[str, Scan] = {}
    for status, step, sign, site in specs:
        when = at(0, 10 * step)
        place = "ABC"[min(step // 42, 2)] if loop_free else site
        record = scan(
            status,
            when,
            site=place,
            city="杭州" if step % 3 else "宁波",
            sign_type=sign if status == "delivered" else None,
        )
        out[record.event_id] = record
    return list(out.values())


@st.composite
def arrivals(draw: st.DrawFn, scans: list[Scan]) -> list[list[Scan]]:
    """The scans in any order, some repeated, cut into pushes."""
    order = draw(st.permutations(scans))
    repeats = draw(st.lists(st.sampled_from(scans), max_size=len(scans)))
    stream = list(order)
    for extra in repeats:
        stream.insert(draw(st.integers(0, len(stream))), extra)
    pushes: list[list[Scan]] = []
    while stream:
        size = draw(st.integers(1, max(1, len(stream))))
        pushes.append(stream[:size])
        stream = stream[size:]
    return pushes


def run(pushes: list[list[Scan]], tick: bool = True) -> tuple[WaybillState, list[Any]]:
    state: WaybillState | None = None
    events: list[Any] = []
    for scans in pushes:
        out = ENGINE.on_update(state, push(*scans, received=PUSH_AT), PUSH_AT)
        state = out.state
        events += out.anomalies
    assert state is not None
    if tick:
        out = ENGINE.on_due(state, TICK_AT)
        state, events = out.state, events + out.anomalies
    return state, events


def open_set(events: list[Any], skip: frozenset[str] = frozenset()) -> set[tuple[str, str]]:
    opened: set[tuple[str, str]] = set()
    for e in events:
        if e.type in skip:
            continue
        if e.status == "open":
            assert (e.type, e.anomaly_id) not in opened, "an id was opened twice"
            opened.add((e.type, e.anomaly_id))
        elif e.status == "resolved":
            opened.discard((e.type, e.anomaly_id))
    return opened


def without(state: WaybillState, skip: frozenset[str]) -> bytes:
    copy = WaybillState.from_bytes(state.to_bytes())
    for anomaly_type in skip:
        copy.episodes.pop(anomaly_type, None)
    return copy.to_bytes()


def sorted_trace(scans: list[Scan]) -> list[Scan]:
    """A courier's trace: in event time, equal times in lifecycle order (out for delivery
    before delivered), as the state keeps them; a cut of it is a snapshot a courier sends."""
    return sorted(scans, key=lambda s: (s.event_time, RANK[s.status], s.event_id))


@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_any_arrival_order_gives_the_same_facts_and_open_episodes(data: st.DataObject) -> None:
    scans = data.draw(histories())
    reference_state, reference_events = run([sorted_trace(scans)])
    state, events = run(data.draw(arrivals(scans)))

    assert state.scans == reference_state.scans
    assert open_set(events, LOOSE) == open_set(reference_events, LOOSE)
    if LOOSE.isdisjoint(state.episodes) and LOOSE.isdisjoint(reference_state.episodes):
        assert state.to_bytes() == reference_state.to_bytes()
    else:
        # an open episode holds back retirement, so only one side may have that deadline
        left = WaybillState.from_bytes(without(state, LOOSE))
        right = WaybillState.from_bytes(without(reference_state, LOOSE))
        left.next_due = right.next_due = None
        assert left.to_bytes() == right.to_bytes()


@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_whole_trace_snapshots_in_any_order_agree_on_every_type(data: st.DataObject) -> None:
    scans = sorted_trace(data.draw(histories()))
    cuts = data.draw(st.lists(st.integers(1, len(scans)), min_size=1, max_size=6))
    snapshots = [scans[:cut] for cut in cuts] + [scans]
    order = data.draw(st.permutations(snapshots))
    reference_state, reference_events = run([scans])
    state, events = run(list(order))

    assert open_set(events) == open_set(reference_events)
    assert state.to_bytes() == reference_state.to_bytes()


@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_duplicated_pushes_change_nothing(data: st.DataObject) -> None:
    scans = data.draw(histories())
    pushes = data.draw(arrivals(scans))
    replayed = list(pushes)
    for _ in range(data.draw(st.integers(0, 4))):
        index = data.draw(st.integers(0, len(replayed) - 1))
        replayed.insert(data.draw(st.integers(index + 1, len(replayed))), replayed[index])

    state, events = run(pushes)
    again_state, again_events = run(replayed)
    assert [jsonio.dumps(e) for e in again_events] == [jsonio.dumps(e) for e in events]
    assert again_state.to_bytes() == state.to_bytes()


@settings(max_examples=100, deadline=None)
@given(data=st.data())
def test_site_loops_are_found_whatever_the_arrival_order(data: st.DataObject) -> None:
    scans = [s for s in data.draw(histories(loop_free=False)) if s.status == "in_transit"]
    if not scans:
        return
    _, reference_events = run([sorted_trace(scans)])
    _, events = run(data.draw(arrivals(scans)))
    assert open_set(events) == open_set(reference_events)
