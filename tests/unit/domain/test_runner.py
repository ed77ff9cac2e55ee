"""KeyedRunner: one order of advance → fire → apply → effects, on the in-memory ports."""

from __future__ import annotations

from datetime import datetime

from waybill_watch.domain.aggregates import AggregateEngines
from waybill_watch.domain.config import DetectionSettings
from waybill_watch.domain.deadlines import InMemoryDeadlineIndex
from waybill_watch.domain.engine import WaybillEngine
from waybill_watch.domain.runner import (
    AggregateHandler,
    AggregateRunner,
    AggregateState,
    InMemoryStore,
    Ports,
    WaybillHandler,
    WaybillRunner,
)
from waybill_watch.domain.signals import Signal, SignalKind
from waybill_watch.domain.state import WaybillState
from waybill_watch.domain.types import Scan
from waybill_watch.models.anomaly import AnomalyEvent

from .helpers import at, push, scan


class Recorder:
    """An ``Effects`` port that keeps everything in one ordered list."""

    def __init__(self) -> None:
        self.log: list[tuple[str, object]] = []

    def anomaly(self, event: AnomalyEvent) -> None:
        self.log.append(("anomaly", (event.type, event.status)))

    def scans(self, key: str, scans: list[Scan]) -> None:
        self.log.append(("scans", (key, len(scans))))

    def signal(self, signal: Signal, now: datetime) -> None:
        self.log.append(("signal", (str(signal.kind), signal.key)))

    def lifecycle(self, event: str) -> None:
        self.log.append(("lifecycle", event))


def waybill_runner(
    codec: bool = False,
) -> tuple[WaybillRunner, Ports[WaybillState], Recorder, InMemoryStore[WaybillState]]:
    store: InMemoryStore[WaybillState] = InMemoryStore(
        (WaybillState.to_bytes, WaybillState.from_bytes) if codec else None
    )
    effects = Recorder()
    runner = WaybillRunner(WaybillHandler(WaybillEngine(DetectionSettings())))
    return runner, Ports(store, InMemoryDeadlineIndex(), effects), effects, store


def test_effects_come_in_one_order_and_state_is_saved_with_its_deadline() -> None:
    runner, ports, effects, store = waybill_runner()
    update = push(scan("failed_attempt", at(0), site="西湖站"), received=at(0))
    runner.apply(ports, update.waybill, update, at(0))
    kinds = [kind for kind, _ in effects.log]
    # anomalies first, then the new scans, then the signals (the update_received one)
    assert kinds == ["anomaly", "scans", "signal"]
    assert effects.log[0][1] == ("delivery_exception", "open")
    entry = store.load(update.waybill)
    assert entry is not None and entry[1].waybill == update.waybill
    assert entry[0] == entry[1].next_due  # the due time is stored beside the state


def test_a_deadline_fires_before_the_input_that_passes_it() -> None:
    runner, ports, effects, _ = waybill_runner(codec=True)
    first = push(scan("in_transit", at(0), site="杭州转运中心"), received=at(0))
    runner.apply(ports, first.waybill, first, at(0))
    effects.log.clear()
    later = push(scan("in_transit", at(50), site="上海转运中心"), received=at(50))
    runner.apply(ports, later.waybill, later, at(50))
    anomalies = [value for kind, value in effects.log if kind == "anomaly"]
    # the 48 h stall fired on the facts received by then, and the new scan resolved it
    assert anomalies == [("transit_stall", "open"), ("transit_stall", "resolved")]
    assert ("lifecycle", "fired") in effects.log
    assert effects.log.index(("lifecycle", "fired")) < effects.log.index(
        ("anomaly", ("transit_stall", "resolved"))
    )


def test_a_stale_index_entry_fires_nothing() -> None:
    runner, ports, effects, store = waybill_runner()
    update = push(scan("in_transit", at(0), site="杭州转运中心"), received=at(0))
    runner.apply(ports, update.waybill, update, at(0))
    store.delete(update.waybill)  # forgotten behind the index's back
    effects.log.clear()
    assert runner.advance(ports, at(100)) == 0
    assert effects.log == []


def test_aggregate_runner_fires_feed_silence_by_the_clock() -> None:
    settings = DetectionSettings()
    store: InMemoryStore[AggregateState] = InMemoryStore()
    effects = Recorder()
    ports = Ports(store, InMemoryDeadlineIndex(), effects)
    runner = AggregateRunner(AggregateHandler(AggregateEngines(settings)))
    for minute in range(61):
        when = at(minutes=minute)
        signal = Signal(SignalKind.UPDATE_RECEIVED, "YTO", "YTO", when)
        runner.apply(ports, "YTO", signal, when)
    assert not [v for k, v in effects.log if k == "anomaly"]
    runner.advance(ports, at(minutes=60 + 31))
    assert [v for k, v in effects.log if k == "anomaly"] == [("feed_silence", "open")]
