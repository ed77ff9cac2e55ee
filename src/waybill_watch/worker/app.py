"""The Faust application: topics, tables, agents, the clock timer and the web routes.

    HTTP /callbacks/{feed} ──► tracking.raw ──► normalize ──► waybill-watch.updates ─┐
    merchants ─────────────► tracking.events ─────────────────────────────────────────┤
    merchants / normalize ──► orders.events ───────────────────────────────────────────┤
                                                                                      ▼
                                         waybills (table) ◄── process_waybills ──► anomalies
                                                                 │  new scans ──► tracking.events
                                                                 └► waybill-watch.signals
                                                                         ▼
                                          aggregates (table) ◄── process_aggregates ──► anomalies

Every agent has concurrency 1 (table writes; faust issue 606); deadlines and event-time
windows live in our own tables, not in Faust's windowed tables.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import faust
from mode import Service

from waybill_watch.domain.aggregates import AggregateEngines
from waybill_watch.domain.engine import WaybillEngine
from waybill_watch.feeds import build_feeds
from waybill_watch.ingest import IngestService
from waybill_watch.metrics import Metrics, default_metrics
from waybill_watch.settings import Settings
from waybill_watch.timefmt import local_now
from waybill_watch.web import add_routes
from waybill_watch.worker import codec
from waybill_watch.worker.aggregates import AggregateProcessor
from waybill_watch.worker.keyed import KeyedStore, PartitionClock
from waybill_watch.worker.normalizer import Normalizer
from waybill_watch.worker.outputs import Outputs
from waybill_watch.worker.publisher import RawPublisher
from waybill_watch.worker.topics import TopicNames
from waybill_watch.worker.waybills import WaybillProcessor

log = logging.getLogger(__name__)


@dataclass
class Worker:
    """The assembled app and the adapters it drives (handy for tests and the demo)."""

    app: faust.App
    topics: TopicNames
    normalizer: Normalizer
    waybills: WaybillProcessor
    aggregates: AggregateProcessor
    publisher: RawPublisher


def _broker_urls(bootstrap: str) -> list[str]:
    return [f"kafka://{host.strip()}" for host in bootstrap.split(",") if host.strip()]


def create_worker(settings: Settings, metrics: Metrics | None = None) -> Worker:
    """Build the Faust app for ``settings`` (topics must already exist: ``ensure_topics``)."""
    metrics = metrics or default_metrics()
    names = TopicNames.from_settings(settings)
    app = faust.App(
        settings.topic_prefix + settings.app_id,
        broker=_broker_urls(settings.kafka_bootstrap_servers),
        store=settings.store,
        datadir=str(settings.data_dir),
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication_factor,
        processing_guarantee="at_least_once",
        key_serializer="raw",
        value_serializer="raw",
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        web_port=settings.web_port,
        web_bind=settings.web_bind,
        web_tables_enabled=False,  # table contents hold personal data
        web_application_options={"client_max_size": settings.max_body_bytes + 1},
        table_standby_replicas=0 if settings.replication_factor == 1 else 1,
        stream_wait_empty=True,
        broker_max_poll_records=500,
    )

    def topic(*topic_names: str) -> Any:
        return app.topic(
            *topic_names,
            key_serializer="raw",
            value_serializer="raw",
            partitions=settings.partitions,
        )

    channels = {name: topic(name) for name in names.all()}

    async def send(
        topic_name: str, key: bytes | None, value: bytes, headers: Mapping[str, bytes] | None
    ) -> None:
        await channels[topic_name].send(key=key, value=value, headers=headers)

    waybill_table = app.Table(
        "waybills", key_type=bytes, value_type=bytes, partitions=settings.partitions
    )
    waybill_deadlines = app.Table(
        "waybill-deadlines", key_type=bytes, value_type=bytes, partitions=settings.partitions
    )
    aggregate_table = app.Table(
        "aggregates", key_type=bytes, value_type=bytes, partitions=settings.partitions
    )
    aggregate_deadlines = app.Table(
        "aggregate-deadlines", key_type=bytes, value_type=bytes, partitions=settings.partitions
    )

    outputs = Outputs(send, metrics, anomalies=names.anomalies, dlq=names.dlq)
    feeds = build_feeds(settings)
    normalizer = Normalizer(
        feeds,
        send,
        outputs,
        metrics,
        raw_topic=names.raw,
        updates_topic=names.updates,
        orders_topic=names.orders,
        timezone=settings.default_timezone,
        origin=app.conf.id,
    )
    waybills = WaybillProcessor(
        WaybillEngine(settings.detection),
        KeyedStore(
            waybill_table,
            waybill_deadlines,
            PartitionClock(settings.clock, waybill_deadlines, settings.default_timezone),
        ),
        send,
        outputs,
        metrics,
        origin=app.conf.id,
        updates_topic=names.updates,
        events_topic=names.events,
        orders_topic=names.orders,
        signals_topic=names.signals,
    )
    aggregates = AggregateProcessor(
        AggregateEngines(settings.detection),
        KeyedStore(
            aggregate_table,
            aggregate_deadlines,
            PartitionClock(settings.clock, aggregate_deadlines, settings.default_timezone),
        ),
        outputs,
        metrics,
    )

    async def count_assigned(sender: Any, assigned: Any, **_: Any) -> None:
        """After each rebalance: how many waybill partitions this worker now owns."""
        metrics.partitions_assigned.set(sum(1 for tp in assigned if tp.topic == names.updates))

    # mode's SignalHandlerT (a positional-only VarArg Callable) accepts no plain function.
    app.on_partitions_assigned.connect(count_assigned)  # type: ignore[arg-type]

    @app.agent(channels[names.raw], name="normalize")
    async def normalize(stream: Any) -> None:
        async for value in stream:
            await normalizer.handle(value)

    waybill_inputs = topic(names.updates, names.events, names.orders)

    @app.agent(waybill_inputs, name="process-waybills")
    async def process_waybills(stream: Any) -> None:
        async for event in stream.events():
            message = event.message
            await waybills.handle(
                message.topic, message.partition, message.key, event.value, _headers(event)
            )

    @app.agent(channels[names.signals], name="process-aggregates")
    async def process_aggregates(stream: Any) -> None:
        async for event in stream.events():
            message = event.message
            await aggregates.handle(message.partition, event.value)

    @app.timer(settings.tick_interval_seconds, name="clock-ticks")
    async def clock_ticks() -> None:
        """Send a tick to every assigned partition so deadlines fire without traffic."""
        if settings.clock == "stream":
            now = normalizer.max_received_at
            if now is None:
                return
        else:
            now = local_now(settings.default_timezone)
        tick = codec.encode_tick(now)
        for tp in sorted(app.consumer.assignment()):
            if tp.topic in (names.updates, names.signals):
                await channels[tp.topic].send(key=b"__tick__", value=tick, partition=tp.partition)

    publisher = RawPublisher(settings.kafka_bootstrap_servers, names.raw)

    @app.service
    class PublisherService(Service):
        """Owns the ingest producer's lifetime."""

        async def on_start(self) -> None:
            await publisher.start()

        async def on_stop(self) -> None:
            await publisher.stop()

    ingest = IngestService(
        feeds,
        publisher,
        metrics,
        max_body_bytes=settings.max_body_bytes,
        timezone=settings.default_timezone,
    )

    async def readiness() -> tuple[bool, str]:
        return await publisher.readiness(names.all())

    web: Any = app.web  # faust's aiohttp driver; routes are added before start
    web_app = web.web_app
    add_routes(web_app.router, ingest, metrics.registry, readiness)
    return Worker(app, names, normalizer, waybills, aggregates, publisher)


def _headers(event: Any) -> Mapping[str, bytes]:
    raw = event.headers
    if not raw:
        return {}
    if isinstance(raw, Mapping):
        return raw
    return dict(raw)
