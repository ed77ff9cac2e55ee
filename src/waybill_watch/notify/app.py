"""``waybill-watch notify``: the notifier process (contract §9).

One asyncio loop runs the consumer (``anomalies`` + ``cases.events``, own group,
``read_committed``), one sender per channel, the maintenance loop and a small HTTP server
(``/healthz``, ``/readyz``, ``/metrics`` on ``WAYBILL_WATCH_NOTIFY_PORT``). SIGTERM stops the
consumer after its current batch and the senders after their current try.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from dataclasses import dataclass
from datetime import timedelta

import aiohttp
from aiohttp import web
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import TopicAlreadyExistsError

from waybill_watch import jsonio
from waybill_watch.kafka_client import kafka_connection, start_client
from waybill_watch.notify.channels import build_channel
from waybill_watch.notify.metrics import NotifyMetrics
from waybill_watch.notify.model import DeadLetter
from waybill_watch.notify.rules import Rules
from waybill_watch.notify.runtime import ChannelSender, EventConsumer, Maintenance
from waybill_watch.notify.store import NotifyStore
from waybill_watch.ops import add_operations_routes
from waybill_watch.settings import Settings
from waybill_watch.worker.topics import TopicNames, cluster_layout, ensure_topics, new_topic

log = logging.getLogger(__name__)

DLQ_TOPIC = "notifications.dlq"


@dataclass
class Readiness:
    """What ``/readyz`` reports: the store answers, Kafka is connected, the consumer is not
    stuck on the database."""

    store: NotifyStore
    consumer: EventConsumer | None = None
    kafka_started: bool = False

    async def check(self) -> tuple[bool, dict[str, str]]:
        detail: dict[str, str] = {}
        try:
            await asyncio.wait_for(self.store.ping(), 3)
            detail["database"] = "ok"
        except Exception as exc:
            detail["database"] = f"unreachable: {exc}"
        detail["kafka"] = "ok" if self.kafka_started else "not connected"
        if self.consumer is not None and not self.consumer.healthy:
            detail["consumer"] = "retrying database writes"
        return all(v == "ok" for v in detail.values()), detail


def create_app(metrics: NotifyMetrics, readiness: Readiness) -> web.Application:
    """The operations endpoints."""
    app = web.Application()
    add_operations_routes(app.router, metrics.registry, readiness.check)
    return app


async def ensure_dlq_topic(settings: Settings) -> str:
    """Create ``notifications.dlq`` (prefixed) if missing; its name."""
    name = settings.topic(DLQ_TOPIC)
    kafka = kafka_connection(settings)
    admin = AIOKafkaAdminClient(**kafka.aiokafka_options())
    await start_client(admin, kafka)
    try:
        if name not in set(await admin.list_topics()):
            layout = await cluster_layout(admin, settings)  # replication as ensure_topics'
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics([new_topic(name, settings.partitions, layout)])
            log.info("created topic %s", name)
    finally:
        await admin.close()
    return name


class NotifyProcess:
    """Everything ``waybill-watch notify`` runs, started and stopped together."""

    def __init__(self, settings: Settings, store: NotifyStore, rules: Rules) -> None:
        self.settings = settings
        self.store = store
        self.rules = rules
        self.metrics = NotifyMetrics()
        self.readiness = Readiness(store)
        self.stop = asyncio.Event()

    async def run(self, *, install_signals: bool = True) -> None:
        """Serve until SIGTERM/SIGINT (or ``self.stop``)."""
        settings = self.settings
        names: TopicNames = await asyncio.wait_for(ensure_topics(settings), 60)
        dlq_topic = await asyncio.wait_for(ensure_dlq_topic(settings), 60)
        kafka = kafka_connection(settings)
        producer = AIOKafkaProducer(
            **kafka.aiokafka_options(), acks="all", enable_idempotence=True, linger_ms=5
        )
        consumer = AIOKafkaConsumer(
            names.anomalies,
            names.cases_events,
            **kafka.aiokafka_options(),
            group_id=settings.topic(settings.notify_group),
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            isolation_level="read_committed",
            max_poll_records=500,
        )
        await start_client(producer, kafka)
        await start_client(consumer, kafka)
        self.readiness.kafka_started = True
        http = aiohttp.ClientSession()

        async def dead_letter(letter: DeadLetter) -> None:
            await producer.send_and_wait(
                dlq_topic, jsonio.dumps(letter), key=letter.delivery_id.encode()
            )

        senders = [
            ChannelSender(
                build_channel(name, config, http),
                self.store,
                self.metrics,
                dead_letter,
                poll_interval=settings.notify_poll_interval_seconds,
            )
            for name, config in self.rules.channels.items()
        ]
        by_name = {s.name: s for s in senders}
        events = EventConsumer(
            consumer,
            producer,
            self.store,
            self.rules,
            self.metrics,
            kinds={names.anomalies: "anomaly", names.cases_events: "case"},
            dlq_topic=names.dlq,
            cases_url=settings.cases_public_url,
        )

        def wake(channels: set[str]) -> None:
            for channel in channels:
                if channel in by_name:
                    by_name[channel].wakeup.set()

        events.on_queued = wake
        self.readiness.consumer = events
        maintenance = Maintenance(
            self.store,
            self.metrics,
            list(self.rules.channels),
            timedelta(days=settings.notify_retention_days),
        )
        runner = web.AppRunner(create_app(self.metrics, self.readiness), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, settings.web_bind, settings.notify_port)
        if install_signals:
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, self.stop.set)
        try:
            await site.start()
            log.info(
                "notifier on http://%s:%d; channels: %s",
                settings.web_bind,
                settings.notify_port,
                ", ".join(f"{n} ({c.type})" for n, c in self.rules.channels.items()),
            )
            tasks = [
                asyncio.create_task(events.run(self.stop), name="events"),
                asyncio.create_task(maintenance.run(self.stop), name="maintenance"),
                *(asyncio.create_task(s.run(self.stop), name=f"send:{s.name}") for s in senders),
            ]
            stopper = asyncio.create_task(self.stop.wait())
            done, _ = await asyncio.wait([*tasks, stopper], return_when=asyncio.FIRST_COMPLETED)
            self.stop.set()
            for task in done:
                if task is not stopper and task.exception() is not None:
                    log.error("notifier task %s failed", task.get_name(), exc_info=task.exception())
            await asyncio.wait(tasks, timeout=30)
        finally:
            await runner.cleanup()
            await http.close()
            with contextlib.suppress(Exception):
                await consumer.stop()
            with contextlib.suppress(Exception):
                await producer.stop()
