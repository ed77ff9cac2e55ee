"""``waybill-watch ingest``: the stateless HTTP ingest alone (run as many replicas as needed)."""

from __future__ import annotations

from aiohttp import web

from waybill_watch.feeds import build_feeds
from waybill_watch.ingest import IngestService
from waybill_watch.kafka_client import kafka_connection
from waybill_watch.metrics import Metrics, default_metrics
from waybill_watch.settings import Settings
from waybill_watch.web import EDGE_LIMITS, EdgeLimits, add_routes
from waybill_watch.worker.publisher import RawPublisher
from waybill_watch.worker.topics import TopicNames


def create_ingest_app(settings: Settings, metrics: Metrics | None = None) -> web.Application:
    """An aiohttp application with the contract's endpoints, writing to ``tracking.raw``."""
    metrics = metrics or default_metrics()
    names = TopicNames.from_settings(settings)
    publisher = RawPublisher(kafka_connection(settings), names.raw)  # TLS/SASL settings too
    ingest = IngestService(
        build_feeds(settings),
        publisher,
        metrics,
        max_body_bytes=settings.max_body_bytes,
        timezone=settings.default_timezone,
    )
    app = web.Application(client_max_size=settings.max_body_bytes + 1)
    app[EDGE_LIMITS] = EdgeLimits.from_settings(settings)  # run with its runner_args()

    async def readiness() -> tuple[bool, str]:
        return await publisher.readiness((names.raw,))

    add_routes(app.router, ingest, metrics.registry, readiness)

    async def lifecycle(_: web.Application):  # type: ignore[no-untyped-def]
        await publisher.start()
        yield
        await publisher.stop()

    app.cleanup_ctx.append(lifecycle)
    return app
