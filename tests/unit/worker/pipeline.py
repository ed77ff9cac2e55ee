"""The worker's stages wired in-process: in-memory topics and partition transactions, no broker.

Records go to per-partition FIFO logs; ``drain`` consumes them in an interleaving chosen by the
test (a shuffled order of partitions, in chunks), the way a consumer of several partitions does.
"""

from __future__ import annotations

import random
import zlib
from collections import deque
from typing import Any

from prometheus_client import CollectorRegistry

from waybill_watch.domain.aggregates import AggregateEngines
from waybill_watch.domain.config import DetectionSettings
from waybill_watch.domain.engine import WaybillEngine
from waybill_watch.domain.runner import (
    AggregateHandler,
    AggregateRunner,
    WaybillHandler,
    WaybillRunner,
)
from waybill_watch.feeds import build_feeds
from waybill_watch.metrics import Metrics
from waybill_watch.settings import Settings
from waybill_watch.worker import codec
from waybill_watch.worker.outputs import Outputs
from waybill_watch.worker.ports import KafkaEffects
from waybill_watch.worker.stages import (
    AggregateStage,
    NormalizeStage,
    Progress,
    WaybillStage,
    clock_of,
    send_signals,
)
from waybill_watch.worker.topics import TopicNames


class DictTransaction:
    """A partition's store: ``(prefix, key) -> bytes``."""

    def __init__(self) -> None:
        self.data: dict[tuple[bytes, bytes], bytes] = {}

    def get_bytes(self, key: Any, prefix: bytes) -> bytes | None:
        return self.data.get((prefix, key))

    def set_bytes(self, key: Any, value: bytes, prefix: bytes) -> None:
        self.data[(prefix, key)] = value

    def delete(self, key: Any, prefix: bytes) -> None:
        self.data.pop((prefix, key), None)


class Pipeline:
    """normalize → updates partitions → waybill stage → signals partitions → site/courier."""

    def __init__(self, partitions: int = 4, seed: int = 1, chunk: int = 50) -> None:
        settings = Settings(allow_unsigned=True, partitions=partitions)
        self.names = TopicNames.from_settings(settings)
        self.partitions = partitions
        self.random = random.Random(seed)
        self.chunk = chunk
        self.logs: dict[str, list[deque[tuple[bytes | None, bytes, Any]]]] = {
            name: [deque() for _ in range(partitions)] for name in self.names.all()
        }
        self.out: dict[str, list[bytes]] = {name: [] for name in self.names.all()}
        self.metrics = Metrics(CollectorRegistry())
        outputs = Outputs(
            self.send, self.metrics, anomalies=self.names.anomalies, dlq=self.names.dlq
        )
        feeds = build_feeds(settings)
        self.normalize = NormalizeStage(
            feeds,
            self.send,
            outputs,
            self.metrics,
            Progress(),
            self.names,
            timezone=settings.default_timezone,
            origin=b"test",
        )
        effects = KafkaEffects(
            self.send,
            outputs,
            self.metrics,
            events_topic=self.names.events,
            signals_topic=self.names.signals,
            origin=b"test",
            partitions=partitions,
        )
        self.effects = effects
        detection = DetectionSettings()
        self.waybills = WaybillStage(
            WaybillRunner(WaybillHandler(WaybillEngine(detection))),
            effects,
            self.metrics,
            timezone=settings.default_timezone,
            feeds=feeds,
            topic=self.names.updates,
        )
        self.aggregates = AggregateStage(
            AggregateRunner(AggregateHandler(AggregateEngines(detection))),
            effects,
            sources=partitions,
            timezone=settings.default_timezone,
        )
        self._sent: dict[int, int] = {}
        self.stores = {
            name: [DictTransaction() for _ in range(partitions)]
            for name in (self.names.updates, self.names.signals)
        }

    def partition_of(self, key: bytes | None) -> int:
        return zlib.crc32(key or b"") % self.partitions

    def send(self, topic: str, key: bytes | None, value: bytes, headers: Any) -> None:
        self.out[topic].append(value)
        if topic in self.logs:
            self.logs[topic][self.partition_of(key)].append((key, value, headers))

    def produce_to(self, topic: str, key: bytes, value: bytes, partition: int) -> None:
        self.logs[topic][partition].append((key, value, None))

    def raw(self, lines: list[bytes], tick_every: int = 0) -> None:
        """Normalise a capture on ``raw/0``; every ``tick_every`` records the ticker's mark."""
        for offset, line in enumerate(lines):
            self.normalize.raw(line, 0, offset)
            if tick_every and offset % tick_every == tick_every - 1:
                self.tick("raw/0", self.normalize.progress.received["raw/0"], False)

    def drain(self) -> None:
        """Consume the internal topics until nothing moves, partitions interleaved at random;
        now and then (and at the end) the ticker passes the waybill partitions' clocks on."""
        while self._consume():
            self.forward()

    def forward(self) -> None:
        """What the ticker does for the waybill partitions: the signals waiting in their
        outboxes, then their clocks, to every signals partition."""
        for p, tx in enumerate(self.stores[self.names.updates]):
            send_signals(self.effects.outbox, tx, p, self.produce_to, self.names.signals)
        clocks = {
            f"w/{p}": (clock, False)
            for p, tx in enumerate(self.stores[self.names.updates])
            if (clock := clock_of(tx)) is not None and self._sent.get(p) != clock
        }
        if clocks:
            self._sent.update({int(src[2:]): mark[0] for src, mark in clocks.items()})
            value = codec.encode_tick(clocks)
            for p in range(self.partitions):
                self.produce_to(self.names.signals, b"__tick__", value, p)

    def _consume(self) -> bool:
        """Consume until every log is empty; False when there was nothing to consume."""
        updates, signals = self.names.updates, self.names.signals
        consumed = False
        while True:
            busy = [
                (topic, p)
                for topic in (updates, signals)
                for p in range(self.partitions)
                if self.logs[topic][p]
            ]
            if not busy:
                return consumed
            consumed = True
            if self.random.random() < 0.2:
                self.forward()
            topic, p = self.random.choice(busy)
            log = self.logs[topic][p]
            stage = self.waybills if topic == updates else self.aggregates
            for _ in range(self.random.randint(1, self.chunk)):
                if not log:
                    break
                _, value, _ = log.popleft()
                stage.handle(self.stores[topic][p], p, value)

    def tick(self, src: str, ms: int, idle: bool) -> None:
        """The ticker's mark of one source, to every updates partition."""
        value = codec.encode_tick({src: (ms, idle)})
        for p in range(self.partitions):
            self.produce_to(self.names.updates, b"__tick__", value, p)
