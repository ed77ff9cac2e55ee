"""The worker on quix-streams: one ``Application``, five topic roots, RocksDB state with
changelogs; the contract's HTTP endpoints on an aiohttp loop in a side thread.

The stages are in ``stages.py``; this module only wires them. quix-streams' SDF steps are used
as plain per-record callbacks: each stage writes its outputs with the checkpoint's producer and
its state through the partition transaction (``ports.py``), so outputs, state, the deadline
index and the source offset commit together (one Kafka transaction with ``exactly-once``).
Three quix internals are used and pinned with the version (``quixstreams==3.28.1``): the
periodic-task hook of the dataframe registry (the ticker runs between records, on the engine's
thread, so its ticks are ordered with the outputs), the store transaction of a partition
under a prefix other than the message key (the deadline index and the clock are per partition)
and the state manager's ``recovery_required`` (the ticker waits while a store is restored).
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web
from quixstreams import Application, message_context
from quixstreams.dataframe import StreamingDataFrame
from quixstreams.state.rocksdb import RocksDBOptions

from waybill_watch.domain.aggregates import AggregateEngines
from waybill_watch.domain.engine import WaybillEngine
from waybill_watch.domain.runner import (
    AggregateHandler,
    AggregateRunner,
    WaybillHandler,
    WaybillRunner,
)
from waybill_watch.feeds import build_feeds
from waybill_watch.ingest import IngestService
from waybill_watch.kafka_client import kafka_connection
from waybill_watch.metrics import Metrics, default_metrics
from waybill_watch.query.api import QueryMetrics, WaybillQueries, add_query_routes
from waybill_watch.query.owners import OwnerDirectory, client_id
from waybill_watch.query.view import WaybillView
from waybill_watch.settings import Settings
from waybill_watch.tokens import TokenRegistry
from waybill_watch.web import add_routes, configure_edge
from waybill_watch.worker.local_states import LocalStates
from waybill_watch.worker.outputs import Outputs
from waybill_watch.worker.ports import KafkaEffects, Transaction
from waybill_watch.worker.publisher import RawPublisher
from waybill_watch.worker.restarts import PAUSE_S, run_replacing
from waybill_watch.worker.stages import (
    AggregateStage,
    NormalizeStage,
    Progress,
    Ticker,
    WaybillStage,
    clock_of,
    send_signals,
)
from waybill_watch.worker.telemetry import (
    STATS_INTERVAL_MS,
    ConsumerLag,
    hook_rebalances,
    owned_store_bytes,
)
from waybill_watch.worker.topics import TopicNames, engine_topic_manager

log = logging.getLogger(__name__)

BYTES = {
    "key_serializer": "bytes",
    "value_serializer": "bytes",
    "key_deserializer": "bytes",
    "value_deserializer": "bytes",
}


@dataclass
class Engine:
    """One quix-streams app with the stages wired in (``build_engine``)."""

    app: Application
    waybill_stream: str
    #: Drop the per-partition series of the partitions it owned (its replacement reports
    #: its own): called once the app stopped.
    release: Callable[[], None]


@dataclass
class Worker:
    """The assembled engine app and its HTTP side (tests and the demo use the parts).

    ``rebuild()`` replaces a failed engine in the same process: the HTTP side (ingest, the
    waybill queries, ``/metrics``) and the metrics stay, the queries read the new app's state."""

    engine: Engine
    names: TopicNames
    metrics: Metrics
    http: web.Application
    publisher: RawPublisher
    queries: WaybillQueries
    states: LocalStates
    settings: Settings

    @property
    def app(self) -> Application:
        return self.engine.app

    def rebuild(self) -> None:
        """A new engine after ``app.run()`` failed (its exit stack closed the consumer, the
        producer and the stores)."""
        self.engine.release()
        self.engine = build_engine(self.settings, self.metrics)
        self.states.bind(self.engine.app, self.engine.waybill_stream)

    def run(self, rebuild: Callable[[], object] | None = None, pause: float = PAUSE_S) -> None:
        """Run the engine until stopped, replacing it in this process after a Kafka error a
        new one may not meet (``restarts.py``): ``rebuild`` (``self.rebuild`` unless given,
        the CLI retries it) and ``waybill_watch_engine_restarts_total``."""
        run_replacing(
            lambda: self.app.run(),
            rebuild or self.rebuild,
            lambda reason: self.metrics.engine_restarts.labels(reason).inc(),
            pause=pause,
        )


#: Timeout of the engine's admin requests at start (quix-streams: 30 s). A restart while a
#: broker of the cluster is down sends ``DescribeConfigs`` to the broker the metadata still
#: names as controller, which times out until the controller fences it; each failed attempt is
#: retried with fresh metadata (``cli.create_worker_retrying``, 60 s), so short attempts find a
#: live broker sooner (30 s ones left two tries, and restarts then took over a minute).
ENGINE_REQUEST_TIMEOUT_S = 10.0

#: The worker instance's id, kept in its data dir (next to the RocksDB state of its group).
INSTANCE_FILE = "instance-id"


def producer_config(settings: Settings, group: str) -> dict[str, Any]:
    """librdkafka settings of the worker's producer beyond quix-streams' own.

    Under exactly-once the ``transactional.id`` is ``<group>-<instance id>`` and survives
    restarts (as Kafka Streams keeps its process id in its state dir). quix-streams would pick a
    random one per process: then the transaction a crashed worker left open is not fenced by
    its restart but runs until ``transaction.timeout.ms`` (60 s), and until then no
    ``read_committed`` consumer, the restarted worker's own included, reads past it on any
    partition it wrote to (internal topics, changelogs, outputs). With the same id the restart's
    ``InitProducerId`` aborts it at once. Workers must not share a data dir (they would fence
    each other); they cannot anyway, their RocksDB state would collide.
    """
    config: dict[str, Any] = {"linger.ms": settings.producer_linger_ms}
    if settings.processing_guarantee == "exactly-once":
        config["transactional.id"] = f"{group}-{instance_id(settings.data_dir)}"
    return config


def instance_id(data_dir: Path) -> str:
    """The id in ``<data_dir>/instance-id``, created on first use (an empty file counts as
    none: a crash between creating and writing it)."""
    path = data_dir / INSTANCE_FILE
    try:
        existing = path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        existing = ""
    if existing:
        return existing
    data_dir.mkdir(parents=True, exist_ok=True)
    fresh = uuid.uuid4().hex
    tmp = path.with_name(f".{INSTANCE_FILE}.{os.getpid()}")
    tmp.write_text(fresh + "\n", encoding="ascii")
    tmp.replace(path)
    return fresh


def consumer_config(settings: Settings) -> dict[str, Any]:
    """librdkafka settings of the worker's consumer beyond quix-streams' own.

    The session timeout bounds how long a crashed worker's partitions stay with it: its
    restart cannot join the group before that (librdkafka's 45 s unless configured). The
    heartbeat stays at most a third of it, as Kafka recommends.
    """
    session_ms = max(1, round(settings.session_timeout_seconds * 1000))
    return {
        # other workers find this one's query URL in the group description (query/owners.py)
        "client.id": client_id(settings.query_url()),
        "fetch.wait.max.ms": 100,
        "session.timeout.ms": session_ms,
        "heartbeat.interval.ms": max(1, min(3000, session_ms // 3)),
    }


def create_worker(settings: Settings, metrics: Metrics | None = None) -> Worker:
    """Build the quix-streams app for ``settings`` and the HTTP side (topics must exist:
    ``ensure_topics``)."""
    metrics = metrics or default_metrics()
    names = TopicNames.from_settings(settings)
    group = settings.topic_prefix + settings.app_id
    kafka = kafka_connection(settings)
    engine = build_engine(settings, metrics)
    feeds = build_feeds(settings)
    publisher = RawPublisher(kafka, names.raw)
    ingest = IngestService(
        feeds,
        publisher,
        metrics,
        max_body_bytes=settings.max_body_bytes,
        timezone=settings.default_timezone,
    )
    http = web.Application(client_max_size=settings.max_body_bytes + 1)

    async def readiness() -> tuple[bool, str]:
        return await publisher.readiness(names.all())

    add_routes(http.router, ingest, metrics.registry, readiness)
    states = LocalStates(engine.app, engine.waybill_stream)
    queries = WaybillQueries(
        states,
        OwnerDirectory(kafka, group, names.updates),
        WaybillView(settings.detection),
        partitions=settings.partitions,
        self_url=settings.query_url(),
        metrics=QueryMetrics(metrics.registry),
    )
    add_query_routes(http.router, queries, TokenRegistry(settings.api_tokens_file))
    return Worker(engine, names, metrics, http, publisher, queries, states, settings)


def build_engine(settings: Settings, metrics: Metrics) -> Engine:
    """The quix-streams app with the stages, the ticker and the metrics hooks wired in."""
    names = TopicNames.from_settings(settings)
    group = settings.topic_prefix + settings.app_id
    consumed = (names.raw, names.events, names.orders, names.updates, names.signals)
    lag = ConsumerLag(metrics, consumed)
    kafka = kafka_connection(settings)
    app = Application(
        broker_address=kafka.quix_connection(),
        # changelogs get the project's replication and min.insync.replicas (topics.py)
        topic_manager=engine_topic_manager(settings, group, timeout=ENGINE_REQUEST_TIMEOUT_S),
        consumer_group=group,
        auto_offset_reset="earliest",
        processing_guarantee=settings.processing_guarantee,
        commit_interval=settings.checkpoint_seconds,
        state_dir=str(settings.data_dir),
        rocksdb_options=RocksDBOptions(
            write_buffer_size=settings.rocksdb_write_buffer_mb * 2**20,
            block_cache_size=settings.rocksdb_block_cache_mb * 2**20,
        ),
        loglevel=None,
        producer_extra_config=producer_config(settings, group),
        consumer_extra_config={
            **consumer_config(settings),
            # waybill_watch_consumer_lag (quix-streams also reads them, for broker states)
            "statistics.interval.ms": STATS_INTERVAL_MS,
            "stats_cb": lag.on_stats,
        },
        request_timeout=ENGINE_REQUEST_TIMEOUT_S,
        # quix-streams commits a due checkpoint only when its poll returns: with the default
        # 1 s poll an idle worker's last records reached RocksDB (and the waybill queries)
        # ~0.9 s late under exactly-once's 0.1 s checkpoint (benchmarks query: freshness)
        consumer_poll_timeout=min(1.0, settings.checkpoint_seconds),
    )
    topics = {name: app.topic(name, **BYTES) for name in names.all()}  # type: ignore[arg-type]
    context = app._processing_context

    def send(topic: str, key: bytes | None, value: bytes, headers: dict[str, bytes] | None) -> None:
        context.producer.produce(topic=topic, key=key, value=value, headers=dict(headers or {}))

    def produce_to(topic: str, key: bytes, value: bytes, partition: int) -> None:
        context.producer.produce(topic=topic, key=key, value=value, partition=partition)

    outputs = Outputs(send, metrics, anomalies=names.anomalies, dlq=names.dlq)
    progress = Progress()
    origin = group.encode()
    feeds = build_feeds(settings)
    normalize = NormalizeStage(
        feeds,
        send,
        outputs,
        metrics,
        progress,
        names,
        timezone=settings.default_timezone,
        origin=origin,
    )
    partitions = settings.partitions
    effects = KafkaEffects(
        send,
        outputs,
        metrics,
        events_topic=names.events,
        signals_topic=names.signals,
        origin=origin,
        partitions=partitions,
    )
    waybills = WaybillStage(
        WaybillRunner(WaybillHandler(WaybillEngine(settings.detection))),
        effects,
        metrics,
        timezone=settings.default_timezone,
        feeds=feeds,
        topic=names.updates,
    )
    aggregates = AggregateStage(
        AggregateRunner(AggregateHandler(AggregateEngines(settings.detection))),
        effects,
        sources=partitions,
        timezone=settings.default_timezone,
    )

    stage_seconds = metrics.stage_seconds
    validate_time = stage_seconds.labels("validate")
    normalize_time = stage_seconds.labels("normalize")
    clock = time.perf_counter

    def source(handler: Callable[..., None]) -> Callable[[Any, Any, int, Any], None]:
        def step(value: Any, key: Any, timestamp: int, headers: Any) -> None:
            started = clock()
            ctx = message_context()
            handler(value, key, headers, ctx.partition, ctx.offset, timestamp)
            validate_time.observe(clock() - started)

        return step

    def raw_step(value: Any, key: Any, timestamp: int, headers: Any) -> None:
        started = clock()
        ctx = message_context()
        normalize.raw(value, ctx.partition, ctx.offset)
        normalize_time.observe(clock() - started)

    app.dataframe(topics[names.raw]).update(raw_step, metadata=True)
    app.dataframe(topics[names.events]).update(source(normalize.external_scan), metadata=True)
    app.dataframe(topics[names.orders]).update(source(normalize.external_order), metadata=True)
    waybill_stream = _keyed(
        app, topics[names.updates], waybills.handle, stage_seconds.labels("waybill")
    )

    def transaction(partition: int) -> Transaction:
        return context.checkpoint.get_store_transaction(
            stream_id=waybill_stream, partition=partition
        )

    def record_tick(partition: int) -> None:
        """Under exactly-once a checkpoint whose only records are ticks must still commit (an
        empty one's transaction is aborted): a state write in a waybill partition makes it
        non-empty. The source stages have no store of their own (a store per source stage
        added changelog partitions that quix-streams 3.28.1 once handed to the data path).
        Only once every store is restored (``Ticker(restored=...)``): committed before, the
        write moves the store's changelog offset past what is still to be restored."""
        transaction(partition).set_bytes(b"tick", b"1", b"m")

    signals_stream = _keyed(
        app, topics[names.signals], aggregates.handle, stage_seconds.labels("aggregate")
    )
    live = metrics.live

    def partition_clock(partition: int) -> int | None:
        ms = clock_of(transaction(partition))
        if ms is not None:
            live.clocks[str(partition)] = ms
        return ms

    def on_tick(waybill_partitions: list[int], signals_partitions: list[int]) -> None:
        """The counts of partitions assigned since the last tick (restored by now), the size
        of the stores."""
        for partition in waybill_partitions:
            if partition not in waybills.tally.partitions:
                waybills.tally.of(transaction(partition), partition)
        for partition in signals_partitions:
            if partition not in aggregates.tally.partitions:
                tx = context.checkpoint.get_store_transaction(
                    stream_id=signals_stream, partition=partition
                )
                aggregates.tally.of(tx, partition)
        live.state_bytes = owned_store_bytes(app._state_manager, (waybill_stream, signals_stream))

    owned: dict[tuple[str, int], Any] = {}  # (topic, partition) -> its TopicPartition

    def rebalanced(event: str, partitions: list[Any]) -> None:
        if event == "assigned":
            owned.update(((tp.topic, tp.partition), tp) for tp in partitions)
            lag.assign(partitions)
            return
        for tp in partitions:
            owned.pop((tp.topic, tp.partition), None)
        lag.revoke(partitions)
        ticker.revoked(partitions)
        for tp in partitions:
            if tp.topic == names.updates:
                waybills.revoked(tp.partition)
            elif tp.topic == names.signals:
                aggregates.tally.drop(tp.partition)

    hook_rebalances(app, metrics, rebalanced)

    def release() -> None:
        rebalanced("revoked", list(owned.values()))

    def episodes() -> dict[str, int]:
        out = waybills.tally.episodes()
        for anomaly_type, n in aggregates.tally.episodes().items():
            out[anomaly_type] = out.get(anomaly_type, 0) + n
        return out

    live.open_episodes = episodes
    live.waybill_states = waybills.tally.states
    live.enabled = True

    ticker = Ticker(
        context.consumer,
        produce_to,
        record_tick if settings.processing_guarantee == "exactly-once" else None,
        partition_clock,
        lambda partition: send_signals(
            effects.outbox, transaction(partition), partition, produce_to, names.signals
        ),
        progress,
        names,
        metrics,
        partitions=partitions,
        stream=settings.clock == "stream",
        interval=settings.tick_interval_seconds,
        restored=lambda: not app._state_manager.recovery_required,
        on_tick=on_tick,
    )

    app._dataframe_registry.register_periodic_task(ticker)

    return Engine(app, waybill_stream, release)


def _keyed(
    app: Application,
    topic: Any,
    handle: Callable[[Transaction, int, bytes], None],
    timer: Any,
) -> str:
    """A keyed stage: its callback gets the partition's store transaction; its stream id.
    ``timer`` observes each record's processing time (``waybill_watch_stage_seconds``)."""
    sdf: StreamingDataFrame = app.dataframe(topic)
    sdf.register_store()
    stream_id = sdf.stream_id
    context = sdf.processing_context
    clock = time.perf_counter

    def step(value: Any, key: Any, timestamp: int, headers: Any) -> None:
        started = clock()
        partition = message_context().partition
        tx = context.checkpoint.get_store_transaction(stream_id=stream_id, partition=partition)
        handle(tx, partition, value)
        timer.observe(clock() - started)

    sdf.update(step, metadata=True)
    return stream_id


def serve_http(worker: Worker, settings: Settings) -> Callable[[], None]:
    """Start the HTTP endpoints on their own loop in a daemon thread; return ``stop``."""
    loop = asyncio.new_event_loop()
    started = threading.Event()
    failure: list[BaseException] = []
    runner = web.AppRunner(worker.http, access_log=None, **configure_edge(worker.http, settings))

    async def start() -> None:
        await worker.publisher.start()
        await runner.setup()
        await web.TCPSite(runner, settings.web_bind, settings.web_port).start()

    def run() -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(start())
        except BaseException as exc:  # reported to the caller, which exits with one line
            failure.append(exc)
            started.set()
            return
        started.set()
        loop.run_forever()

    thread = threading.Thread(target=run, name="http", daemon=True)
    thread.start()
    started.wait()
    if failure:
        raise failure[0]

    def stop() -> None:
        async def shutdown() -> None:
            await runner.cleanup()
            await worker.queries.close()
            await worker.publisher.stop()

        asyncio.run_coroutine_threadsafe(shutdown(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)

    return stop
