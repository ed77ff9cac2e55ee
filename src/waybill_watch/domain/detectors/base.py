"""What every detector looks like, and the evidence shapes they share.

A waybill detector is a small object built from ``DetectionSettings`` with one method,
``evaluate(state, episode, now) -> Verdict``: it reads the event-time-sorted facts of one
waybill (never the arrival order) and the currently open episode of its type, and says what
should be open, whether the open one is resolved, and its next deadline. ``now`` is epoch ms.
Site and courier detectors (``AggregateDetector``) answer with the same ``Verdict``.

An ``EventDetector`` is one whose episodes open on a fact, not on a deadline (contract §6:
"event-triggered rules look at every fact as it becomes known, in event-time order among facts
that become known together"). When one push brings several new scans, the engine evaluates it
after each of them in turn, on the facts known up to that one; ``may_emit_early`` lets the
detector say, cheaply, that those intermediate evaluations cannot emit anything, so a push
whose new scans cannot trigger it costs one evaluation as before. Its verdicts must not
depend on ``now`` (they are facts-only, so the intermediate ones need no clock of their own).
"""

from __future__ import annotations

from datetime import tzinfo
from typing import Any, Protocol, TypeVar, runtime_checkable

from waybill_watch.domain.clock import from_ms
from waybill_watch.domain.config import DetectionSettings
from waybill_watch.domain.episodes import Verdict
from waybill_watch.domain.signals import Signal, SignalKind
from waybill_watch.domain.state import AlertFact, Episode, OrderFact, ScanRecord, WaybillState
from waybill_watch.models.anomaly import AnomalyType
from waybill_watch.timefmt import format_rfc3339, zone

S_contra = TypeVar("S_contra", contravariant=True)

#: At most this many scans or order events are listed in one evidence object.
EVIDENCE_LIMIT = 10


class WaybillDetector(Protocol):
    """One anomaly type evaluated per waybill."""

    @property
    def type(self) -> AnomalyType:
        """The anomaly type it detects."""
        ...

    @property
    def reasons(self) -> tuple[str, ...]:
        """Its reason codes in canonical order."""
        ...

    @property
    def ladder(self) -> tuple[tuple[str, float], ...]:
        """Escalation steps (name, hours after open) put in ``actions``; usually empty."""
        ...

    def evaluate(self, state: WaybillState, episode: Episode | None, now: int) -> Verdict:
        """Read the facts at ``now`` (epoch ms)."""
        ...


@runtime_checkable
class EventDetector(WaybillDetector, Protocol):
    """A waybill detector triggered by facts: it sees a push's new scans one at a time."""

    def may_emit_early(
        self, state: WaybillState, episode: Episode | None, early: list[ScanRecord]
    ) -> bool:
        """Could an evaluation on the facts known before the push plus only a prefix of
        ``early`` emit anything?

        ``state`` holds every fact (the push's included), ``episode`` is the open episode as
        reconciled on the facts known before the push, ``early`` the push's new scans in
        event-time order without the last one (the evaluation on every fact covers that one).
        ``False`` is a promise: each such evaluation would reconcile to no transition. When
        unsure, return ``True`` (it only costs time).
        """
        ...


class Detector:
    """Shared plumbing: settings, the local zone for evidence timestamps."""

    type: AnomalyType
    reasons: tuple[str, ...]
    ladder: tuple[tuple[str, float], ...] = ()

    def __init__(self, settings: DetectionSettings) -> None:
        self.settings = settings
        self.tz: tzinfo = zone(settings.local_timezone)

    def time(self, ms: int | None) -> str | None:
        """An instant as RFC 3339 in the local zone (evidence only)."""
        return format_rfc3339(from_ms(ms, self.tz)) if ms is not None else None

    def scan(self, record: ScanRecord) -> dict[str, Any]:
        """Evidence form of a scan (personal data was masked when it was stored)."""
        out: dict[str, Any] = {
            "event_id": record.event_id,
            "event_time": self.time(record.t),
            "status": str(record.status),
        }
        optional = {
            "sign_type": str(record.sign_type) if record.sign_type is not None else None,
            "signer": record.signer,
            "city": record.city,
            "site": record.site,
            "courier_code": record.code,
            "description": record.text,
        }
        out.update((k, v) for k, v in optional.items() if v is not None)
        return out

    def scans(self, records: list[ScanRecord]) -> list[dict[str, Any]]:
        """The newest ``EVIDENCE_LIMIT`` scans, oldest first."""
        return [self.scan(r) for r in records[-EVIDENCE_LIMIT:]]

    def order_event(self, fact: OrderFact) -> dict[str, Any]:
        """Evidence form of an order event."""
        out: dict[str, Any] = {"type": fact.kind, "occurred_at": self.time(fact.t)}
        optional = {
            "order_id": fact.order_id,
            "merchant": fact.merchant,
            "promised_delivery_at": self.time(fact.promise),
            "destination_city": fact.city,
        }
        out.update((k, v) for k, v in optional.items() if v is not None)
        return out

    def alert(self, fact: AlertFact) -> dict[str, Any]:
        """Evidence form of a courier alert."""
        return {
            "kind": str(fact.kind),
            "courier_code": fact.code,
            "reported_at": self.time(fact.reported),
            "received_at": self.time(fact.received),
            "message": fact.message,
        }


def same_city(a: str | None, b: str | None) -> bool | None:
    """Cities compare equal after dropping a trailing 市 (contract §5.1); None if unknown."""
    if not a or not b:
        return None
    return a.strip().removesuffix("市") == b.strip().removesuffix("市")


class AggregateDetector(Protocol[S_contra]):
    """One anomaly type over many waybills (site or courier scope), fed by signals.

    Like a waybill detector it only reads and says (``Verdict``); the engine reconciles the
    verdict with the state's open episodes (``state.episodes``) and builds the events. Unlike
    one, it owns the counts its signals add to the state, so it folds a signal in first.
    ``now`` is epoch ms; ``Verdict.due`` is the detector's next deadline after the call.
    """

    @property
    def type(self) -> AnomalyType:
        """The anomaly type it detects."""
        ...

    @property
    def reasons(self) -> tuple[str, ...]:
        """Its reason codes in canonical order."""
        ...

    @property
    def kinds(self) -> frozenset[SignalKind]:
        """The signal kinds it consumes."""
        ...

    def on_signal(self, state: S_contra, signal: Signal, now: int) -> Verdict:
        """Fold one signal of its kinds into the state, then read it at ``now``."""
        ...

    def on_due(self, state: S_contra, now: int) -> Verdict:
        """Read the state at ``now`` by the clock alone (dropping what has expired)."""
        ...
