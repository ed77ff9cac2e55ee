"""``delivery_exception``: failed attempts, problem parcels, refusals and returns.

Opens when a scan ``failed_attempt``/``exception``/``rejected``/``returning`` is newer (event
time) than the latest ``delivered``/``returned`` scan; reasons are those statuses. A later
``delivered``/``returned`` resolves it. Evaluated on the sorted history, so an exception scan
older than the latest delivery never opens anything, whatever order the scans arrived in.

Key: the event id of the latest ``delivered``/``returned`` scan before the exceptions (``-``
when none). The boundary only moves forward, so a resolved key never comes back; a boundary
that moves while exceptions remain after it resolves the episode and opens the next one.

Event-triggered: a push's new scans are seen one at a time, so a failed attempt and the
delivery that follows it in the same push open and then resolve an episode. Only problem and
boundary scans change the verdict, and a boundary alone changes nothing while no episode is
open and no problem scan is known.
"""

from __future__ import annotations

from typing import Any

from waybill_watch.domain.detectors.base import EVIDENCE_LIMIT, Detector
from waybill_watch.domain.episodes import Desired, Verdict
from waybill_watch.domain.state import NO_KEY, Episode, ScanRecord, WaybillState
from waybill_watch.domain.types import Status
from waybill_watch.models.anomaly import AnomalyType

TRIGGERS: tuple[Status, ...] = (
    Status.FAILED_ATTEMPT,
    Status.EXCEPTION,
    Status.REJECTED,
    Status.RETURNING,
)
RESOLVERS = frozenset({Status.DELIVERED, Status.RETURNED})
_TRIGGER_SET = frozenset(TRIGGERS)


class DeliveryException(Detector):
    """A courier-reported delivery problem that no later delivery or return has closed."""

    type: AnomalyType = "delivery_exception"
    reasons: tuple[str, ...] = tuple(str(s) for s in TRIGGERS)

    def evaluate(self, state: WaybillState, episode: Episode | None, now: int) -> Verdict:
        boundary: ScanRecord | None = None
        after: list[ScanRecord] = []
        for record in state.scans:
            if record.status in RESOLVERS:
                boundary, after = record, []
            elif record.status in _TRIGGER_SET:
                after.append(record)
        key = boundary.event_id if boundary is not None else NO_KEY
        verdict = Verdict()
        if episode is not None and episode.key != key and boundary is not None:
            resolver = boundary
            verdict.resolved_by = lambda: {"resolved_by": self.scan(resolver)}
        if after:
            found = {r.status for r in after}
            reasons = tuple(str(s) for s in TRIGGERS if s in found)
            verdict.desired = Desired(key, reasons, len(after), lambda: self._evidence(after))
        return verdict

    def may_emit_early(
        self, state: WaybillState, episode: Episode | None, early: list[ScanRecord]
    ) -> bool:
        boundary = False
        for record in early:
            status = record.status
            if status in _TRIGGER_SET:
                return True
            if status in RESOLVERS:
                boundary = True
        if not boundary:
            return False  # the verdict reads nothing else: every prefix reads as before
        if episode is not None:
            return True
        for record in state.scans:  # noqa: SIM110 - faster than any() over a generator
            if record.status in _TRIGGER_SET:
                return True
        return False

    def _evidence(self, problems: list[ScanRecord]) -> dict[str, Any]:
        shown = problems[-EVIDENCE_LIMIT:]
        return {
            "scans": [self.scan(r) for r in shown],
            "courier_codes": [r.code for r in shown if r.code is not None],
            "count": len(problems),
        }
