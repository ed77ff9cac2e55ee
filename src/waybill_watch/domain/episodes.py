"""Episode lifecycle (contract §6): ``open`` → any number of ``updated`` → at most one ``resolved``.

Detectors never emit events themselves. Each returns a ``Verdict`` computed from the facts:

* ``desired``: an episode of its type should be open now, with an identity ``key``, reasons,
  a ``support`` count (how many facts back it) and lazily built evidence;
* ``resolved_by``: the open episode's resolution condition holds (evidence of what resolved it);
* ``due``: when the verdict could next change by the clock alone (a deadline).

``reconcile`` turns a verdict into transitions: resolve the open episode if asked, open one when
none is open, or emit ``updated`` when new reasons appear or the support grows (a new trigger).
A desired episode never retracts an open one, it only updates it. The waybill engine and the site
and courier engines all go through it.

The open episodes are kept in a map by slot: the anomaly type, at most one open episode per type
and subject. A type with several episodes open at once (``bulk_signing``: one per window) names
the slot of each verdict (``Verdict.slot``); it must also drop the slots it no longer needs.

Episode identity. ``anomaly_id = ids.anomaly_id(type, subject, key)`` where ``key`` is derived
from facts, not from a counter, so re-processing the same input (restart, replay, duplicate
pushes) always lands on the same id, and so do different arrival orders of the same facts.
Each detector documents its key; the keys are chosen so that a resolved key can never be
desired again (they name a boundary fact that only moves forward in event time).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

from waybill_watch.domain.ids import anomaly_id
from waybill_watch.domain.state import Episode
from waybill_watch.masking import mask_text
from waybill_watch.models.anomaly import (
    Action,
    AnomalyEvent,
    AnomalyStatus,
    AnomalyType,
    Scope,
    Severity,
)

Evidence = dict[str, Any]
EvidenceFn = Callable[[], Evidence]


@dataclass(frozen=True, slots=True)
class AnomalySpec:
    """Fixed properties of one anomaly type (contract §6 table)."""

    scope: Scope
    severity: Severity


SPECS: Mapping[AnomalyType, AnomalySpec] = {
    "delivery_exception": AnomalySpec("waybill", "high"),
    "suspicious_signature": AnomalySpec("waybill", "high"),
    "signed_not_received": AnomalySpec("waybill", "critical"),
    "status_regression": AnomalySpec("waybill", "warning"),
    "locker_uncollected": AnomalySpec("waybill", "warning"),
    "transit_stall": AnomalySpec("waybill", "warning"),
    "no_first_scan": AnomalySpec("waybill", "warning"),
    "delivery_overdue": AnomalySpec("waybill", "warning"),
    "bulk_signing": AnomalySpec("site", "high"),
    "feed_silence": AnomalySpec("courier", "critical"),
    "site_stall_spike": AnomalySpec("site", "warning"),
}


@dataclass(slots=True)
class Desired:
    """An episode that should be open given the facts."""

    key: str
    reasons: tuple[str, ...]
    support: int
    evidence: EvidenceFn
    site: str | None = None


@dataclass(slots=True)
class Verdict:
    """A detector's reading of the facts at one instant."""

    desired: Desired | None = None
    resolved_by: EvidenceFn | None = None
    due: int | None = None  # epoch ms
    slot: str | None = None  # the open-episode slot; None: the anomaly type (one at a time)


NOTHING = Verdict()


@dataclass(slots=True)
class Transition:
    """One lifecycle step to emit."""

    status: AnomalyStatus
    episode: Episode
    evidence: EvidenceFn


def ordered_reasons(canonical: tuple[str, ...], reasons: Iterable[str]) -> list[str]:
    """Distinct reasons in the detector's canonical order (independent of arrival order)."""
    present = set(reasons)
    return [r for r in canonical if r in present]


def reconcile(
    episodes: dict[str, Episode],
    anomaly_type: str,
    canonical: tuple[str, ...],
    verdict: Verdict,
    now_ms: int,
) -> list[Transition]:
    """Apply a verdict to the open-episode map; return the transitions to emit, in order."""
    out: list[Transition] = []
    slot = verdict.slot or anomaly_type
    episode = episodes.get(slot)
    if episode is not None and verdict.resolved_by is not None:
        del episodes[slot]
        out.append(Transition("resolved", episode, verdict.resolved_by))
        episode = None
    desired = verdict.desired
    if desired is None:
        return out
    if episode is None:
        reasons = ordered_reasons(canonical, desired.reasons)
        episode = Episode(desired.key, now_ms, reasons, desired.support, desired.site)
        episodes[slot] = episode
        out.append(Transition("open", episode, desired.evidence))
        return out
    merged = ordered_reasons(canonical, [*episode.reasons, *desired.reasons])
    if merged != episode.reasons or desired.support > episode.support:
        episode.reasons = merged
        episode.support = max(episode.support, desired.support)
        out.append(Transition("updated", episode, desired.evidence))
    return out


@lru_cache(maxsize=65_536)
def _masked(text: str) -> str:
    # Evidence repeats the same strings (waybills of a bulk window, site names): cache them.
    return mask_text(text)


def mask_evidence(value: Any) -> Any:
    """Mask phone numbers and labelled names in every string of an evidence tree."""
    if isinstance(value, str):
        return _masked(value)
    if isinstance(value, dict):
        return {k: mask_evidence(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [mask_evidence(v) for v in value]
    return value


@dataclass(frozen=True, slots=True)
class Subject:
    """Who an anomaly is about (the fields every event of a subject shares)."""

    subject: str
    waybill: str | None = None
    courier: str | None = None
    merchant: str | None = None


def make_event(
    anomaly_type: AnomalyType,
    status: AnomalyStatus,
    subject: Subject,
    key: str,
    reasons: list[str],
    now: datetime,
    evidence: Evidence,
    actions: Iterable[tuple[str, datetime]] = (),
) -> AnomalyEvent:
    """Build the wire event (the only place the core constructs ``AnomalyEvent``)."""
    spec = SPECS[anomaly_type]
    return AnomalyEvent(
        anomaly_id=anomaly_id(anomaly_type, subject.subject, key),
        type=anomaly_type,
        status=status,
        severity=spec.severity,
        scope=spec.scope,
        subject=subject.subject,
        waybill=subject.waybill,
        courier=subject.courier,
        merchant=subject.merchant,
        reasons=list(reasons),
        detected_at=now,
        evidence=mask_evidence(evidence),
        actions=[Action(step=step, due_at=due) for step, due in actions],
    )


def ladder(opened: datetime, steps: Iterable[tuple[str, float]]) -> list[tuple[str, datetime]]:
    """Escalation steps with due times counted from the episode's open."""
    return [(step, opened + timedelta(hours=hours)) for step, hours in steps]
