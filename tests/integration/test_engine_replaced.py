"""A Kafka error inside the stream engine replaces the engine in the same process (what the
fault harness saw after broker restarts: ``UNKNOWN_MEMBER_ID`` while a transaction committed
offsets, ``INVALID_TXN_STATE``): the worker does not exit, the failed record is processed once
by the new engine, and the waybill state written before the failure is still there.

The worker runs in this process, on the test's main thread (quix-streams installs signal
handlers), as ``waybill-watch worker`` runs it (``Worker.run``);
a side thread produces the input, reads the outputs and stops it. The error is raised once by
the normalize stage, on one envelope, as librdkafka raises it from a commit.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer
from prometheus_client import CollectorRegistry

from waybill_watch.feeds import encode
from waybill_watch.jsonio import dumps
from waybill_watch.metrics import Metrics
from waybill_watch.settings import Settings
from waybill_watch.worker.app import create_worker
from waybill_watch.worker.stages import NormalizeStage
from waybill_watch.worker.topics import ensure_topics

from .conftest import recent_daytime

pytestmark = pytest.mark.integration

SHANGHAI = ZoneInfo("Asia/Shanghai")
H = timedelta(hours=1)
WAIT_S = 120.0


def trace(at: datetime, text: str, action: str) -> dict[str, str]:
    return {"AcceptTime": encode.local_time_text(at), "AcceptStation": text, "Action": action}


def envelope(waybill: str, traces: list[dict[str, str]]) -> bytes:
    push = encode.kdniao_push(
        [{"ShipperCode": "ZTO", "LogisticCode": waybill, "State": "2", "Traces": traces}], None
    )
    return dumps(encode.envelope("kdniao", push, datetime.now(SHANGHAI)))


class Outputs:
    """Reads ``tracking.events`` and ``anomalies`` (read_committed) in the side thread."""

    def __init__(self, bootstrap: str, topics: list[str]) -> None:
        self.consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": f"reader-{uuid.uuid4().hex}",
                "auto.offset.reset": "earliest",
                "isolation.level": "read_committed",
                "enable.auto.commit": False,
            }
        )
        self.consumer.subscribe(topics)
        self.records: list[tuple[str, dict[str, Any]]] = []

    def until(self, done: Callable[[list[tuple[str, dict[str, Any]]]], bool]) -> None:
        deadline = time.monotonic() + WAIT_S
        while not done(self.records):
            if time.monotonic() > deadline:
                raise TimeoutError(f"outputs so far: {self.records}")
            message = self.consumer.poll(0.5)
            if message is not None and message.error() is None and message.value():
                self.records.append((message.topic(), orjson.loads(message.value())))

    def drain(self, seconds: float) -> None:
        """Keep reading for ``seconds``."""
        deadline = time.monotonic() + seconds
        self.until(lambda _: time.monotonic() > deadline)

    def of(self, topic: str, waybill: str) -> list[dict[str, Any]]:
        return [r for t, r in self.records if t == topic and r.get("waybill") == waybill]


def test_a_kafka_error_replaces_the_engine_and_nothing_is_lost_or_doubled(
    kafka_bootstrap: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = Settings(
        kafka_bootstrap_servers=kafka_bootstrap,
        topic_prefix=f"r{uuid.uuid4().hex[:8]}.",
        partitions=2,
        data_dir=tmp_path / "data",
    )
    asyncio.run(ensure_topics(settings))
    # its own registry: the process-wide one may hold another test's worker (registered once)
    worker = create_worker(settings, Metrics(CollectorRegistry()))
    names = worker.names
    run_id = uuid.uuid4().hex[:8].upper()
    before, failing = f"ZTA{run_id}", f"ZTB{run_id}"

    armed = threading.Event()
    raw = NormalizeStage.raw

    def raw_failing_once(self: NormalizeStage, value: bytes, partition: int, offset: int) -> None:
        if armed.is_set() and failing.encode() in value:
            armed.clear()
            raise KafkaException(KafkaError(KafkaError.UNKNOWN_MEMBER_ID, "Unknown member"))
        raw(self, value, partition, offset)

    monkeypatch.setattr(NormalizeStage, "raw", raw_failing_once)

    t0 = recent_daytime()
    picked = trace(t0, "【上海青浦】快件已揽收", "1")
    errors: list[BaseException] = []
    outputs = Outputs(kafka_bootstrap, [names.events, names.anomalies])

    def drive() -> None:
        producer = Producer({"bootstrap.servers": kafka_bootstrap, "acks": "all"})
        try:
            producer.produce(names.raw, envelope(before, [picked]))
            producer.flush(30)
            outputs.until(lambda _: len(outputs.of(names.events, before)) == 1)

            armed.set()
            producer.produce(
                names.raw,
                envelope(
                    failing,
                    [
                        trace(t0, "【上海青浦】快件已揽收", "1"),
                        trace(t0 + H, "【杭州西湖】快件正在派送中", "202"),
                        trace(t0 + 2 * H, "【杭州西湖】客户拒收", "404"),
                    ],
                ),
            )
            # the first waybill again: its first scan is known (the state survived) and the
            # rejection opens an exception
            producer.produce(
                names.raw,
                envelope(
                    before,
                    [
                        picked,
                        trace(t0 + H, "【杭州西湖】快件正在派送中", "202"),
                        trace(t0 + 2 * H, "【杭州西湖】客户拒收", "404"),
                    ],
                ),
            )
            producer.flush(30)
            outputs.until(
                lambda _: (
                    bool(outputs.of(names.anomalies, failing))
                    and bool(outputs.of(names.anomalies, before))
                )
            )
            outputs.drain(5.0)  # anything doubled would be committed and read by now
        except BaseException as exc:
            errors.append(exc)
        finally:
            outputs.consumer.close()
            worker.app.stop()

    side = threading.Thread(target=drive, name="drive", daemon=True)
    side.start()
    worker.run(pause=0.5)
    side.join(30)
    assert not errors, errors

    restarts = worker.metrics.registry.get_sample_value(
        "waybill_watch_engine_restarts_total", {"error": "UNKNOWN_MEMBER_ID"}
    )
    assert restarts == 1
    assert armed.is_set() is False  # the error was raised
    # the failed envelope was processed once, by the new engine
    assert sorted(e["status"] for e in outputs.of(names.events, failing)) == [
        "out_for_delivery",
        "picked_up",
        "rejected",
    ]
    assert [a["status"] for a in outputs.of(names.anomalies, failing)] == ["open"]
    # the first waybill's state from before the replacement: no scan forwarded twice
    assert sorted(e["status"] for e in outputs.of(names.events, before)) == [
        "out_for_delivery",
        "picked_up",
        "rejected",
    ]
    assert [a["type"] for a in outputs.of(names.anomalies, before)] == ["delivery_exception"]
