"""Signals travel in batches: kept in the waybill partition's outbox, sent by the ticker one
record per signals partition, queued at the site/courier partition one entry per batch."""

from __future__ import annotations

import struct
from datetime import UTC, datetime
from typing import Any

import orjson
from prometheus_client import CollectorRegistry

from waybill_watch.domain.aggregates import AggregateEngines
from waybill_watch.domain.config import DetectionSettings
from waybill_watch.domain.runner import AggregateHandler, AggregateRunner
from waybill_watch.domain.signals import Signal, SignalKind
from waybill_watch.metrics import Metrics
from waybill_watch.worker import codec
from waybill_watch.worker.outputs import Outputs
from waybill_watch.worker.ports import KafkaEffects, SignalOutbox, TransactionKv
from waybill_watch.worker.stages import AggregateStage, SignalQueues, send_signals

from .pipeline import DictTransaction as DictTx


def _java_partition(java_hash: int, partitions: int) -> int:
    """Kafka's default partitioner: ``Utils.toPositive(Utils.murmur2(key)) % partitions``."""
    return (java_hash & 0x7FFFFFFF) % partitions


def test_a_signal_goes_to_the_partition_kafkas_default_partitioner_picks() -> None:
    # murmur2 of these keys as Kafka's UtilsTest.testMurmur2 states them (Java ints)
    vectors = {
        b"21": -973932308,
        b"foobar": -790332482,
        b"a-little-bit-long-string": -985981536,
        b"a-little-bit-longer-string": -1486304829,
        b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
        b"abc": 479470107,
    }
    for partitions in (1, 3, 8, 12):
        outbox = SignalOutbox(partitions)
        for key, java_hash in vectors.items():
            assert outbox.partition_of(key) == _java_partition(java_hash, partitions), key


def _signal(courier: str, minute: int, kind: SignalKind = SignalKind.UPDATE_RECEIVED) -> Signal:
    at = datetime(2026, 12, 1, 8, minute, tzinfo=UTC)
    return Signal(kind=kind, key=courier, courier=courier, at=at)


def _record(signal: Signal, src: str = "w/0") -> bytes:
    return codec.encode_signal(signal, signal.at, src)


def test_the_outbox_keeps_records_by_partition_in_order_until_taken() -> None:
    tx, outbox = DictTx(), SignalOutbox(8)
    keys = [b"SF", b"ZTO", b"SF", b"YTO", b"ZTO", b"SF"]
    records = [_record(_signal(k.decode(), i)) for i, k in enumerate(keys)]
    for key, record in zip(keys, records, strict=True):
        outbox.add(tx, key, record)
    (value,) = tx.data.values()
    (first8,) = struct.unpack_from(">Q", value)
    assert first8 >= 2**56  # never read as a quix-streams TTL stamp
    taken = outbox.take(tx)
    expected: dict[int, list[bytes]] = {}
    for key, record in zip(keys, records, strict=True):
        expected.setdefault(outbox.partition_of(key), []).append(record)
    assert taken == expected
    assert tx.data == {} and outbox.take(tx) == {}


def test_the_waybill_side_sends_one_batch_per_partition_named_by_its_source() -> None:
    tx, outbox = DictTx(), SignalOutbox(4)
    signals = [_signal(c, i) for i, c in enumerate(["SF", "ZTO", "SF", "JD", "SF"])]
    for signal in signals:
        outbox.add(tx, signal.key.encode(), _record(signal, "w/3"))
    produced: list[tuple[str, int, Any]] = []

    def produce(topic: str, key: bytes, value: bytes, partition: int) -> None:
        produced.append((topic, partition, codec.peek(value)))

    send_signals(outbox, tx, 3, produce, "signals")
    partitions = {outbox.partition_of(s.key.encode()) for s in signals}
    assert sorted(p for _, p, _ in produced) == sorted(partitions)
    sent: list[Signal] = []
    for topic, partition, (kind, src, docs) in produced:
        assert (topic, kind, src) == ("signals", codec.BATCH, "w/3")
        batch = [codec.signal_of(doc)[0] for doc in docs]
        assert all(outbox.partition_of(s.key.encode()) == partition for s in batch)
        assert batch == [s for s in signals if s in batch]  # decision order kept
        sent += batch
    assert sorted(sent, key=lambda s: s.at) == signals


def _batch(src: str, signals: list[Signal]) -> bytes:
    return codec.encode_batch(src, [_record(s, src) for s in signals])


def _ms(minute: int) -> int:
    return int(datetime(2026, 12, 1, 8, minute, tzinfo=UTC).timestamp() * 1000)


def test_queues_release_across_batches_by_clock_then_source() -> None:
    tx = DictTx()
    queues = SignalQueues(TransactionKv(tx, b"q"))
    a = [_signal("SF", m) for m in (1, 4, 7)]
    b = [_signal("ZTO", m) for m in (2, 3, 9)]
    for src, batch in (("w/0", a), ("w/1", b)):
        record = _batch(src, batch)
        queues.push(src, codec.peek(record)[2], record)
    released = queues.release(_ms(4))
    assert [codec.signal_of(d)[0] for d in released] == [a[0], b[0], b[1], a[1]]
    # what is left is written back: a new reader (the next record) goes on from there
    again = SignalQueues(TransactionKv(tx, b"q"))
    rest = again.release(_ms(59))
    assert [codec.signal_of(d)[0] for d in rest] == [a[2], b[2]]
    assert set(tx.data) == {(b"q", b"h")}  # every entry consumed


def test_queue_entries_and_records_of_earlier_versions_are_still_applied() -> None:
    """Before batches a queue entry held one signal (tag, clock, record) and the topic
    carried one record per signal: both are read after an upgrade."""
    tx = DictTx()
    old = _signal("SF", 1)
    header = {"w/0": [0, 1, _ms(1)]}
    tx.set_bytes(b"h", orjson.dumps(header), b"q")
    tx.set_bytes(b"w/0/0", b"\x01" + struct.pack(">q", _ms(1)) + _record(old), b"q")
    applied: list[Signal] = []
    stage = _stage(applied)
    stage.handle(tx, 0, _record(_signal("SF", 5), "w/1"))  # a single record, as sent before
    assert applied == []  # the clock waits for every source
    stage.handle(tx, 0, codec.encode_tick({"w/0": (_ms(10), False), "w/1": (_ms(10), False)}))
    assert applied == [old, _signal("SF", 5)]


def _stage(applied: list[Signal]) -> AggregateStage:
    class Runner(AggregateRunner):
        def apply(self, ports: Any, key: str, item: Any, now: Any, *, clock: Any = None) -> Any:
            applied.append(item)
            return super().apply(ports, key, item, now, clock=clock)

    metrics = Metrics(CollectorRegistry())
    sent: list[Any] = []
    outputs = Outputs(lambda *a: sent.append(a), metrics, anomalies="a", dlq="d")
    effects = KafkaEffects(
        lambda *a: sent.append(a),
        outputs,
        metrics,
        events_topic="e",
        signals_topic="s",
        origin=b"o",
        partitions=2,
    )
    runner = Runner(AggregateHandler(AggregateEngines(DetectionSettings())))
    return AggregateStage(runner, effects, sources=2, timezone="Asia/Shanghai")
