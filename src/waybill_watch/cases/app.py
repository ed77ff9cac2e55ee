"""``waybill-watch cases``: the case service process (contract §9).

One asyncio loop runs the HTTP server (REST API, case pages, ``/metrics``, ``/healthz``,
``/readyz``), the ``anomalies`` consumer, the step timers and the outbox relay. SIGTERM stops
the consumer after its current batch, publishes what is committed, and exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import signal
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from waybill_watch.cases.api import add_api_routes, bearer_middleware
from waybill_watch.cases.metrics import CaseMetrics
from waybill_watch.cases.model import Case
from waybill_watch.cases.openapi import openapi_document
from waybill_watch.cases.playbooks import Playbooks, load_playbooks
from waybill_watch.cases.runtime import AnomalyConsumer, OutboxRelay, Timers
from waybill_watch.cases.services import CaseService
from waybill_watch.cases.store import CaseStore
from waybill_watch.kafka_client import kafka_connection, start_client
from waybill_watch.ops import add_operations_routes
from waybill_watch.settings import Settings
from waybill_watch.timefmt import local_now
from waybill_watch.tokens import TokenRegistry
from waybill_watch.worker.topics import TopicNames, ensure_topics

log = logging.getLogger(__name__)

OPEN_PATHS = {"/api/openapi.json"}


@dataclass
class Readiness:
    """What ``/readyz`` reports: the store answers and the consumer is not stuck on it."""

    store: CaseStore
    consumer: AnomalyConsumer | None = None
    kafka_started: bool = False
    details: dict[str, str] = field(default_factory=dict)

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
        ready = all(v == "ok" for k, v in detail.items() if k != "consumer") and (
            self.consumer is None or self.consumer.healthy
        )
        return ready, detail


def dossier_responder(playbooks: Playbooks, tz: str) -> Callable[[Case, str | None], Any]:
    """``GET /api/cases/{id}/dossier``: JSON, HTML (``Accept: text/html``) or PDF."""
    from waybill_watch.cases.web.dossier import (
        build_dossier,
        render_dossier_html,
        render_dossier_pdf,
    )

    async def respond(case: Case, accept: str | None) -> web.StreamResponse:
        dossier = build_dossier(case, playbooks)
        accept = (accept or "").lower()
        if "application/pdf" in accept:
            pdf = await asyncio.to_thread(render_dossier_pdf, render_dossier_html(dossier))
            if pdf is None:
                return web.json_response(
                    {"error": "PDF needs headless Chromium on this host; ask for text/html"},
                    status=406,
                )
            return web.Response(body=pdf, content_type="application/pdf")
        if "text/html" in accept:
            return web.Response(text=render_dossier_html(dossier), content_type="text/html")
        from waybill_watch import jsonio

        return web.Response(body=jsonio.dumps(dossier), content_type="application/json")

    return respond


def create_app(
    service: CaseService,
    metrics: CaseMetrics,
    tokens: TokenRegistry,
    readiness: Readiness,
    *,
    session_secret: bytes,
    secure_cookies: bool = False,
    timezone: str = "Asia/Shanghai",
) -> web.Application:
    """The HTTP side: API, pages, operations endpoints."""
    from waybill_watch.cases.web.pages import add_page_routes

    app = web.Application(middlewares=[bearer_middleware(tokens, OPEN_PATHS)])
    add_api_routes(app, service, metrics, dossier_responder(service.playbooks, timezone))
    add_page_routes(app, service, secret=session_secret, secure_cookies=secure_cookies)
    document = openapi_document()

    async def openapi(_: web.Request) -> web.Response:
        return web.json_response(document)

    app.router.add_get("/api/openapi.json", openapi)
    add_operations_routes(app.router, metrics.registry, readiness.check)
    return app


class CaseServiceProcess:
    """Everything ``waybill-watch cases`` runs, started and stopped together."""

    def __init__(self, settings: Settings, store: CaseStore, playbooks: Playbooks) -> None:
        self.settings = settings
        self.store = store
        self.metrics = CaseMetrics()
        zone = settings.default_timezone
        self.service = CaseService(
            store, playbooks, clock=lambda: local_now(zone), metrics=self.metrics
        )
        self.tokens = TokenRegistry(settings.api_tokens_file)
        self.readiness = Readiness(store)
        self.stop = asyncio.Event()
        secret = settings.cases_session_secret
        self.session_secret = (
            secret.get_secret_value().encode() if secret else secrets.token_bytes(32)
        )
        if secret is None:
            log.warning(
                "WAYBILL_WATCH_CASES_SESSION_SECRET is unset: sign-ins end when the "
                "service restarts"
            )
        if settings.api_tokens_file is None:
            log.warning("WAYBILL_WATCH_API_TOKENS_FILE is unset: the REST API answers 401")

    async def run(self, *, install_signals: bool = True) -> None:
        """Serve until SIGTERM/SIGINT (or ``self.stop``)."""
        settings = self.settings
        names: TopicNames = await asyncio.wait_for(ensure_topics(settings), 60)
        kafka = kafka_connection(settings)
        producer = AIOKafkaProducer(
            **kafka.aiokafka_options(), acks="all", enable_idempotence=True, linger_ms=5
        )
        consumer = AIOKafkaConsumer(
            names.anomalies,
            **kafka.aiokafka_options(),
            group_id=settings.topic(settings.cases_group),
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            isolation_level="read_committed",
            max_poll_records=500,
        )
        await start_client(producer, kafka)
        await start_client(consumer, kafka)
        self.readiness.kafka_started = True
        anomalies = AnomalyConsumer(
            consumer, producer, self.service, self.metrics, dlq_topic=names.dlq
        )
        self.readiness.consumer = anomalies
        relay_producer = AIOKafkaProducer(
            **kafka.aiokafka_options(),
            acks="all",
            enable_idempotence=True,
            transactional_id=settings.topic(settings.cases_group) + "-relay",
        )
        await start_client(relay_producer, kafka)
        relay = OutboxRelay(self.service, relay_producer, self.metrics, names.cases_events, kafka)
        timers = Timers(self.service, self.metrics, settings.cases_timer_interval_seconds)
        anomalies.relay_wakeup = timers.relay_wakeup = relay.wakeup
        app = create_app(
            self.service,
            self.metrics,
            self.tokens,
            self.readiness,
            session_secret=self.session_secret,
            secure_cookies=settings.cases_secure_cookies,
            timezone=settings.default_timezone,
        )
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, settings.web_bind, settings.cases_port)
        if install_signals:
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, self.stop.set)
        try:
            await site.start()
            log.info("case service on http://%s:%d", settings.web_bind, settings.cases_port)
            tasks = [
                asyncio.create_task(anomalies.run(self.stop), name="anomalies"),
                asyncio.create_task(timers.run(self.stop), name="timers"),
            ]
            relay_task = asyncio.create_task(relay.run(self.stop), name="relay")
            stopper = asyncio.create_task(self.stop.wait())
            done, _ = await asyncio.wait([*tasks, stopper], return_when=asyncio.FIRST_COMPLETED)
            self.stop.set()
            for task in done:
                if task is not stopper and task.exception() is not None:
                    log.error(
                        "case service task %s failed", task.get_name(), exc_info=task.exception()
                    )
            await asyncio.gather(*tasks, return_exceptions=True)
            relay.wakeup.set()
            await asyncio.wait_for(relay_task, 15)
        finally:
            await runner.cleanup()
            with contextlib.suppress(Exception):
                await consumer.stop()
            with contextlib.suppress(Exception):
                await producer.stop()
            with contextlib.suppress(Exception):
                await relay_producer.stop()


def load_service_playbooks(settings: Settings) -> Playbooks:
    """The configured playbooks (``PlaybookError`` names the field at fault)."""
    return load_playbooks(settings.cases_playbooks)
