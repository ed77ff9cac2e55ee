"""The operations endpoints every process serves (contract §8; design: "every process looks
the same to an operator"): ``/healthz``, ``/readyz`` and ``/metrics``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

#: Returns ``(ready, detail)``; the detail says what is missing (text or a dict per part).
ReadinessProbe = Callable[[], Awaitable[tuple[bool, Any]]]


def add_operations_routes(
    router: web.UrlDispatcher, registry: CollectorRegistry, readiness: ReadinessProbe
) -> None:
    """``GET /healthz`` (process up), ``GET /readyz`` (503 until ready), ``GET /metrics``."""

    async def metrics(_: web.Request) -> web.Response:
        response = web.Response(body=generate_latest(registry))
        response.headers["Content-Type"] = CONTENT_TYPE_LATEST
        return response

    async def healthz(_: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(_: web.Request) -> web.Response:
        ready, detail = await readiness()
        return web.json_response(
            {"status": "ready" if ready else "not ready", "detail": detail},
            status=200 if ready else 503,
        )

    router.add_get("/metrics", metrics)
    router.add_get("/healthz", healthz)
    router.add_get("/readyz", readyz)


def metric_sum(text: str, name: str, **labels: str) -> float:
    """The sum of the samples of metric ``name`` (exact name) carrying all ``labels`` in a
    ``/metrics`` page: what the tests, the fault harness and the soak read off a process."""
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        if all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total
