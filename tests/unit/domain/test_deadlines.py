"""The deadline index: replace-on-schedule, deterministic order, O(due) ticks."""

from __future__ import annotations

from datetime import datetime

from waybill_watch.domain.clock import to_ms
from waybill_watch.domain.config import DetectionSettings
from waybill_watch.domain.deadlines import BucketDeadlineIndex, InMemoryDeadlineIndex
from waybill_watch.domain.engine import Outcome, WaybillEngine
from waybill_watch.domain.state import WaybillState

from .helpers import at, push, scan


def ms(when: datetime | None) -> int | None:
    return to_ms(when) if when is not None else None


def test_schedule_replaces_and_none_removes() -> None:
    index = InMemoryDeadlineIndex()
    index.schedule_ms("a", ms(at(5)))
    index.schedule_ms("a", ms(at(9)))
    index.schedule_ms("b", ms(at(3)))
    index.schedule_ms("b", ms(None))
    assert index.pop_due_ms(to_ms(at(8))) == []
    assert index.pop_due_ms(to_ms(at(9))) == ["a"]
    assert index.pop_due_ms(to_ms(at(100))) == []
    assert len(index) == 0


def test_pop_due_orders_by_due_then_key_and_includes_now() -> None:
    index = InMemoryDeadlineIndex()
    for key, hours in (("c", 2), ("b", 2), ("a", 3), ("d", 1), ("e", 4)):
        index.schedule_ms(key, ms(at(hours)))
    assert index.pop_due_ms(to_ms(at(3))) == ["d", "b", "c", "a"]
    assert index.next_due() is not None
    assert index.pop_due_ms(to_ms(at(3, 59))) == []


def test_stale_entries_are_compacted() -> None:
    index = InMemoryDeadlineIndex()
    for i in range(5000):
        index.schedule_ms("same", ms(at(0, i)))
    assert len(index) == 1
    assert len(index._heap) < 3000
    assert index.pop_due_ms(to_ms(at(1000))) == ["same"]


class CountingEngine(WaybillEngine):
    """Counts how many waybills a tick hands to the engine."""

    calls = 0

    def on_due(self, state: WaybillState, now: datetime) -> Outcome:
        CountingEngine.calls += 1
        return super().on_due(state, now)


def test_a_tick_with_ten_due_among_100000_active_waybills_examines_ten() -> None:
    engine = CountingEngine(DetectionSettings())
    index = InMemoryDeadlineIndex()
    states: dict[str, WaybillState] = {}
    due_for_scan_time: dict[datetime, datetime | None] = {}  # engine's due per last-scan time
    for i in range(100_000):
        waybill = f"YT{i:013d}"
        if i % 10_000 == 0:  # ten waybills last scanned at T0: due at +48 h
            out = engine.on_update(None, push(scan("in_transit", at(0), waybill=waybill)), at(0))
            states[waybill] = out.state
            index.schedule_ms(waybill, ms(out.next_due))
            continue
        when = at(1 + i % 40, i % 60)  # the rest: last scans spread over later hours
        if when not in due_for_scan_time:
            out = engine.on_update(None, push(scan("in_transit", when)), when)
            due_for_scan_time[when] = out.next_due
        index.schedule_ms(waybill, ms(due_for_scan_time[when]))
    assert len(index) == 100_000

    examined_before = index.examined
    calls_before = CountingEngine.calls
    due = index.pop_due_ms(to_ms(at(48, 30)))
    assert len(due) == 10
    for waybill in due:
        out = engine.on_due(states[waybill], at(48, 30))
        assert [e.type for e in out.anomalies] == ["transit_stall"]
        index.schedule_ms(waybill, ms(out.next_due))
    assert CountingEngine.calls - calls_before == 10
    assert index.examined - examined_before == 10
    assert len(index) == 100_000 - 10


class DictKv:
    """The ``Kv`` port on a dict (the worker's is a RocksDB transaction)."""

    def __init__(self) -> None:
        self.data: dict[str, bytes] = {}
        self.reads = 0

    def get(self, key: str) -> bytes | None:
        self.reads += 1
        return self.data.get(key)

    def set(self, key: str, value: bytes) -> None:
        self.data[key] = value

    def delete(self, key: str) -> None:
        self.data.pop(key, None)


def test_bucket_index_pops_exactly_the_due_entries_in_due_then_key_order() -> None:
    index = BucketDeadlineIndex(DictKv())
    base = 1_764_000_000_000
    for key, offset in (("c", 2_000), ("b", 2_000), ("a", 3_000), ("d", 1_000), ("e", 90_000)):
        index.schedule_ms(key, base + offset)
    assert index.pop_due_ms(base + 999) == []
    assert index.pop_due_ms(base + 3_000) == ["d", "b", "c", "a"]
    assert index.pop_due_ms(base + 3_000) == []  # popped entries are gone
    assert index.pop_due_ms(base + 90_000) == ["e"]


def test_bucket_index_is_lazy_and_a_jump_of_months_reads_only_non_empty_buckets() -> None:
    kv = DictKv()
    index = BucketDeadlineIndex(kv)
    base = 1_764_000_000_000
    index.schedule_ms("w", base)
    index.schedule_ms("w", base + 86_400_000)  # re-scheduled: the old entry stays (lazy)
    index.schedule_ms("w", base)  # the same entry twice is stored once
    kv.reads = 0
    assert index.pop_due_ms(base + 200 * 86_400_000) == ["w", "w"]  # the runner checks each
    assert kv.reads < 10
    assert kv.data == {}  # empty buckets and directories are deleted


def test_bucket_index_keeps_later_entries_of_a_partly_elapsed_bucket() -> None:
    index = BucketDeadlineIndex(DictKv())
    base = 1_764_000_000_000 - 1_764_000_000_000 % 60_000
    index.schedule_ms("early", base + 10_000)
    index.schedule_ms("late", base + 50_000)
    assert index.pop_due_ms(base + 30_000) == ["early"]
    assert index.pop_due_ms(base + 30_000) == []
    assert index.pop_due_ms(base + 50_000) == ["late"]


class MeteredKv(DictKv):
    """Counts the bytes read and written (a changelog record per value written)."""

    def __init__(self) -> None:
        super().__init__()
        self.bytes_read = 0
        self.bytes_written = 0

    def get(self, key: str) -> bytes | None:
        value = super().get(key)
        self.bytes_read += len(value or b"")
        return value

    def set(self, key: str, value: bytes) -> None:
        self.bytes_written += len(value)
        super().set(key, value)


def test_a_busy_minute_costs_the_same_per_deadline_as_a_quiet_one() -> None:
    """A live worker schedules every new waybill's deadline into the same minute (48 h from
    now); scheduling, and popping them as the clock passes, must not read or rewrite the
    whole minute each time."""
    kv = MeteredKv()
    index = BucketDeadlineIndex(kv)
    base = 1_764_000_000_000 - 1_764_000_000_000 % 60_000
    costs = []
    for i in range(20_000):  # one every 3 ms: 20,000 in one minute
        before = kv.bytes_read + kv.bytes_written
        index.schedule_ms(f"YT{i:013d}", base + 3 * i)
        costs.append(kv.bytes_read + kv.bytes_written - before)
    assert max(costs[-1000:]) < 20_000  # about two chunks of 128 entries, not 20,000 entries
    popped: list[str] = []
    pop_costs = []
    for step in range(1, 601):  # the clock passes the minute in 100 ms steps
        before = kv.bytes_read + kv.bytes_written
        popped += index.pop_due_ms(base + 100 * step - 1)
        pop_costs.append(kv.bytes_read + kv.bytes_written - before)
    assert popped == [f"YT{i:013d}" for i in range(20_000)]
    assert max(pop_costs) < 40_000
    assert kv.data == {}


def test_a_bucket_written_before_chunks_is_still_popped() -> None:
    kv = DictKv()
    index = BucketDeadlineIndex(kv)
    base = 1_764_000_000_000 - 1_764_000_000_000 % 60_000
    bucket = base // 60_000
    kv.set(f"b{bucket}", b'[["old-late",%d],["old-early",%d]]' % (base + 40_000, base + 5_000))
    kv.set(f"g{bucket // 60}", b"[%d]" % bucket)
    kv.set("top", b"[%d]" % (bucket // 60))
    index.schedule_ms("new", base + 20_000)
    assert index.pop_due_ms(base + 30_000) == ["old-early", "new"]
    assert index.pop_due_ms(base + 59_999) == ["old-late"]
    assert kv.data == {}
