"""The per-waybill engine: the one entry point the Faust adapter and replay both call.

Every call takes the waybill's state (``None`` for a waybill never seen), one input and the
clock's ``now``, and returns an ``Outcome``: the new state, the anomaly events in emission
order, the scans not seen before (to forward to ``tracking.events``), the signals for the site
and courier engines, and the waybill's next deadline (to put in the deadline index).

* ``on_update(state, update, now)``: one push's scans and courier alerts;
* ``on_order(state, order, now)``: one merchant order event;
* ``on_due(state, now)``: the clock passed the waybill's deadline.

Retirement keeps the table from growing with every waybill ever seen: when a waybill has no
open episode and no detector deadline, its next deadline is ``waybill_retention_days`` after
its latest fact arrived; if that passes with nothing new, ``on_due`` replaces the state with a
marker (``WaybillState.retire``: identity and the event-time horizon, ~100 bytes), and
``retired_marker_days`` later sets ``Outcome.forget``: the adapter deletes the key.

Before applying a new fact, any deadline already passed (``next_due <= now``) fires on the
facts received before it, so the outcome does not depend on when the adapter's tick ran.
Facts are applied idempotently (duplicates by ``event_id`` / order content are absorbed) and
every detector then re-reads the event-time-sorted facts, never the arrival order.

Facts that arrive together are seen one at a time by the event-triggered detectors
(``EventDetector``, contract §6): when a push brings several new scans, each such detector is
evaluated after each new scan in event-time order, on the facts known before the push plus the
push's scans up to that one, so a trigger and its resolution in one push still emit ``open``
then ``resolved``. The last of those evaluations is the usual one on every fact, where the
deadline detectors run too: a deadline fires on all the facts received by the clock. A detector
whose ``may_emit_early`` says the intermediate evaluations cannot emit skips them, so a push
whose new scans cannot trigger anything costs one evaluation, as a single new scan does.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from typing import Any

from waybill_watch.domain.clock import from_ms, to_ms
from waybill_watch.domain.config import DetectionSettings
from waybill_watch.domain.detectors import (
    EventDetector,
    WaybillDetector,
    build_waybill_detectors,
)
from waybill_watch.domain.detectors.base import Detector
from waybill_watch.domain.episodes import (
    Subject,
    Transition,
    Verdict,
    ladder,
    make_event,
    reconcile,
)
from waybill_watch.domain.signals import Signal, SignalKind, site_key
from waybill_watch.domain.state import ScanRecord, WaybillState
from waybill_watch.domain.types import Scan, SignType, Status, WaybillUpdate
from waybill_watch.models.anomaly import AnomalyEvent
from waybill_watch.models.order import OrderEvent
from waybill_watch.timefmt import format_rfc3339, zone

# Enum members as module constants: member lookup on an enum class is slow in CPython 3.11.
_DELIVERED = Status.DELIVERED
_RECIPIENT = SignType.RECIPIENT
_RECIPIENT_SIGNED = SignalKind.RECIPIENT_SIGNED
_STALL_OPENED = SignalKind.STALL_OPENED
_STALL_RESOLVED = SignalKind.STALL_RESOLVED
_UPDATE_RECEIVED = SignalKind.UPDATE_RECEIVED

STALL = "transit_stall"


@dataclass(slots=True)
class Outcome:
    """What one engine call produced; the next deadline as epoch ms and as a datetime."""

    state: WaybillState
    anomalies: list[AnomalyEvent] = field(default_factory=list)
    new_scans: list[Scan] = field(default_factory=list)
    signals: list[Signal] = field(default_factory=list)
    next_due_ms: int | None = None
    tz: tzinfo = UTC
    retired: bool = False  # ``state`` is the marker that replaced a quiet waybill's state
    forget: bool = False  # delete the waybill's key: its marker has expired

    @property
    def next_due(self) -> datetime | None:
        """The waybill's next deadline (shown in the local zone), None when it has none."""
        return from_ms(self.next_due_ms, self.tz) if self.next_due_ms is not None else None


class WaybillEngine:
    """Runs the registered waybill detectors over one waybill's state."""

    def __init__(self, settings: DetectionSettings) -> None:
        self.settings = settings
        self._evidence = Detector(settings)  # evidence formatting in the local zone
        self.detectors: list[WaybillDetector] = build_waybill_detectors(settings)
        self.stepwise: list[EventDetector] = [
            d for d in self.detectors if isinstance(d, EventDetector)
        ]
        self.tz = zone(settings.local_timezone)
        self.retention_ms = _days_ms(settings.waybill_retention_days)
        self.marker_ms = _days_ms(settings.retired_marker_days)

    def on_update(
        self, state: WaybillState | None, update: WaybillUpdate, now: datetime
    ) -> Outcome:
        """Apply one push (scans and alerts) for one waybill."""
        if state is None:
            state = WaybillState(update.waybill, update.courier)
        elif state.courier is None:
            state.courier = update.courier
        if update.merchant and state.merchant_hint is None:
            state.merchant_hint = update.merchant
        out = Outcome(state)
        now_ms = to_ms(now)
        self._fire_passed(out, now, now_ms)
        out.signals.append(
            Signal(
                _UPDATE_RECEIVED,
                key=update.courier,
                courier=update.courier,
                at=update.received_at,
                waybill=update.waybill,
            )
        )
        fresh = state.add_scans(update.scans)
        if len(fresh) > 1 and self.stepwise:
            self._step(out, [record for record, _ in fresh], now, now_ms)
        for record, scan in fresh:
            out.new_scans.append(scan)
            if record.status is _DELIVERED and record.sign_type is _RECIPIENT and record.site:
                out.signals.append(
                    Signal(
                        _RECIPIENT_SIGNED,
                        key=site_key(scan.courier, record.site),
                        courier=scan.courier,
                        at=scan.event_time,
                        site=record.site,
                        waybill=state.waybill,
                        ref=scan.event_id,
                    )
                )
        changed = bool(fresh)
        for alert in update.alerts:
            changed = state.add_alert(alert) or changed
        if changed:
            self._evaluate(out, now, now_ms)
        return self._finish(out)

    def on_order(self, state: WaybillState | None, order: OrderEvent, now: datetime) -> Outcome:
        """Apply one merchant order event."""
        if state is None:
            state = WaybillState(order.waybill, order.courier)
        out = Outcome(state)
        now_ms = to_ms(now)
        self._fire_passed(out, now, now_ms)
        if state.add_order(order) is not None:
            self._evaluate(out, now, now_ms)
        return self._finish(out)

    def on_due(self, state: WaybillState, now: datetime) -> Outcome:
        """Fire every deadline ``<= now`` on the facts received so far; retire a waybill
        that stayed quiet long enough (see the module docstring)."""
        out = Outcome(state)
        now_ms = to_ms(now)
        if self._evaluate(out, now, now_ms) is None and not out.anomalies:
            self._retire(out, now_ms)
        return self._finish(out)

    # -- internals ------------------------------------------------------------------------

    def _fire_passed(self, out: Outcome, now: datetime, now_ms: int) -> None:
        due = out.state.next_due
        if due is not None and due <= now_ms:
            self._evaluate(out, now, now_ms)

    def _evaluate(self, out: Outcome, now: datetime, now_ms: int) -> int | None:
        """Run every detector; return the earliest detector deadline after ``now``."""
        state = out.state
        episodes = state.episodes
        next_due: int | None = None
        for detector in self.detectors:
            episode = episodes.get(detector.type) if episodes else None
            verdict = detector.evaluate(state, episode, now_ms)
            due = verdict.due
            if due is not None and due > now_ms and (next_due is None or due < next_due):
                next_due = due
            if verdict.desired is not None or verdict.resolved_by is not None:
                self._emit(out, detector, verdict, now, now_ms)
        state.next_due = next_due
        if next_due is None:
            retire_at = self._retirement_due(state)
            if retire_at is not None:
                state.next_due = max(retire_at, now_ms + 1)  # a deadline is always ahead
        return next_due

    def _step(self, out: Outcome, fresh: list[ScanRecord], now: datetime, now_ms: int) -> None:
        """Evaluate the event-triggered detectors after each of a push's new scans ``fresh``
        (event-time order) but the last, on the facts known up to that scan.

        ``state.scans`` already holds the whole push; each step sees it without the push's
        later scans (set back afterwards). The step after the last scan is the evaluation on
        every fact that follows, where the deadline detectors run too: event detectors'
        verdicts do not depend on the clock, deadlines fire on every fact received.
        """
        state = out.state
        episodes = state.episodes
        early = fresh[:-1]
        stepping = [
            d for d in self.stepwise if d.may_emit_early(state, episodes.get(d.type), early)
        ]
        if not stepping:
            return
        known = state.scans
        pending = {record.event_id for record in fresh}
        try:
            for record in early:
                pending.discard(record.event_id)
                state.scans = [r for r in known if r.event_id not in pending]
                for detector in stepping:
                    verdict = detector.evaluate(state, episodes.get(detector.type), now_ms)
                    if verdict.desired is not None or verdict.resolved_by is not None:
                        self._emit(out, detector, verdict, now, now_ms)
        finally:
            state.scans = known

    def _emit(
        self,
        out: Outcome,
        detector: WaybillDetector,
        verdict: Verdict,
        now: datetime,
        now_ms: int,
    ) -> None:
        """Reconcile one verdict with the open episode; emit its transitions."""
        state = out.state
        for step in reconcile(state.episodes, detector.type, detector.reasons, verdict, now_ms):
            event = self._event(detector, step, state, now)
            out.anomalies.append(event)
            if detector.type == STALL and step.status != "updated":
                self._stall_signal(out, step, event, now)

    # -- retirement -----------------------------------------------------------------------

    def _retirement_due(self, state: WaybillState) -> int | None:
        """When the state (or its marker) goes, if nothing is open; ``None``: never."""
        if state.episodes:
            return None  # an open episode must still be able to update or resolve
        if state.is_marker:
            assert state.retired is not None
            return state.retired[1] + self.marker_ms if self.marker_ms else None
        last = state.last_activity()
        return last + self.retention_ms if self.retention_ms and last is not None else None

    def _retire(self, out: Outcome, now_ms: int) -> None:
        state = out.state
        due = self._retirement_due(state)
        if due is None or due > now_ms:
            return
        if state.is_marker:
            out.forget = True
            state.next_due = None
            return
        marker = state.retire(now_ms)
        marker.next_due = self._retirement_due(marker)
        out.state, out.retired = marker, True

    def _event(
        self, detector: WaybillDetector, step: Transition, state: WaybillState, now: datetime
    ) -> AnomalyEvent:
        episode = step.episode
        evidence = step.evidence()
        actions = []
        if step.status == "resolved":
            evidence["opened_at"] = format_rfc3339(from_ms(episode.opened, now.tzinfo or self.tz))
        else:
            evidence.update(_case_context(self._evidence, state))
            if detector.ladder:
                actions = ladder(from_ms(episode.opened, now.tzinfo or self.tz), detector.ladder)
        subject = Subject(
            state.waybill, waybill=state.waybill, courier=state.courier, merchant=state.merchant
        )
        return make_event(
            detector.type,
            step.status,
            subject,
            episode.key,
            episode.reasons,
            now,
            evidence,
            actions,
        )

    @staticmethod
    def _stall_signal(out: Outcome, step: Transition, event: AnomalyEvent, now: datetime) -> None:
        site, courier = step.episode.site, out.state.courier
        if not site or not courier:
            return
        kind = _STALL_OPENED if step.status == "open" else _STALL_RESOLVED
        out.signals.append(
            Signal(
                kind,
                key=site_key(courier, site),
                courier=courier,
                at=now,
                site=site,
                waybill=out.state.waybill,
                ref=event.anomaly_id,
            )
        )

    def _finish(self, out: Outcome) -> Outcome:
        out.next_due_ms, out.tz = out.state.next_due, self.tz
        return out


def _days_ms(days: float) -> int:
    """A setting in days as epoch-ms duration (0 stays 0: disabled)."""
    return round(days * 86_400_000)


def _case_context(evidence: Detector, state: WaybillState) -> dict[str, Any]:
    """What the case service needs beyond the trigger, on ``open``/``updated`` only: the
    lane (origin = the first scan's city, destination = the order's) for the review, and the
    waybill's whole kept timeline (masked, at most ``MAX_SCANS``) for the evidence dossier."""
    origin = next((r.city for r in state.scans if r.city), None)
    lane = {"origin_city": origin, "destination_city": state.destination_city}
    return {
        "lane": {k: v for k, v in lane.items() if v},
        "timeline": {
            "scans": [evidence.scan(r) for r in state.scans],
            "order_events": [evidence.order_event(f) for f in state.orders],
        },
    }
