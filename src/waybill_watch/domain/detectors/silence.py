"""``feed_silence`` (courier scope): a busy courier feed that suddenly stops.

Every waybill update (one per waybill per push) counts, by its ``received_at``, in one-minute
buckets. When the courier had at least ``feed_silence_min_updates`` updates in the
``feed_silence_lookback_minutes`` one-minute buckets ending with the minute of its latest
update, and ``feed_silence_quiet_minutes`` pass after that latest update with nothing newer,
the episode opens (reason ``no_updates``). An update received after that latest one resolves it.
Key: the latest update's ``received_at`` (epoch ms), which only moves forward.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from waybill_watch.domain.aggregate_state import CourierState
from waybill_watch.domain.clock import MINUTE_MS, to_ms
from waybill_watch.domain.config import DetectionSettings
from waybill_watch.domain.detectors.base import Detector
from waybill_watch.domain.episodes import Subject, make_event
from waybill_watch.domain.signals import Signal, SignalKind
from waybill_watch.domain.state import Episode
from waybill_watch.models.anomaly import AnomalyEvent


class FeedSilence(Detector):
    """Updates per courier over time."""

    type = "feed_silence"
    reasons = ("no_updates",)
    kinds = frozenset({SignalKind.UPDATE_RECEIVED})

    def __init__(self, settings: DetectionSettings) -> None:
        super().__init__(settings)
        # The buckets before the latest update's minute that the look-back still covers.
        self._lookback_ms = (settings.feed_silence_lookback_minutes - 1) * MINUTE_MS
        self._quiet_ms = settings.feed_silence_quiet_minutes * MINUTE_MS

    def on_signal(self, state: CourierState, signal: Signal, now: datetime) -> list[AnomalyEvent]:
        received = to_ms(signal.at)
        if state.last is None or received > state.last:
            state.last = received
        last_minute = state.last - state.last % MINUTE_MS
        floor = last_minute - self._lookback_ms
        minute = received - received % MINUTE_MS
        buckets = state.buckets
        if minute >= floor:
            buckets[minute] = buckets.get(minute, 0) + 1
        if min(buckets, default=floor) < floor:  # the look-back moved on (once a minute)
            for old in [m for m in buckets if m < floor]:
                del buckets[old]
        if not state.episodes:
            due = self.due(state)
            if due is None or to_ms(now) < due:
                return []  # no episode to resolve, none to open: what on_due would find
        return self.on_due(state, now)

    def on_due(self, state: CourierState, now: datetime) -> list[AnomalyEvent]:
        events: list[AnomalyEvent] = []
        subject = Subject(state.courier, courier=state.courier)
        episode = state.episodes.get(self.type)
        if episode is not None and state.last is not None and state.last > int(episode.key):
            del state.episodes[self.type]
            evidence = {"resolved_by": {"received_at": self.time(state.last)}}
            events.append(
                make_event(
                    self.type, "resolved", subject, episode.key, episode.reasons, now, evidence
                )
            )
            episode = None
        due = self.due(state)
        if episode is None and due is not None and to_ms(now) >= due and state.last is not None:
            count = sum(state.buckets.values())
            episode = Episode(str(state.last), to_ms(now), list(self.reasons), count)
            state.episodes[self.type] = episode
            evidence = self._evidence(state, count)
            events.append(
                make_event(self.type, "open", subject, episode.key, episode.reasons, now, evidence)
            )
        return events

    def due(self, state: CourierState) -> int | None:
        if self.type in state.episodes or state.last is None:
            return None
        if sum(state.buckets.values()) < self.settings.feed_silence_min_updates:
            return None
        return state.last + self._quiet_ms

    def _evidence(self, state: CourierState, count: int) -> dict[str, Any]:
        return {
            "last_update_at": self.time(state.last),
            "updates_in_lookback": count,
            "lookback_minutes": self.settings.feed_silence_lookback_minutes,
            "quiet_minutes": self.settings.feed_silence_quiet_minutes,
            "min_updates": self.settings.feed_silence_min_updates,
        }
