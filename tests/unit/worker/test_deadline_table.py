"""The table-backed deadline index: exact firing, lazy re-scheduling, O(due) ticks."""

from datetime import datetime, timedelta, timezone

from waybill_watch.worker.deadline_table import TableDeadlineIndex

CST = timezone(timedelta(hours=8))
T0 = datetime(2026, 11, 26, 10, 0, 3, tzinfo=CST)


class CountingDict(dict[bytes, bytes]):
    """A dict that counts reads, standing in for a Faust table."""

    reads = 0

    def get(self, key, default=None):  # type: ignore[no-untyped-def, override]
        self.reads += 1
        return super().get(key, default)


def test_fires_exactly_when_the_clock_passes_the_due_time() -> None:
    index = TableDeadlineIndex({}, partition=0)
    index.schedule("W1", T0 + timedelta(seconds=5), now=T0)
    assert index.pop_due(T0 + timedelta(seconds=4)) == []
    popped = index.pop_due(T0 + timedelta(seconds=5))
    assert popped == [("W1", (T0 + timedelta(seconds=5)).timestamp())]
    assert index.pop_due(T0 + timedelta(hours=1)) == []  # popped entries are gone


def test_past_due_fires_on_next_pop_and_order_is_by_due_then_key() -> None:
    index = TableDeadlineIndex({}, partition=3)
    index.pop_due(T0)  # establishes the cursor
    index.schedule("B", T0 - timedelta(hours=1), now=T0)
    index.schedule("A", T0 + timedelta(seconds=30), now=T0)
    index.schedule("C", T0 + timedelta(seconds=30), now=T0)
    keys = [k for k, _ in index.pop_due(T0 + timedelta(minutes=1))]
    assert keys == ["B", "A", "C"]


def test_partitions_do_not_see_each_others_deadlines() -> None:
    table: dict[bytes, bytes] = {}
    p0, p1 = TableDeadlineIndex(table, 0), TableDeadlineIndex(table, 1)
    p0.schedule("W0", T0 + timedelta(seconds=1), now=T0)
    p1.schedule("W1", T0 + timedelta(seconds=1), now=T0)
    assert [k for k, _ in p0.pop_due(T0 + timedelta(seconds=2))] == ["W0"]
    assert [k for k, _ in p1.pop_due(T0 + timedelta(seconds=2))] == ["W1"]


def test_rescheduling_twice_keeps_both_entries_for_lazy_deletion() -> None:
    index = TableDeadlineIndex({}, partition=0)
    first, second = T0 + timedelta(seconds=20), T0 + timedelta(seconds=40)
    index.schedule("W", first, now=T0)
    index.schedule("W", second, now=T0)
    index.schedule("W", second, now=T0)  # idempotent
    popped = index.pop_due(T0 + timedelta(minutes=5))
    assert popped == [("W", first.timestamp()), ("W", second.timestamp())]


def test_tick_cost_is_proportional_to_elapsed_buckets_not_to_scheduled_keys() -> None:
    table = CountingDict()
    index = TableDeadlineIndex(table, partition=0)
    index.pop_due(T0)
    for i in range(100_000):
        index.schedule(f"W{i:06d}", T0 + timedelta(hours=48, seconds=i % 3600), now=T0)
    for i in range(10):
        index.schedule(f"DUE{i}", T0 + timedelta(seconds=30 + i), now=T0)
    table.reads = 0
    due = index.pop_due(T0 + timedelta(minutes=1))
    assert sorted(k for k, _ in due) == [f"DUE{i}" for i in range(10)]
    # cursor + the ~6 ten-second buckets of that minute, read once to list and once to remove
    assert table.reads <= 20


def test_due_is_read_only_until_remove() -> None:
    index = TableDeadlineIndex({}, partition=0)
    index.schedule("W", T0 + timedelta(seconds=5), now=T0)
    later = T0 + timedelta(seconds=6)
    due = index.due(later)
    assert [k for k, _ in due] == ["W"]
    assert index.due(later) == due  # still there: nothing was removed
    index.remove(due, later)
    assert index.due(later) == []


def test_an_entry_scheduled_while_handling_a_tick_is_not_lost() -> None:
    index = TableDeadlineIndex({}, partition=0)
    index.pop_due(T0)
    index.schedule("A", T0 + timedelta(seconds=15), now=T0)
    tick = T0 + timedelta(minutes=2)
    due = index.due(tick)
    # handling A schedules B with a due time that has already passed
    index.schedule("B", T0 + timedelta(seconds=20), now=tick)
    index.remove(due, tick)
    assert [k for k, _ in index.due(tick)] == ["B"]
