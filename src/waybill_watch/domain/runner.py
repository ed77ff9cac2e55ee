"""The keyed runner: the one place where "advance the clock → fire what is due → apply one input
→ hand out the effects" is written. Replay and the live worker both drive it.

A runner serves one keyed stage (waybills, or sites and couriers) through three ports:

* ``StateStore``: each key's state and its next deadline (the due time is kept beside the state,
  so a deadline popped from a lazy index is checked against the key's current one);
* ``DeadlineIndex``: which keys are due, in ``(due, key)`` order;
* ``Effects``: where anomaly events, new scans and re-keyed signals go, in the order the core
  decided them (per step: anomalies, then scans, then signals; then the state is saved).

The clock is not a port the runner reads: the adapter computes ``now`` (the stream clock, or the
low watermark of its inputs, see ``clock.py``) and passes it in, so a test or replay decides time.
Replay uses the in-memory ports below; the worker binds quix-streams state (``engine/ports.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Generic, Protocol, TypeVar

from waybill_watch.domain.aggregate_state import CourierState, SiteState
from waybill_watch.domain.aggregates import AggregateEngines
from waybill_watch.domain.clock import to_ms
from waybill_watch.domain.engine import WaybillEngine
from waybill_watch.domain.signals import Signal
from waybill_watch.domain.state import WaybillState
from waybill_watch.domain.types import PendingUpdate, Scan, WaybillUpdate
from waybill_watch.models.anomaly import AnomalyEvent
from waybill_watch.models.order import OrderEvent

S = TypeVar("S")
S_co = TypeVar("S_co", covariant=True)
I_contra = TypeVar("I_contra", contravariant=True)


class Step(Protocol[S_co]):
    """What one engine call returns (``Outcome`` and ``AggOutcome`` both are one)."""

    @property
    def state(self) -> S_co: ...
    @property
    def anomalies(self) -> list[AnomalyEvent]: ...
    @property
    def new_scans(self) -> list[Scan]: ...
    @property
    def signals(self) -> list[Signal]: ...
    @property
    def next_due_ms(self) -> int | None: ...
    @property
    def retired(self) -> bool: ...
    @property
    def forget(self) -> bool: ...


class StateStore(Protocol[S]):
    """Each key's state with its next due time (epoch ms)."""

    def load(self, key: str) -> tuple[int | None, S] | None:
        """``(due_ms, state)`` of ``key``, or None for a key never seen (or forgotten)."""
        ...

    def due_ms(self, key: str) -> int | None:
        """``key``'s due time without decoding its state (None: none, or no such key)."""
        ...

    def save(self, key: str, due_ms: int | None, state: S) -> None:
        """Store ``key``'s state and due time."""
        ...

    def delete(self, key: str) -> None:
        """Forget ``key``."""
        ...


class DeadlineIndex(Protocol):
    """Keys by due time. Lazy implementations may return stale keys: the runner checks."""

    def schedule_ms(self, key: str, ms: int | None) -> None:
        """Set ``key``'s due time (None: nothing due)."""
        ...

    def pop_due_ms(self, limit: int) -> list[str]:
        """Remove and return the keys due at or before ``limit``, by (due, key)."""
        ...


class Effects(Protocol):
    """Where a runner's decisions go (Kafka topics in the worker, lists or engines in replay)."""

    def anomaly(self, event: AnomalyEvent) -> None:
        """An anomaly event, in emission order."""
        ...

    def scans(self, key: str, scans: list[Scan]) -> None:
        """Scans of ``key`` seen for the first time (to forward on ``tracking.events``)."""
        ...

    def signal(self, signal: Signal, now: datetime) -> None:
        """A fact for the site/courier stage, with the clock it was decided at."""
        ...

    def lifecycle(self, event: str) -> None:
        """``fired``, ``retired`` or ``forgotten`` (counters)."""
        ...


class Handler(Protocol[S, I_contra]):
    """The engine calls of one stage, in the runner's terms."""

    def on_input(self, state: S | None, item: I_contra, now: datetime) -> Step[S]: ...
    def on_due(self, state: S, now: datetime) -> Step[S]: ...


@dataclass(slots=True)
class Ports(Generic[S]):
    """The three ports of one runner (for the worker: of one partition, in one checkpoint)."""

    store: StateStore[S]
    index: DeadlineIndex
    effects: Effects


class KeyedRunner(Generic[S, I_contra]):
    """Drives one stage's engine: clock, deadlines, one input, effects."""

    def __init__(self, handler: Handler[S, I_contra]) -> None:
        self.handler = handler

    def advance(self, ports: Ports[S], now: datetime) -> int:
        """Fire every deadline due at or before ``now`` by (due, key); return how many fired."""
        index, store = ports.index, ports.store
        limit, fired = to_ms(now), 0
        while keys := index.pop_due_ms(limit):
            for key in keys:
                due = store.due_ms(key)
                if due is None or due > limit:
                    continue  # stale: forgotten or re-scheduled since (lazy index)
                entry = store.load(key)
                if entry is None:
                    continue
                fired += 1
                ports.effects.lifecycle("fired")
                self._commit(ports, key, self.handler.on_due(entry[1], now), now)
        return fired

    def apply(
        self,
        ports: Ports[S],
        key: str,
        item: I_contra,
        now: datetime,
        *,
        clock: datetime | None = None,
    ) -> Step[S]:
        """Advance to ``clock`` (default ``now``), then apply one input of ``key`` at ``now``
        (the engine fires the key's own passed deadline first); return the engine's step."""
        self.advance(ports, now if clock is None else clock)
        entry = ports.store.load(key)
        step = self.handler.on_input(entry[1] if entry is not None else None, item, now)
        self._commit(ports, key, step, now)
        return step

    @staticmethod
    def _commit(ports: Ports[S], key: str, step: Step[S], now: datetime) -> None:
        """Effects in one fixed order, then the state and its deadline."""
        effects = ports.effects
        for event in step.anomalies:
            effects.anomaly(event)
        if step.new_scans:
            effects.scans(key, step.new_scans)
        for signal in step.signals:
            effects.signal(signal, now)
        if step.forget:
            effects.lifecycle("forgotten")
            ports.store.delete(key)
            ports.index.schedule_ms(key, None)
            return
        if step.retired:
            effects.lifecycle("retired")
        ports.store.save(key, step.next_due_ms, step.state)
        ports.index.schedule_ms(key, step.next_due_ms)


# -- the two stages --------------------------------------------------------------------------

WaybillInput = WaybillUpdate | PendingUpdate | OrderEvent


class WaybillHandler:
    """Waybill stage: updates (pushes, canonical scans) and merchant order events.

    A ``PendingUpdate`` is realised against the state just loaded, so only the scans the
    waybill lacks are built (``DraftError`` propagates: nothing of this input is applied)."""

    def __init__(self, engine: WaybillEngine) -> None:
        self.engine = engine

    def on_input(
        self, state: WaybillState | None, item: WaybillInput, now: datetime
    ) -> Step[WaybillState]:
        if isinstance(item, PendingUpdate):
            item = item.realise(state.known_ids() if state is not None else None)
        if isinstance(item, WaybillUpdate):
            return self.engine.on_update(state, item, now)
        return self.engine.on_order(state, item, now)

    def on_due(self, state: WaybillState, now: datetime) -> Step[WaybillState]:
        return self.engine.on_due(state, now)


AggregateState = SiteState | CourierState


class AggregateHandler:
    """Site and courier stage: re-keyed signals (one store for both, keyed by ``signal.key``)."""

    def __init__(self, engines: AggregateEngines) -> None:
        self.engines = engines

    def on_input(
        self, state: AggregateState | None, item: Signal, now: datetime
    ) -> Step[AggregateState]:
        return self.engines.on_signal(state, item, now)

    def on_due(self, state: AggregateState, now: datetime) -> Step[AggregateState]:
        return self.engines.on_due(state, now)


WaybillRunner = KeyedRunner[WaybillState, WaybillInput]
AggregateRunner = KeyedRunner[AggregateState, Signal]


# -- in-memory ports (replay, unit tests) ----------------------------------------------------


class InMemoryStore(Generic[S]):
    """A dict of ``(due, state)``; with ``codec`` it keeps bytes, exactly as the worker does."""

    def __init__(
        self, codec: tuple[Callable[[S], bytes], Callable[[bytes], S]] | None = None
    ) -> None:
        self.entries: dict[str, tuple[int | None, S | bytes]] = {}
        self.codec = codec

    def __len__(self) -> int:
        return len(self.entries)

    def load(self, key: str) -> tuple[int | None, S] | None:
        entry = self.entries.get(key)
        if entry is None:
            return None
        due, state = entry
        if self.codec is not None and isinstance(state, bytes):
            return due, self.codec[1](state)
        return entry  # type: ignore[return-value]

    def due_ms(self, key: str) -> int | None:
        entry = self.entries.get(key)
        return None if entry is None else entry[0]

    def save(self, key: str, due_ms: int | None, state: S) -> None:
        self.entries[key] = (due_ms, self.codec[0](state) if self.codec is not None else state)

    def delete(self, key: str) -> None:
        self.entries.pop(key, None)

    def stored_keys(self) -> list[str]:
        """Every stored key (inspection)."""
        return list(self.entries)
