"""The ticker stays away from the state while quix-streams restores it.

quix-streams assigns partitions inside the consumer's poll and restores their stores from the
changelogs on the next turn of its loop; periodic tasks (the ticker) run in between. Under
exactly-once a tick then wrote its record into a waybill partition's store that was not
restored yet; committed, that write stamped the store with the changelog's latest offset and
the restore skipped everything before it (the kill loop lost a partition's state)."""

from __future__ import annotations

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


class Consumer:
    """What the ticker asks the consumer: its assignment and the raw partition's end."""

    def __init__(self, assignment: list[TP]) -> None:
        self._assignment = assignment

    def assignment(self) -> list[TP]:
        return self._assignment

    def get_watermark_offsets(self, tp: TP, **_: Any) -> tuple[int, int]:
        return 0, 100


class Recorder:
    def __init__(self, names: TopicNames, *, restored: bool) -> None:
        self.restored = restored
        self.produced: list[tuple[str, int, dict[str, Any]]] = []
        self.recorded: list[int] = []
        self.clock_reads: list[int] = []
        self.flushed: list[int] = []
        self.metrics = Metrics(CollectorRegistry())
        progress = Progress()
        progress.note("raw/0", 1_000_000, 9)  # behind: 10 of 100 records read
        assignment = [TP(names.raw, 0), TP(names.updates, 0), TP(names.updates, 1)]
        self.ticker = Ticker(
            Consumer(assignment),
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
