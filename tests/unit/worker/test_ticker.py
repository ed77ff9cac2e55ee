"""The ticker: each source's mark, from the consumer's position; away from the state while
quix-streams restores it.

quix-streams assigns partitions inside the consumer's poll and restores their stores from the
changelogs on the next turn of its loop; periodic tasks (the ticker) run in between. Under
exactly-once a tick then wrote its record into a waybill partition's store that was not
restored yet; committed, that write stamped the store with the changelog's latest offset and
the restore skipped everything before it (the kill loop lost a partition's state)."""

from __future__ import annotations

import time
from typing import Any, NamedTuple

from prometheus_client import CollectorRegistry

from waybill_watch.metrics import Metrics
from waybill_watch.settings import Settings
from waybill_watch.worker import codec
from waybill_watch.worker.stages import Progress, Ticker
from waybill_watch.worker.topics import TopicNames


class TP(NamedTuple):
    topic: str
    partition: int


class Offset(NamedTuple):
    offset: int


class Consumer:
    """What the ticker asks the consumer: its assignment, each partition's end, where it is."""

    def __init__(self, assignment: list[TP]) -> None:
        self._assignment = assignment
        self.high: dict[TP, int] = {}
        #: The next offset the app gets (librdkafka's position: -1001 until a fetch).
        self.positions: dict[TP, int] = {}
        self.committed_offsets: dict[TP, int] = {}
        self.committed_asked: list[TP] = []

    def assignment(self) -> list[TP]:
        return self._assignment

    def get_watermark_offsets(self, tp: TP, **_: Any) -> tuple[int, int]:
        return 0, self.high.get(tp, 100)

    def position(self, tps: list[TP]) -> list[Offset]:
        return [Offset(self.positions.get(tp, -1001)) for tp in tps]

    def committed(self, tps: list[TP], timeout: float = 0) -> list[Offset]:
        self.committed_asked.extend(tps)
        return [Offset(self.committed_offsets.get(tp, -1001)) for tp in tps]


class Recorder:
    def __init__(self, names: TopicNames, *, restored: bool) -> None:
        self.restored = restored
        self.produced: list[tuple[str, int, dict[str, Any]]] = []
        self.recorded: list[int] = []
        self.clock_reads: list[int] = []
        self.flushed: list[int] = []
        self.metrics = Metrics(CollectorRegistry())
        progress = Progress()
        progress.note("raw/0", 1_000_000)  # behind: 10 of 100 records read
        assignment = [TP(names.raw, 0), TP(names.updates, 0), TP(names.updates, 1)]
        self.consumer = Consumer(assignment)
        self.consumer.positions[TP(names.raw, 0)] = 10
        self.ticker = Ticker(
            self.consumer,
            self.produce,
            self.recorded.append,
            self.clock_of,
            self.flush,
            progress,
            names,
            self.metrics,
            partitions=2,
            stream=True,
            interval=60.0,
            restored=lambda: self.restored,
        )

    def produce(self, topic: str, key: bytes, value: bytes, partition: int) -> None:
        self.produced.append((topic, partition, codec.decode(value)[2]))

    def flush(self, partition: int) -> None:
        self.flushed.append(partition)
        self.produced.append(("outbox", partition, None))

    def clock_of(self, partition: int) -> int | None:
        self.clock_reads.append(partition)
        return 2_000_000 + partition


def test_the_ticker_waits_until_the_state_is_restored_then_ticks_at_once() -> None:
    names = TopicNames.from_settings(Settings())
    rec = Recorder(names, restored=False)

    rec.ticker()
    assert rec.produced == [] and rec.recorded == [] and rec.clock_reads == []
    assert rec.flushed == []  # the outboxes are state too

    rec.restored = True
    rec.ticker()  # at once: a tick skipped while restoring does not start the interval
    marks = {"raw/0": [1_000_000, False]}
    clocks = {"w/0": [2_000_000, False], "w/1": [2_000_001, False]}
    assert rec.produced == [
        ("outbox", 0, None),  # a partition's signals go before the clock that vouches for them
        ("outbox", 1, None),
        (names.updates, 0, marks),
        (names.updates, 1, marks),
        (names.signals, 0, clocks),
        (names.signals, 1, clocks),
    ]
    assert rec.recorded == [0]
    assert sorted(rec.clock_reads) == [0, 1]
    assert rec.flushed == [0, 1]


# -- marks: caught up is the consumer's position at the partition's end ----------------------


class Marks:
    """A wall-clock ticker over ``tracking.events`` partition 0, ticking on every call."""

    def __init__(self) -> None:
        self.names = names = TopicNames.from_settings(Settings())
        self.tp = TP(names.events, 0)
        self.consumer = Consumer([self.tp, TP(names.updates, 0)])
        self.progress = Progress()
        self.ticks: list[dict[str, Any]] = []
        self.ticker = Ticker(
            self.consumer,
            self.produce,
            None,
            lambda partition: None,
            lambda partition: None,
            self.progress,
            names,
            Metrics(CollectorRegistry()),
            partitions=1,
            stream=False,
            interval=0.0,
            restored=lambda: True,
        )

    def produce(self, topic: str, key: bytes, value: bytes, partition: int) -> None:
        if topic == self.names.updates:
            self.ticks.append(codec.decode(value)[2])

    def tick(self) -> list[Any] | None:
        """The mark this tick sent for ``events/0`` (None: none)."""
        self.ticks.clear()
        self.ticker()
        marks = [t["events/0"] for t in self.ticks if "events/0" in t]
        return marks[0] if marks else None


def test_a_source_whose_last_records_the_stages_skipped_is_caught_up_at_every_tick() -> None:
    """The regression: the worker's own forwarded scans on ``tracking.events`` (skipped by the
    stage, never noted) left the source looking behind from the second tick on, so it sent no
    mark again and every waybill partition's clock stayed at the first tick's."""
    m = Marks()
    m.consumer.high[m.tp] = 5
    m.consumer.positions[m.tp] = 5
    before = int(time.time() * 1000)
    first = m.tick()
    assert first is not None and first[1] is False and first[0] >= before
    # Three more of our own scans were forwarded and read (skipped), then a commit marker:
    # the position is past the marker, the end of the partition.
    m.consumer.high[m.tp] = 9
    m.consumer.positions[m.tp] = 9
    time.sleep(0.005)
    second = m.tick()
    assert second is not None and second[0] > first[0], (first, second)


def test_a_source_behind_marks_what_was_read_last_or_nothing() -> None:
    m = Marks()
    m.consumer.high[m.tp] = 9
    m.consumer.positions[m.tp] = 4
    assert m.tick() is None  # nothing of it used yet: it says nothing (the clock waits)
    m.progress.note("events/0", 1_000_000)
    assert m.tick() == [1_000_000, False]
    m.consumer.positions[m.tp] = 9
    caught_up = m.tick()
    assert caught_up is not None and caught_up[0] > 1_000_000


def test_before_the_first_fetch_the_committed_offset_is_asked_once_per_assignment() -> None:
    """An idle partition's position stays unknown (nothing fetched): the group's committed
    offset stands for it, asked of the broker once, not every tick; again after a revoke."""
    m = Marks()
    m.consumer.high[m.tp] = 7
    m.consumer.committed_offsets[m.tp] = 7
    assert m.tick() is not None
    assert m.tick() is not None
    assert m.consumer.committed_asked == [m.tp]
    m.consumer.committed_offsets[m.tp] = 3  # another worker's commit while it owned it... then
    m.ticker.revoked([m.tp])  # back to us, behind
    assert m.tick() is None
    assert m.consumer.committed_asked == [m.tp, m.tp]


def test_no_committed_offset_and_nothing_fetched_says_nothing() -> None:
    m = Marks()
    m.consumer.high[m.tp] = 7
    assert m.tick() is None
    m.consumer.high[m.tp] = 0  # an empty partition is caught up, whatever the position
    assert m.tick() is not None
