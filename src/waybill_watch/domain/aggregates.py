"""Site and courier engines: the aggregate detectors, fed by ``Signal``s.

Same style as ``WaybillEngine``: state in (``None`` for a new key), state and events out, plus
the key's next deadline for the deadline index. Also the same episode handling: every detector
answers a ``Verdict`` (the ones a signal concerns fold it into the state first, the others read
the state by the clock), ``episodes.reconcile`` turns it into transitions on ``state.episodes``
and ``_AggregateEngine._event`` builds the events of both scopes; the next deadline is the
earliest ``Verdict.due``.

``SiteEngine`` (key ``courier:site``, state ``SiteState``): ``bulk_signing``, ``site_stall_spike``.
  * ``on_signal(state, signal, now)`` for ``recipient_signed``/``stall_opened``/``stall_resolved``
  * ``on_due(state, now)``: drops expired signing windows.
``CourierEngine`` (key courier, state ``CourierState``): ``feed_silence``.
  * ``on_signal(state, signal, now)`` for ``update_received``
  * ``on_update_received(state, courier, received_at, now)``: the same without a Signal object
  * ``on_due(state, now)``: opens ``feed_silence`` when the quiet period has passed.
``AggregateEngines``: both behind one object for an adapter that keeps site and courier states
in one table keyed by ``signal.key``: ``on_signal``/``on_due`` dispatch on the signal kind or
the state's type, ``load`` reads either state from bytes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from typing import Generic, TypeVar

from waybill_watch.domain.aggregate_state import CourierState, SiteState, load_aggregate
from waybill_watch.domain.clock import from_ms, to_ms
from waybill_watch.domain.config import DetectionSettings
from waybill_watch.domain.detectors import (
    AggregateDetector,
    build_courier_detectors,
    build_site_detectors,
)
from waybill_watch.domain.episodes import Subject, Transition, make_event, reconcile
from waybill_watch.domain.signals import Signal, SignalKind
from waybill_watch.domain.types import Scan
from waybill_watch.models.anomaly import AnomalyEvent
from waybill_watch.timefmt import zone

S = TypeVar("S", SiteState, CourierState)


@dataclass(slots=True)
class AggOutcome(Generic[S]):
    """What one aggregate engine call produced; the next deadline as epoch ms and datetime."""

    state: S
    anomalies: list[AnomalyEvent] = field(default_factory=list)
    next_due_ms: int | None = None
    tz: tzinfo = UTC
    #: Always empty / False: aggregates forward no scans, emit no signals and are never
    #: retired; present so both outcomes are one ``runner.Step``.
    new_scans: list[Scan] = field(default_factory=list)
    signals: list[Signal] = field(default_factory=list)
    retired: bool = False
    forget: bool = False

    @property
    def next_due(self) -> datetime | None:
        """The key's next deadline (shown in the local zone), None when it has none."""
        return from_ms(self.next_due_ms, self.tz) if self.next_due_ms is not None else None


class _AggregateEngine(Generic[S]):
    def __init__(self, settings: DetectionSettings, detectors: list[AggregateDetector[S]]) -> None:
        self.settings = settings
        self.detectors: list[AggregateDetector[S]] = detectors
        self.tz = zone(settings.local_timezone)

    def subject(self, state: S) -> Subject:
        """Who this key's anomalies are about."""
        raise NotImplementedError

    def on_due(self, state: S, now: datetime) -> AggOutcome[S]:
        """Fire every deadline ``<= now`` of this key."""
        return self._run(state, None, now)

    def _run(self, state: S, signal: Signal | None, now: datetime) -> AggOutcome[S]:
        """Every detector's verdict (on ``signal``, or by the clock alone), reconciled in order."""
        out = AggOutcome(state, tz=self.tz)
        now_ms, earliest = to_ms(now), None
        for detector in self.detectors:
            if signal is not None and signal.kind in detector.kinds:
                verdict = detector.on_signal(state, signal, now_ms)
            else:
                verdict = detector.on_due(state, now_ms)
            due = verdict.due
            if due is not None and (earliest is None or due < earliest):
                earliest = due
            if verdict.desired is None and verdict.resolved_by is None:
                continue
            for step in reconcile(state.episodes, detector.type, detector.reasons, verdict, now_ms):
                out.anomalies.append(self._event(detector, step, state, now))
        out.next_due_ms = earliest
        return out

    def _event(
        self, detector: AggregateDetector[S], step: Transition, state: S, now: datetime
    ) -> AnomalyEvent:
        episode = step.episode
        return make_event(
            detector.type,
            step.status,
            self.subject(state),
            episode.key,
            episode.reasons,
            now,
            step.evidence(),
        )


class SiteEngine(_AggregateEngine[SiteState]):
    """``courier:site`` scope: ``bulk_signing`` and ``site_stall_spike``."""

    def __init__(self, settings: DetectionSettings) -> None:
        super().__init__(settings, build_site_detectors(settings))

    def subject(self, state: SiteState) -> Subject:
        return Subject(state.subject, courier=state.courier)

    def on_signal(
        self, state: SiteState | None, signal: Signal, now: datetime
    ) -> AggOutcome[SiteState]:
        """Take one site signal (routed by ``signal.key``)."""
        if state is None:
            state = SiteState(signal.key, signal.courier, signal.site or "")
        return self._run(state, signal, now)


class CourierEngine(_AggregateEngine[CourierState]):
    """Courier scope: ``feed_silence``."""

    def __init__(self, settings: DetectionSettings) -> None:
        super().__init__(settings, build_courier_detectors(settings))

    def subject(self, state: CourierState) -> Subject:
        return Subject(state.courier, courier=state.courier)

    def on_signal(
        self, state: CourierState | None, signal: Signal, now: datetime
    ) -> AggOutcome[CourierState]:
        """Take one ``update_received`` signal (routed by ``signal.key`` = courier)."""
        if state is None:
            state = CourierState(signal.courier)
        return self._run(state, signal, now)

    def on_update_received(
        self, state: CourierState | None, courier: str, received_at: datetime, now: datetime
    ) -> AggOutcome[CourierState]:
        """Count one waybill update of ``courier`` received at ``received_at``."""
        signal = Signal(SignalKind.UPDATE_RECEIVED, key=courier, courier=courier, at=received_at)
        return self.on_signal(state, signal, now)


AggregateState = SiteState | CourierState


class AggregateEngines:
    """``SiteEngine`` and ``CourierEngine`` behind one object, dispatching by signal kind."""

    def __init__(self, settings: DetectionSettings) -> None:
        self.site = SiteEngine(settings)
        self.courier = CourierEngine(settings)

    def on_signal(
        self, state: AggregateState | None, signal: Signal, now: datetime
    ) -> AggOutcome[SiteState] | AggOutcome[CourierState]:
        """Route one signal to the engine of its kind (``state`` must be of that kind)."""
        if signal.for_site:
            site_state = state if isinstance(state, SiteState) else None
            return self.site.on_signal(site_state, signal, now)
        courier_state = state if isinstance(state, CourierState) else None
        return self.courier.on_signal(courier_state, signal, now)

    def on_due(
        self, state: AggregateState, now: datetime
    ) -> AggOutcome[SiteState] | AggOutcome[CourierState]:
        """Fire the deadlines ``<= now`` of one site or courier."""
        if isinstance(state, SiteState):
            return self.site.on_due(state, now)
        return self.courier.on_due(state, now)

    @staticmethod
    def load(data: bytes | bytearray | memoryview | str) -> AggregateState:
        """Read a stored site or courier state."""
        return load_aggregate(data)
