"""State of the aggregate detectors: one ``SiteState`` per ``courier:site``, one
``CourierState`` per courier. Both are bounded and serialise to versioned orjson lists.

* ``SiteState.windows``: distinct waybills signed ``recipient`` per epoch-aligned window start
  (``bulk_signing``), dropped ``bulk_signing_late_hours`` after the window's end;
  ``opened`` the window starts whose episode is open (bulk episodes never resolve).
* ``SiteState.stalls``: waybills with an open ``transit_stall`` whose last scan is at this site.
* ``CourierState.buckets``: updates received per minute over the look-back period
  (``feed_silence``), at most ``feed_silence_lookback_minutes`` buckets.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from waybill_watch.domain.state import Episode

AGGREGATE_VERSION = 1


SITE_TAG = "site"
COURIER_TAG = "courier"


def _check(raw: Any, tag: str) -> list[Any]:
    if not isinstance(raw, list) or len(raw) < 2 or raw[0] != AGGREGATE_VERSION:
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
    opened: set[int] = field(default_factory=set)  # window starts with an open bulk episode
    stalls: set[str] = field(default_factory=set)  # waybills with an open stall here
    episodes: dict[str, Episode] = field(default_factory=dict)  # open site_stall_spike
    spikes: int = 0  # site_stall_spike episodes opened so far (their key)

    def to_bytes(self) -> bytes:
        return orjson.dumps(
            [
                AGGREGATE_VERSION,
                SITE_TAG,
                self.subject,
                self.courier,
                self.site,
                [[start, sorted(w)] for start, w in sorted(self.windows.items())],
                sorted(self.opened),
                sorted(self.stalls),
                {t: e.dump() for t, e in sorted(self.episodes.items())},
                self.spikes,
            ]
        )

    @classmethod
    def from_bytes(cls, data: bytes | bytearray | memoryview | str) -> SiteState:
        raw = _check(orjson.loads(data), SITE_TAG)
        _, _, subject, courier, site, windows, opened, stalls, episodes, spikes = raw
        return cls(
            subject=subject,
            courier=courier,
            site=site,
            windows={start: set(w) for start, w in windows},
            opened=set(opened),
            stalls=set(stalls),
            episodes={t: Episode.load(e) for t, e in episodes.items()},
            spikes=spikes,
        )


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
                AGGREGATE_VERSION,
                COURIER_TAG,
                self.courier,
                sorted(self.buckets.items()),
                self.last,
                {t: e.dump() for t, e in sorted(self.episodes.items())},
            ]
        )

    @classmethod
    def from_bytes(cls, data: bytes | bytearray | memoryview | str) -> CourierState:
        raw = _check(orjson.loads(data), COURIER_TAG)
        _, _, courier, buckets, last, episodes = raw
        return cls(
            courier=courier,
            buckets={m: n for m, n in buckets},
            last=last,
            episodes={t: Episode.load(e) for t, e in episodes.items()},
        )
