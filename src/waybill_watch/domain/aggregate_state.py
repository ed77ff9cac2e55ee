"""State of the aggregate detectors: one ``SiteState`` per ``courier:site``, one
``CourierState`` per courier. Both are bounded and serialise to versioned orjson lists.

* ``SiteState.windows``: distinct waybills signed ``recipient`` per epoch-aligned window start
  (``bulk_signing``), dropped ``bulk_signing_late_hours`` after the window's end.
* ``SiteState.stalls``: waybills with an open ``transit_stall`` whose last scan is at this site.
* ``CourierState.buckets``: updates received per minute over the look-back period
  (``feed_silence``), at most ``feed_silence_lookback_minutes`` buckets.
* ``episodes``: the open episodes, by slot (see ``episodes.reconcile``): ``site_stall_spike``
  and ``feed_silence`` under their type, ``bulk_signing`` one per window under
  ``window_slot(start)`` (never resolved: dropped with the window).

Versions: the site state is at 2 (version 1 kept the window starts of the open ``bulk_signing``
episodes as a list of ints, ``opened``; it still loads, see ``SiteState.from_bytes``); the
courier state is at 1.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC
from typing import Any

import orjson

from waybill_watch.domain.clock import from_ms
from waybill_watch.domain.state import Episode

SITE_VERSION = 2
COURIER_VERSION = 1

SITE_TAG = "site"
COURIER_TAG = "courier"

BULK_SIGNING = "bulk_signing"
BULK_REASONS = ("recipient_signatures",)


def window_slot(start: int) -> str:
    """The episode slot of the ``bulk_signing`` window starting at ``start`` (epoch ms)."""
    return f"{BULK_SIGNING}@{start}"


def window_key(start: int) -> str:
    """The episode key (``anomaly_id`` input) of that window: its start, UTC, RFC 3339."""
    return from_ms(start, UTC).isoformat()


def _check(raw: Any, tag: str, versions: tuple[int, ...]) -> list[Any]:
    if not isinstance(raw, list) or len(raw) < 2 or raw[0] not in versions:
        version = raw[0] if isinstance(raw, list) and raw else None
        raise ValueError(f"unsupported aggregate state version {version!r}")
    if raw[1] != tag:
        raise ValueError(f"expected a {tag} state, got {raw[1]!r}")
    return raw


def load_aggregate(data: bytes | bytearray | memoryview | str) -> SiteState | CourierState:
    """Either aggregate state, told apart by its tag (both may share one table)."""
    raw = orjson.loads(data)
    tag = raw[1] if isinstance(raw, list) and len(raw) > 1 else None
    if tag == SITE_TAG:
        return SiteState.from_bytes(data)
    return CourierState.from_bytes(data)


@dataclass(slots=True)
class SiteState:
    """Per ``courier:site``: signing windows and open stalls."""

    subject: str
    courier: str
    site: str
    windows: dict[int, set[str]] = field(default_factory=dict)  # window start ms -> waybills
    stalls: set[str] = field(default_factory=set)  # waybills with an open stall here
    episodes: dict[str, Episode] = field(default_factory=dict)  # open episodes by slot
    spikes: int = 0  # site_stall_spike episodes opened so far (their key)

    def to_bytes(self) -> bytes:
        return orjson.dumps(
            [
                SITE_VERSION,
                SITE_TAG,
                self.subject,
                self.courier,
                self.site,
                [[start, sorted(w)] for start, w in sorted(self.windows.items())],
                sorted(self.stalls),
                {t: e.dump() for t, e in sorted(self.episodes.items())},
                self.spikes,
            ]
        )

    @classmethod
    def from_bytes(cls, data: bytes | bytearray | memoryview | str) -> SiteState:
        raw = _check(orjson.loads(data), SITE_TAG, (1, SITE_VERSION))
        if raw[0] == 1:
            return cls._from_v1(raw)
        _, _, subject, courier, site, windows, stalls, episodes, spikes = raw
        return cls(
            subject=subject,
            courier=courier,
            site=site,
            windows={start: set(w) for start, w in windows},
            stalls=set(stalls),
            episodes={t: Episode.load(e) for t, e in episodes.items()},
            spikes=spikes,
        )

    @classmethod
    def _from_v1(cls, raw: list[Any]) -> SiteState:
        """Version 1: ``opened`` (window starts) instead of the windows' episodes.

        Each becomes the episode ``bulk_signing`` would hold: its support is the window's
        count (every signature from the threshold on emitted an event); when it opened was
        not kept, the window start stands in (no bulk event shows it).
        """
        _, _, subject, courier, site, windows, opened, stalls, episodes, spikes = raw
        state = cls(
            subject=subject,
            courier=courier,
            site=site,
            windows={start: set(w) for start, w in windows},
            stalls=set(stalls),
            episodes={t: Episode.load(e) for t, e in episodes.items()},
            spikes=spikes,
        )
        for start in opened:
            count = len(state.windows.get(start, ()))
            episode = Episode(window_key(start), start, list(BULK_REASONS), count)
            state.episodes[window_slot(start)] = episode
        return state


@dataclass(slots=True)
class CourierState:
    """Per courier: recent update counts and the time of the last update."""

    courier: str
    buckets: dict[int, int] = field(default_factory=dict)  # minute start ms -> updates
    last: int | None = None  # latest received_at, epoch ms
    episodes: dict[str, Episode] = field(default_factory=dict)  # open feed_silence

    def to_bytes(self) -> bytes:
        return orjson.dumps(
            [
                COURIER_VERSION,
                COURIER_TAG,
                self.courier,
                sorted(self.buckets.items()),
                self.last,
                {t: e.dump() for t, e in sorted(self.episodes.items())},
            ]
        )

    @classmethod
    def from_bytes(cls, data: bytes | bytearray | memoryview | str) -> CourierState:
        raw = _check(orjson.loads(data), COURIER_TAG, (COURIER_VERSION,))
        _, _, courier, buckets, last, episodes = raw
        return cls(
            courier=courier,
            buckets={m: n for m, n in buckets},
            last=last,
            episodes={t: Episode.load(e) for t, e in episodes.items()},
        )
