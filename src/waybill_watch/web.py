"""aiohttp routes shared by the worker (its HTTP thread) and ``ingest``.

``POST /callbacks/{feed}``, ``GET /metrics``, ``GET /healthz``, ``GET /readyz`` (contract §8).

Hostile input is refused at the edge, before the feed sees it, each refusal counted by reason:
a source over its rate (429 ``rate_limited``, with ``Retry-After``), a ``Content-Encoding``
(415 ``unsupported_encoding``: no courier compresses, and aiohttp is told never to decompress),
a declared or actual body above ``max_body_bytes`` (413 ``body_too_large``, never read past the
limit) and a body that does not arrive within ``body_timeout_seconds`` (408 ``slow_body``).
aiohttp's own parser limits (request line, header size and count) answer 400 before any
handler runs; a connection that sends no complete request head within
``header_timeout_seconds`` is closed (aiohttp's keep-alive timer, which runs from the start of
the connection).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiohttp import web
from prometheus_client import CollectorRegistry

from waybill_watch.ingest import (
    BodyTooLarge,
    IngestResult,
    IngestService,
    RateLimited,
    SlowBody,
    UnsupportedEncoding,
)
from waybill_watch.metrics import UNKNOWN_FEED
from waybill_watch.ops import add_operations_routes
from waybill_watch.ratelimit import (
    Network,
    RateLimiter,
    client_address,
    parse_networks,
    retry_after_header,
)

if TYPE_CHECKING:
    from waybill_watch.settings import Settings

#: Returns ``(ready, detail)``: connected to Kafka and every topic present.
ReadinessProbe = Callable[[], Awaitable[tuple[bool, str]]]

#: aiohttp's request-head limits, explicit (a longer line or field, or more headers: 400).
MAX_LINE_SIZE = 8190
MAX_FIELD_SIZE = 8190
MAX_HEADERS = 128
#: Rate-limit buckets kept (least recently used evicted first).
RATE_LIMIT_KEYS = 65536


@dataclass(frozen=True, slots=True)
class EdgeLimits:
    """The callback endpoint's limits (settings ``WAYBILL_WATCH_BODY_TIMEOUT_SECONDS``, …)."""

    body_timeout_seconds: float = 10.0
    header_timeout_seconds: float = 75.0
    rate_limit_per_second: float = 500.0
    rate_limit_burst: int = 1000
    trusted_proxies: tuple[Network, ...] = ()

    @classmethod
    def from_settings(cls, settings: Settings) -> EdgeLimits:
        return cls(
            body_timeout_seconds=settings.body_timeout_seconds,
            header_timeout_seconds=settings.header_timeout_seconds,
            rate_limit_per_second=settings.rate_limit_per_second,
            rate_limit_burst=settings.rate_limit_burst,
            trusted_proxies=parse_networks(settings.trusted_proxies),
        )

    def handler_args(self) -> dict[str, Any]:
        """aiohttp ``RequestHandler`` arguments except ``keepalive_timeout``: ``run_app``'s
        extra keywords (an unknown one would make aiohttp drop them all, with a warning)."""
        return {
            "max_line_size": MAX_LINE_SIZE,
            "max_field_size": MAX_FIELD_SIZE,
            "max_headers": MAX_HEADERS,
            "auto_decompress": False,  # bodies are signed as sent; encodings are refused
        }

    def runner_args(self) -> dict[str, Any]:
        """``web.AppRunner`` / ``TestServer`` keyword arguments."""
        return {"keepalive_timeout": self.header_timeout_seconds, **self.handler_args()}


#: Where ``add_routes`` finds the limits (``EdgeLimits()`` when the app has none).
EDGE_LIMITS = web.AppKey("waybill_watch_edge_limits", EdgeLimits)


def configure_edge(app: web.Application, settings: Settings) -> dict[str, Any]:
    """Put the settings' edge limits on ``app``; the ``web.AppRunner`` arguments to serve it."""
    limits = EdgeLimits.from_settings(settings)
    app[EDGE_LIMITS] = limits
    return limits.runner_args()


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
    limiter: RateLimiter | None = None

    async def answer(request: web.Request, feed: str, limits: EdgeLimits) -> IngestResult:
        nonlocal limiter
        if limiter is None:
            limiter = RateLimiter(
                limits.rate_limit_per_second, limits.rate_limit_burst, max_keys=RATE_LIMIT_KEYS
            )
        client = client_address(
            request.remote, request.headers.getall("X-Forwarded-For", []), limits.trusted_proxies
        )
        wait = limiter.acquire((feed if feed in ingest.feeds else UNKNOWN_FEED, client))
        if wait:
            return ingest.refuse(
                feed,
                RateLimited("rate_limited", "too many callbacks from this source; retry later"),
                (("Retry-After", retry_after_header(wait)),),
            )
        encoding = request.headers.get("Content-Encoding", "").strip().lower()
        if encoding not in ("", "identity"):
            return ingest.refuse(
                feed,
                UnsupportedEncoding(
                    "unsupported_encoding",
                    f"Content-Encoding {encoding[:20]!r} is not accepted; send the body as is",
                ),
            )
        limit = ingest.max_body_bytes
        if request.content_length is not None and request.content_length > limit:
            return ingest.refuse(
                feed, BodyTooLarge("body_too_large", f"body is larger than {limit} bytes")
            )
        try:
            async with asyncio.timeout(limits.body_timeout_seconds):
                body = await read_limited(request, limit)
        except TimeoutError:
            return ingest.refuse(
                feed,
                SlowBody(
                    "slow_body", f"body not received within {limits.body_timeout_seconds:g} s"
                ),
            )
        return await ingest.handle(feed, request.headers, body, request.content_type)

    async def callback(request: web.Request) -> web.Response:
        feed = request.match_info["feed"]
        status: int | None = 500  # what aiohttp answers for an exception raised here
        try:
            limits = request.config_dict.get(EDGE_LIMITS) or EdgeLimits()
            result = await answer(request, feed, limits)
            content_type, _, charset = result.content_type.partition("; charset=")
            response = web.Response(
                status=result.status,
                body=result.body,
                content_type=content_type,
                charset=charset or None,
                headers=dict(result.headers) if result.headers else None,
            )
            status = result.status
            if result.status == 408:
                # The body never came: answer, then close rather than linger for the rest.
                response.force_close()
                with contextlib.suppress(ConnectionError):  # the client may be gone already
                    await response.prepare(request)
                    await response.write_eof()
                if request.transport is not None:
                    request.transport.close()
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
