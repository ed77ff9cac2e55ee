"""``site_stall_spike`` (site scope): many parcels stalled at the same site at once.

The waybill engine signals ``stall_opened``/``stall_resolved`` for each ``transit_stall``
episode whose last scan names a site. Opens when ``site_stall_open_threshold`` such stalls are
open at once at the same ``courier:site`` (reason ``stalls_open``); each further stall while open
emits ``updated``; resolves when fewer than ``site_stall_resolve_below`` remain open.
Key: the site's episode number (1, 2, ...), kept in the site state.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from waybill_watch.domain.aggregate_state import SiteState
from waybill_watch.domain.clock import to_ms
from waybill_watch.domain.detectors.base import Detector
from waybill_watch.domain.episodes import Subject, make_event
from waybill_watch.domain.signals import Signal, SignalKind
from waybill_watch.domain.state import Episode
from waybill_watch.models.anomaly import AnomalyEvent, AnomalyStatus

# Enum members as module constants: member lookup on an enum class is slow in CPython 3.11.
_STALL_OPENED = SignalKind.STALL_OPENED

LISTED_WAYBILLS = 200


class SiteStallSpike(Detector):
    """Counts open stalls per site."""

    type = "site_stall_spike"
    reasons = ("stalls_open",)
    kinds = frozenset({SignalKind.STALL_OPENED, SignalKind.STALL_RESOLVED})

    def on_signal(self, state: SiteState, signal: Signal, now: datetime) -> list[AnomalyEvent]:
        waybill = signal.waybill
        if waybill is None:
            return []
        opened = signal.kind is _STALL_OPENED
        if opened == (waybill in state.stalls):
            return []  # a repeated signal
        if opened:
            state.stalls.add(waybill)
        else:
            state.stalls.discard(waybill)
        count = len(state.stalls)
        episode = state.episodes.get(self.type)
        status: AnomalyStatus
        if episode is None:
            if count < self.settings.site_stall_open_threshold:
                return []
            state.spikes += 1
            episode = Episode(str(state.spikes), to_ms(now), list(self.reasons), count)
            state.episodes[self.type] = episode
            status = "open"
        elif opened:
            episode.support = max(episode.support, count)
            status = "updated"
        elif count < self.settings.site_stall_resolve_below:
            del state.episodes[self.type]
            status = "resolved"
        else:
            return []
        subject = Subject(state.subject, courier=state.courier)
        evidence = self._evidence(state, count)
        return [make_event(self.type, status, subject, episode.key, episode.reasons, now, evidence)]

    def on_due(self, state: SiteState, now: datetime) -> list[AnomalyEvent]:
        return []

    def due(self, state: SiteState) -> int | None:
        return None

    def _evidence(self, state: SiteState, count: int) -> dict[str, Any]:
        return {
            "site": state.site,
            "open_stalls": count,
            "threshold": self.settings.site_stall_open_threshold,
            "resolve_below": self.settings.site_stall_resolve_below,
            "waybills": sorted(state.stalls)[:LISTED_WAYBILLS],
        }
