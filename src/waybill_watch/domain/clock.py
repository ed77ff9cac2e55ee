"""Clocks and instant arithmetic for the core.

The core never reads the time itself: every engine call receives ``now``. Adapters pick the
clock (contract §8 ``WAYBILL_WATCH_CLOCK``): ``WallClock`` in a live worker, ``StreamClock``
(the largest ``received_at`` seen) in replay and in workers that must behave like replay.

Internally the core keeps instants as integer epoch milliseconds: compact in per-waybill state,
exact to compare, and cheap to order in the deadline heap.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any, Protocol

from waybill_watch.timefmt import zone

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)
HOUR_MS = 3_600_000
MINUTE_MS = 60_000


#: The last conversion: one push's ``received_at`` (the clock's ``now``, every scan's and
#: signal's receipt time) is converted many times in a row. One tuple, so threads are safe.
_last_ms: tuple[datetime, int] = (EPOCH, 0)


def to_ms(value: datetime) -> int:
    """Epoch milliseconds of an aware datetime (exact, no float rounding)."""
    global _last_ms
    last = _last_ms
    if last[0] is value:
        return last[1]
    ms = (value - EPOCH) // _MS
    _last_ms = (value, ms)
    return ms


def from_ms(ms: int, tz: tzinfo = UTC) -> datetime:
    """The aware datetime of epoch milliseconds ``ms``, shown in ``tz``."""
    return (EPOCH + timedelta(milliseconds=ms)).astimezone(tz)


def hours_ms(hours: float) -> int:
    """A duration in hours as whole milliseconds."""
    return round(hours * HOUR_MS)


class Clock(Protocol):
    """Anything that tells the core what time it is."""

    def now(self) -> datetime:
        """The current instant (aware)."""
        ...


class WallClock:
    """The machine's clock, shown in ``tz`` (the live worker's default)."""

    def __init__(self, tz: str = "Asia/Shanghai") -> None:
        self._tz = zone(tz)

    def now(self) -> datetime:
        """The wall-clock instant."""
        return datetime.now(tz=self._tz)


class StreamClock:
    """Time as seen by the stream: the largest ``received_at`` observed; never goes backwards.

    Before anything was observed ``now()`` is the epoch, so a tick fires no deadline.
    """

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start if start is not None else EPOCH
        self._now_ms = to_ms(self._now)

    def observe(self, received_at: datetime) -> datetime:
        """Advance to ``received_at`` if it is later than the current time; return ``now()``."""
        ms = to_ms(received_at)
        if ms > self._now_ms:
            self._now, self._now_ms = received_at, ms
        return self._now

    def now(self) -> datetime:
        """The largest ``received_at`` observed so far."""
        return self._now

    def now_ms(self) -> int:
        """``now()`` as epoch milliseconds."""
        return self._now_ms


class Watermark:
    """The clock of one partition of a keyed stage fed by several sources: it never runs ahead
    of the ``received_at`` of input it has not processed (contract §6).

    Each source (a partition of an upstream topic, or of the upstream stage) reports, in band
    and in order with its records, a mark: every later record from it was received at or after
    that instant. A source that is caught up reports the wall clock (``wall``) or, with the
    ``stream`` clock, that it is idle (it constrains nothing). The clock is the lowest mark of
    the sources that constrain it; with every source idle it is the highest mark seen. The clock
    never goes backwards. With ``expected`` sources, the clock waits until each has reported
    once; with ``expected=0`` a source not heard of yet constrains nothing (its first record or
    tick reports it).

    ``marks`` is plain data (source → ``[ms, idle]``) so the adapter can store it in the
    partition's state.
    """

    def __init__(self, marks: dict[str, list[Any]] | None = None, expected: int = 0) -> None:
        self.expected = expected
        self.marks: dict[str, list[Any]] = marks if marks is not None else {}

    def observe(self, source: str, ms: int, idle: bool = False) -> bool:
        """Record a source's mark (never lowered); return True when anything changed."""
        mark = self.marks.get(source)
        if mark is None:
            self.marks[source] = [ms, idle]
            return True
        if ms < mark[0]:
            ms = mark[0]
        if mark[0] == ms and mark[1] == idle:
            return False
        mark[0], mark[1] = ms, idle
        return True

    def advance(self, current_ms: int) -> int:
        """The clock given the marks, never below ``current_ms``."""
        if not self.marks or len(self.marks) < self.expected:
            return current_ms
        busy = [ms for ms, idle in self.marks.values() if not idle]
        candidate = min(busy) if busy else max(ms for ms, _ in self.marks.values())
        return candidate if candidate > current_ms else current_ms
