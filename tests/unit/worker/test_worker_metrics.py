"""The worker's operational metrics without a broker: the per-partition counts kept in the
state (codec, open/resolved/dropped arithmetic, states created and forgotten), push → anomaly
attribution, consumer lag from librdkafka statistics, the scrape-time gauges, rebalances."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any, NamedTuple

import orjson
import pytest
from prometheus_client import CollectorRegistry, generate_latest

from waybill_watch.domain.state import WaybillState
from waybill_watch.metrics import ANOMALY_TYPES, Metrics
from waybill_watch.models.anomaly import AnomalyEvent
from waybill_watch.settings import Settings
from waybill_watch.worker.outputs import Outputs
from waybill_watch.worker.ports import (
    COUNTS_PREFIX,
    STATE_PREFIX,
    CountingStore,
    KafkaEffects,
    PartitionCounts,
    Tally,
    split_state_value,
)
from waybill_watch.worker.stages import Children, Progress, Ticker, _load_aggregate
from waybill_watch.worker.telemetry import ConsumerLag, hook_rebalances, partition_lag
from waybill_watch.worker.topics import TopicNames

from .pipeline import DictTransaction, Pipeline


class TP(NamedTuple):
    topic: str
    partition: int


class State:
    """A keyed state with open episodes by slot, as the engines keep them."""

    def __init__(self, *slots: str) -> None:
        self.episodes: dict[str, object] = dict.fromkeys(slots, object())

    def to_bytes(self) -> bytes:
        return orjson.dumps(sorted(self.episodes))

    @classmethod
    def from_bytes(cls, raw: bytes) -> State:
        return cls(*orjson.loads(raw))


def _store(tx: DictTransaction, tally: Tally, *, count_states: bool = True) -> CountingStore[Any]:
    return CountingStore(tx, State.to_bytes, State.from_bytes, tally, 3, count_states=count_states)


def _step(store: CountingStore[Any], key: str, *after: str | None) -> None:
    """What the runner does for one key: load it, then save its new state (or delete it)."""
    entry = store.load(key)
    state = entry[1] if entry is not None else State()
    if after == (None,):
        store.delete(key)
        return
    state.episodes = dict.fromkeys(after, object())  # the engines change states in place
    store.save(key, None, state)


def _metric(metrics: Metrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


# -- the per-partition counts ------------------------------------------------------------------


def test_counts_round_trip_and_never_look_like_a_ttl_stamp() -> None:
    counts = PartitionCounts(7, {"delivery_exception": 2, "bulk_signing": 0, "feed_silence": 1})
    raw = counts.to_bytes()
    assert raw[:1] == b"\x01"  # the layout tag (ports._LAYOUT_V1), as state values have
    assert PartitionCounts.from_bytes(raw) == counts
    assert PartitionCounts.from_bytes(raw).episodes == {
        "delivery_exception": 2,
        "feed_silence": 1,
    }
    assert PartitionCounts.from_bytes(PartitionCounts().to_bytes()) == PartitionCounts()


def test_opened_resolved_and_dropped_episodes_and_created_and_deleted_states() -> None:
    tx, tally = DictTransaction(), Tally()
    store = _store(tx, tally)
    _step(store, "A")  # a new waybill, nothing open
    _step(store, "B", "delivery_exception")  # a new waybill whose first push opens one
    _step(store, "A", "transit_stall", "delivery_exception")  # two opened
    _step(store, "A", "transit_stall", "delivery_exception")  # updated: no change
    _step(store, "B")  # resolved
    _step(store, "A", "transit_stall")  # resolved
    assert tally.partitions[3] == PartitionCounts(2, {"transit_stall": 1})
    _step(store, "B", None)  # forgotten
    _step(store, "C", None)  # a key never stored: nothing to forget
    assert tally.partitions[3] == PartitionCounts(1, {"transit_stall": 1})
    # what is kept in the partition's state is what a new owner (or a restart) reads
    assert PartitionCounts.from_bytes(tx.data[(COUNTS_PREFIX, PartitionCounts.KEY)]) == (
        PartitionCounts(1, {"transit_stall": 1})
    )
    again = Tally()
    assert again.of(tx, 3) == PartitionCounts(1, {"transit_stall": 1})
    assert again.states() == 1 and again.episodes() == {"transit_stall": 1}


def test_windows_dropped_without_an_event_are_counted_by_their_type() -> None:
    tx, tally = DictTransaction(), Tally()
    store = _store(tx, tally, count_states=False)  # a site/courier store counts no states
    _step(store, "zto:site", "bulk_signing@1000", "bulk_signing@2000", "site_stall_spike")
    assert tally.episodes() == {"bulk_signing": 2, "site_stall_spike": 1}
    _step(store, "zto:site", "bulk_signing@2000", "site_stall_spike")  # window 1000 dropped
    assert tally.episodes() == {"bulk_signing": 1, "site_stall_spike": 1}
    assert tally.states() == 0


def test_unchanged_counts_are_not_written_again() -> None:
    tx, tally = DictTransaction(), Tally()
    store = _store(tx, tally)
    _step(store, "A", "delivery_exception")
    tx.data.pop((COUNTS_PREFIX, PartitionCounts.KEY))
    _step(store, "A", "delivery_exception")  # updated, same slots: no write
    assert (COUNTS_PREFIX, PartitionCounts.KEY) not in tx.data


def test_a_revoked_partition_is_forgotten_and_counts_below_zero_are_not_reported() -> None:
    tally = Tally()
    tally.partitions[0] = PartitionCounts(2, {"delivery_exception": 1})
    tally.partitions[1] = PartitionCounts(1, {"delivery_exception": -1, "transit_stall": 2})
    assert tally.states() == 3
    assert tally.episodes() == {"delivery_exception": 1, "transit_stall": 2}
    tally.drop(0)
    tally.drop(5)
    assert tally.states() == 1


@pytest.fixture(scope="module")
def capture(tmp_path_factory: pytest.TempPathFactory) -> list[bytes]:
    out: Path = tmp_path_factory.mktemp("capture") / "capture.jsonl"
    command = [sys.executable, "-m", "waybill_watch", "simulate", "--waybills", "520"]
    subprocess.run([*command, "--seed", "23", "--out", str(out)], check=True, capture_output=True)
    return [line for line in out.read_bytes().splitlines() if line.strip()]


def _stored(pipeline: Pipeline, topic: str, load: Any) -> tuple[int, Counter[str]]:
    """States and their open episodes by type, read from every partition's store."""
    states, episodes = 0, Counter[str]()
    for tx in pipeline.stores[topic]:
        for (prefix, _), raw in tx.data.items():
            if prefix != STATE_PREFIX:
                continue
            states += 1
            for slot in load(split_state_value(raw)[1]).episodes:
                episodes[slot.partition("@")[0]] += 1
    return states, episodes


def test_the_counts_match_the_stored_states_and_the_emitted_events(capture: list[bytes]) -> None:
    pipeline = Pipeline(partitions=4, seed=2, chunk=100)
    pipeline.raw(capture, tick_every=50)
    pipeline.drain()
    names = pipeline.names
    waybill_states, waybill_open = _stored(pipeline, names.updates, WaybillState.from_bytes)
    _, aggregate_open = _stored(pipeline, names.signals, _load_aggregate)
    waybills, aggregates = pipeline.waybills.tally, pipeline.aggregates.tally
    assert waybill_states > 0 and waybills.states() == waybill_states
    assert +Counter(waybills.episodes()) == waybill_open
    assert +Counter(aggregates.episodes()) == aggregate_open
    assert sum(waybill_open.values()) > 0
    # opened minus resolved, from the events: the same (bulk_signing windows are dropped
    # without an event: only their stored episodes count)
    events = [orjson.loads(v) for v in pipeline.out[names.anomalies]]
    opened = {e["type"] for e in events if e["status"] == "open"}
    assert {"bulk_signing", "feed_silence", "site_stall_spike"} <= opened  # site and courier
    emitted: Counter[str] = Counter()
    for event in events:
        emitted[event["type"]] += {"open": 1, "resolved": -1}.get(event["status"], 0)
    emitted.pop("bulk_signing", None)
    counted = Counter(waybills.episodes()) + Counter(aggregates.episodes())
    counted.pop("bulk_signing", None)
    assert +emitted == +counted
    # a fresh owner of each partition reads the same counts from the partition's state
    for topic, tally in ((names.updates, waybills), (names.signals, aggregates)):
        fresh = Tally()
        for p, tx in enumerate(pipeline.stores[topic]):
            fresh.of(tx, p)
        assert fresh.states() == tally.states()
        assert fresh.episodes() == tally.episodes()


# -- push → anomaly ----------------------------------------------------------------------------


def _event(status: str) -> AnomalyEvent:
    return AnomalyEvent(
        anomaly_id="a" * 32,
        type="delivery_exception",
        status=status,  # type: ignore[arg-type]
        severity="high",
        scope="waybill",
        subject="W1",
        detected_at=datetime.now(UTC),
    )


def test_only_episodes_an_input_opened_are_timed_from_its_receipt() -> None:
    metrics = Metrics(CollectorRegistry())
    sent: list[str] = []
    outputs = Outputs(lambda t, k, v, h: sent.append(t), metrics, anomalies="an", dlq="dlq")
    effects = KafkaEffects(
        lambda t, k, v, h: None,
        outputs,
        metrics,
        events_topic="ev",
        signals_topic="sig",
        origin=b"x",
        partitions=4,
    )
    count = "waybill_watch_push_to_anomaly_seconds_count"
    received = datetime.now(UTC).timestamp() - 2.0
    effects.begin_input(received)
    effects.loaded()  # a deadline of another key, fired first
    effects.lifecycle("fired")
    effects.anomaly(_event("open"))
    assert _metric(metrics, count, type="delivery_exception") is None
    effects.loaded()  # the input's own key
    effects.anomaly(_event("open"))
    effects.anomaly(_event("updated"))
    effects.anomaly(_event("resolved"))
    assert _metric(metrics, count, type="delivery_exception") == 1
    observed = _metric(
        metrics, "waybill_watch_push_to_anomaly_seconds_sum", type="delivery_exception"
    )
    assert observed is not None and 2.0 <= observed < 10.0
    effects.begin_input(None)  # a tick: deadlines only
    effects.loaded()
    effects.anomaly(_event("open"))
    assert _metric(metrics, count, type="delivery_exception") == 1
    assert sent == ["an"] * 5  # every event written all the same


# -- consumer lag ------------------------------------------------------------------------------


def test_partition_lag_from_librdkafka_statistics() -> None:
    part = {"hi_offset": 120, "ls_offset": 110, "lo_offset": 0, "committed_offset": 90}
    assert partition_lag({**part, "app_offset": 100}) == 10  # up to the last stable offset
    assert partition_lag({**part, "app_offset": -1001}) == 20  # nothing read: the committed
    assert partition_lag({**part, "app_offset": -1001, "committed_offset": -1001}) == 110
    assert partition_lag({**part, "ls_offset": -1, "app_offset": 100}) == 20
    assert partition_lag({**part, "app_offset": 111}) == 0
    assert partition_lag({"hi_offset": -1, "ls_offset": -1, "app_offset": 5}) is None


def test_consumer_lag_series_per_owned_partition_removed_on_revoke() -> None:
    metrics = Metrics(CollectorRegistry())
    lag = ConsumerLag(metrics, ["p.tracking.raw", "p.waybill-watch.updates"])
    lag.assign([TP("p.tracking.raw", 0), TP("p.tracking.raw", 1), TP("p.changelog", 0)])
    lag.assign([TP("p.waybill-watch.updates", 2)])

    def part(app: int) -> dict[str, int]:
        return {"hi_offset": 50, "ls_offset": 50, "app_offset": app, "committed_offset": 0}

    stats = {
        "topics": {
            "p.tracking.raw": {"partitions": {"-1": part(0), "0": part(45), "1": part(50)}},
            "p.waybill-watch.updates": {"partitions": {"2": part(10), "3": part(0)}},
            "p.changelog": {"partitions": {"0": part(0)}},
        }
    }
    lag.on_stats(orjson.dumps(stats).decode())
    name = "waybill_watch_consumer_lag"
    assert _metric(metrics, name, topic="p.tracking.raw", partition="0") == 5
    assert _metric(metrics, name, topic="p.tracking.raw", partition="1") == 0
    assert _metric(metrics, name, topic="p.waybill-watch.updates", partition="2") == 40
    assert _metric(metrics, name, topic="p.waybill-watch.updates", partition="3") is None
    assert _metric(metrics, name, topic="p.tracking.raw", partition="-1") is None
    assert _metric(metrics, name, topic="p.changelog", partition="0") is None
    lag.revoke([TP("p.tracking.raw", 0)])
    lag.on_stats(orjson.dumps(stats).decode())
    assert _metric(metrics, name, topic="p.tracking.raw", partition="0") is None
    assert _metric(metrics, name, topic="p.tracking.raw", partition="1") == 0
    lag.on_stats("not json")  # never raises into the consumer's poll


# -- scrape-time gauges, rebalances ------------------------------------------------------------


def test_clock_lag_grows_with_the_wall_clock_while_the_clock_stalls() -> None:
    metrics = Metrics(CollectorRegistry())
    live = metrics.live
    wall = [1_000.0]
    live.wall = lambda: wall[0]
    assert b"waybill_watch_clock_lag_seconds{" not in generate_latest(metrics.registry)
    live.enabled = True
    live.clocks["0"] = 990_000
    live.open_episodes = lambda: {"transit_stall": 2}
    live.waybill_states = lambda: 5
    live.state_bytes = 4096
    get = metrics.registry.get_sample_value
    assert get("waybill_watch_clock_lag_seconds", {"partition": "0"}) == 10.0
    wall[0] = 1_030.0
    assert get("waybill_watch_clock_lag_seconds", {"partition": "0"}) == 40.0
    assert get("waybill_watch_open_episodes", {"type": "transit_stall"}) == 2
    assert get("waybill_watch_open_episodes", {"type": "bulk_signing"}) == 0
    text = generate_latest(metrics.registry).decode()
    assert text.count("waybill_watch_open_episodes{") == len(ANOMALY_TYPES)
    assert get("waybill_watch_waybill_states") == 5
    assert get("waybill_watch_state_bytes") == 4096


def test_a_revoked_partitions_clock_series_are_removed() -> None:
    metrics = Metrics(CollectorRegistry())
    gauge = Children(metrics.clock_seconds)
    gauge("1").set(5)
    gauge.drop("1")
    gauge.drop("2")
    assert (
        metrics.registry.get_sample_value("waybill_watch_clock_seconds", {"partition": "1"}) is None
    )
    gauge("1").set(6)  # owned again: a new series
    assert metrics.registry.get_sample_value("waybill_watch_clock_seconds", {"partition": "1"}) == 6


def test_rebalances_are_counted_by_event_after_quix_handled_them() -> None:
    metrics = Metrics(CollectorRegistry())
    calls: list[tuple[str, Any]] = []
    app = SimpleNamespace(
        _on_assign=lambda c, tps: calls.append(("quix", "assign")),
        _on_revoke=lambda c, tps: calls.append(("quix", "revoke")),
        _on_lost=lambda c, tps: calls.append(("quix", "lost")),
    )
    hook_rebalances(app, metrics, lambda event, tps: calls.append((event, list(tps))))
    app._on_assign(None, [])  # librdkafka's empty calls
    app._on_assign(None, [TP("t", 0)])
    app._on_revoke(None, [TP("t", 0)])
    app._on_lost(None, [TP("t", 1)])
    assert calls == [
        ("quix", "assign"),
        ("quix", "assign"),
        ("assigned", [TP("t", 0)]),
        ("quix", "revoke"),
        ("revoked", [TP("t", 0)]),
        ("quix", "lost"),
        ("lost", [TP("t", 1)]),
    ]
    for event in ("assigned", "revoked", "lost"):
        assert _metric(metrics, "waybill_watch_rebalances_total", event=event) == 1


def test_the_ticker_reports_the_owned_partitions_of_both_stages() -> None:
    names = TopicNames.from_settings(Settings())
    assignment = [TP(names.updates, 1), TP(names.signals, 0), TP(names.signals, 2)]
    consumer = SimpleNamespace(assignment=lambda: assignment)
    seen: list[tuple[list[int], list[int]]] = []
    ticker = Ticker(
        consumer,
        lambda *a: None,
        None,
        lambda p: None,
        lambda p: None,
        Progress(),
        names,
        Metrics(CollectorRegistry()),
        partitions=4,
        stream=False,
        interval=0.0,
        restored=lambda: True,
        on_tick=lambda w, s: seen.append((w, s)),
    )
    ticker()
    assert seen == [([1], [0, 2])]
