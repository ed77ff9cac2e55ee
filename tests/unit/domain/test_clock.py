"""Clocks and millisecond instants."""

from __future__ import annotations

from datetime import UTC, datetime

from waybill_watch.domain.clock import EPOCH, StreamClock, WallClock, from_ms, to_ms

from .helpers import SH, at


def test_ms_conversion_is_exact_and_zone_independent() -> None:
    instant = datetime(2026, 11, 20, 9, 0, 0, 123000, tzinfo=SH)
    assert to_ms(instant) == 1_795_136_400_123
    assert to_ms(instant.astimezone(UTC)) == 1_795_136_400_123
    assert from_ms(1_795_136_400_123, SH) == instant


def test_stream_clock_is_the_largest_received_at_and_never_goes_back() -> None:
    clock = StreamClock()
    assert clock.now() == EPOCH
    assert clock.observe(at(2)) == at(2)
    assert clock.observe(at(1)) == at(2)
    assert clock.observe(at(3)) == at(3)
    assert clock.now_ms() == to_ms(at(3))


def test_wall_clock_is_aware() -> None:
    assert WallClock().now().tzinfo is not None


def test_watermark_is_the_lowest_busy_mark_and_never_goes_back() -> None:
    from waybill_watch.domain.clock import Watermark

    wm = Watermark()
    assert wm.advance(0) == 0  # nothing heard: the clock stays
    wm.observe("raw/0", 100)
    wm.observe("raw/1", 50)
    assert wm.advance(0) == 50
    wm.observe("raw/1", 40)  # a mark is never lowered
    assert wm.advance(0) == 50
    assert wm.advance(70) == 70  # nor the clock
    wm.observe("raw/1", 120, idle=True)  # caught up (stream clock): constrains nothing
    assert wm.advance(70) == 100
    wm.observe("raw/0", 110, idle=True)
    assert wm.advance(70) == 120  # every source idle: the highest mark


def test_watermark_with_expected_sources_waits_for_each() -> None:
    from waybill_watch.domain.clock import Watermark

    wm = Watermark(expected=2)
    wm.observe("w/0", 100)
    assert wm.advance(5) == 5
    wm.observe("w/1", 200)
    assert wm.advance(5) == 100
