"""Episode lifecycle: one open per (type, subject), stable ids across re-processing."""

from __future__ import annotations

from typing import Any

from waybill_watch import jsonio
from waybill_watch.domain.config import DetectionSettings
from waybill_watch.domain.engine import WaybillEngine
from waybill_watch.domain.episodes import Desired, Verdict, reconcile
from waybill_watch.domain.state import Episode, WaybillState

from .helpers import at, order, push, scan

SCRIPT: list[tuple[str, Any, Any]] = [
    ("order", order("shipped", at(-1), promise=at(60), city="杭州市"), at(-1)),
    ("update", push(scan("picked_up", at(0), site="上海")), at(0)),
    ("update", push(scan("in_transit", at(2), site="杭州")), at(2)),
    ("due", None, at(50)),
    ("update", push(scan("failed_attempt", at(51), site="杭州", code="405")), at(51)),
    ("update", push(scan("exception", at(52), site="杭州", code="413")), at(52)),
    ("due", None, at(61)),
    ("update", push(scan("out_for_delivery", at(70)), scan("delivered", at(71))), at(71)),
    ("order", order("not_received_reported", at(80)), at(80)),
    ("order", order("receipt_confirmed", at(90)), at(90)),
]


def play(steps: list[tuple[str, Any, Any]], state: WaybillState | None = None) -> tuple[Any, ...]:
    engine = WaybillEngine(DetectionSettings())
    events: list[Any] = []
    for kind, item, now in steps:
        if kind == "order":
            out = engine.on_order(state, item, now)
        elif kind == "update":
            out = engine.on_update(state, item, now)
        else:
            assert state is not None
            out = engine.on_due(state, now)
        state = out.state
        events += out.anomalies
    return state, events


def test_script_exercises_the_whole_lifecycle() -> None:
    _, events = play(SCRIPT)
    assert [(e.type, e.status) for e in events] == [
        ("transit_stall", "open"),
        ("delivery_exception", "open"),
        ("transit_stall", "resolved"),
        ("delivery_exception", "updated"),
        ("delivery_overdue", "open"),
        ("delivery_exception", "resolved"),
        ("delivery_overdue", "resolved"),
        ("signed_not_received", "open"),
        ("signed_not_received", "resolved"),
    ]


def test_replaying_the_same_input_gives_byte_identical_events() -> None:
    _, first = play(SCRIPT)
    _, second = play(SCRIPT)
    assert [jsonio.dumps(e) for e in first] == [jsonio.dumps(e) for e in second]


def test_restart_from_an_older_snapshot_reuses_the_same_ids() -> None:
    """The state commit after step k was lost: steps k.. are processed again."""
    _, reference = play(SCRIPT)
    reference_ids = {(e.type, e.anomaly_id) for e in reference}
    for k in range(1, len(SCRIPT)):
        snapshot, before = play(SCRIPT[:k])
        restored = WaybillState.from_bytes(snapshot.to_bytes())
        _, after = play(SCRIPT[k - 1 :], restored)  # step k-1 is processed twice
        ids = {(e.type, e.anomaly_id) for e in before + after}
        assert ids == reference_ids, k


def test_at_most_one_open_episode_per_type_and_a_new_id_after_resolution() -> None:
    episodes: dict[str, Episode] = {}
    reasons = ("a", "b")

    def desired(key: str, *rs: str, support: int = 1) -> Verdict:
        return Verdict(desired=Desired(key, rs, support, dict))

    def step(verdict: Verdict, now: int) -> list[tuple[str, str, list[str]]]:
        return [
            (t.status, t.episode.key, list(t.episode.reasons))
            for t in reconcile(episodes, "t", reasons, verdict, now)
        ]

    assert step(desired("k1", "a"), 1) == [("open", "k1", ["a"])]
    assert step(desired("k1", "a"), 2) == []
    assert step(desired("k2", "b"), 3) == [("updated", "k1", ["a", "b"])]  # new trigger
    assert step(desired("k2", "b", support=2), 4) == [("updated", "k1", ["a", "b"])]
    assert step(Verdict(resolved_by=dict), 5) == [("resolved", "k1", ["a", "b"])]
    assert step(desired("k3", "a"), 6) == [("open", "k3", ["a"])]
    assert episodes["t"].opened == 6
