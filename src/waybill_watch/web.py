"""aiohttp routes shared by the worker (mounted on Faust's web server) and ``ingest``.

``POST /callbacks/{feed}``, ``GET /metrics``, ``GET /healthz``, ``GET /readyz`` (contract §8).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from aiohttp import web
from prometheus_client import CollectorRegistry

from waybill_watch.ingest import IngestService
from waybill_watch.ops import add_operations_routes

#: Returns ``(ready, detail)``: connected to Kafka and every topic present.
ReadinessProbe = Callable[[], Awaitable[tuple[bool, str]]]


async def read_limited(request: web.Request, limit: int) -> bytes:
    """The body, or at most ``limit + 1`` bytes of it (so the caller can answer 413)."""
    chunks: list[bytes] = []
    size = 0
    while size <= limit:
        chunk = await request.content.read(min(65536, limit + 1 - size))
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


def add_routes(
    router: web.UrlDispatcher,
    ingest: IngestService,
    registry: CollectorRegistry,
    readiness: ReadinessProbe,
) -> None:
    """Register the contract's endpoints on an aiohttp router."""

    async def callback(request: web.Request) -> web.Response:
        feed = request.match_info["feed"]
        status: int | None = 500  # what aiohttp answers for an exception raised here
        try:
            body = await read_limited(request, ingest.max_body_bytes)
            result = await ingest.handle(feed, request.headers, body, request.content_type)
            content_type, _, charset = result.content_type.partition("; charset=")
            response = web.Response(
                status=result.status,
                body=result.body,
                content_type=content_type,
                charset=charset or None,
            )
            status = result.status
            return response
        except web.HTTPException as exc:
            status = exc.status
            raise
        except asyncio.CancelledError:
            status = None  # the client went away: nothing is answered
            raise
        finally:
            if status is not None:
                ingest.count_response(feed, status)

    router.add_post("/callbacks/{feed}", callback)
    add_operations_routes(router, registry, readiness)
