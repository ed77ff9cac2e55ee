"""The HTTP sink posts each envelope to /callbacks/{feed} with its headers and counts failures."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any, ClassVar

import pytest
from aiohttp import web

from waybill_watch.simulate.sinks import send_http, send_kafka

from .helpers import Run


async def test_http_sink_posts_every_envelope(small_run: Run) -> None:
    received: list[tuple[str, str, Mapping[str, str]]] = []

    async def callback(request: web.Request) -> web.Response:
        feed = request.match_info["feed"]
        received.append((feed, await request.text(), request.headers.copy()))
        return web.Response(status=200 if feed == "kdniao" else 503)

    app = web.Application()
    app.router.add_post("/callbacks/{feed}", callback)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    envelopes = list(small_run.generator_envelopes[:300])
    try:
        report = await send_http(envelopes, f"http://127.0.0.1:{port}/", concurrency=4, speed=None)
    finally:
        await runner.cleanup()
    merchant = sum(e.feed == "merchant" for e in envelopes)
    assert report.sent == len(envelopes) == len(received)
    assert report.failed == merchant > 0
    assert report.statuses == {"200": len(envelopes) - merchant, "503": merchant}
    bodies = sorted(body for _, body, _ in received)
    assert bodies == sorted(e.body for e in envelopes)
    signed = [h for feed, _, h in received if feed == "merchant"]
    assert all("X-Waybill-Watch-Signature" in h for h in signed)
    assert all(h["Content-Type"].startswith("application/") for _, _, h in received)


class FakeProducer:
    """Stands in for AIOKafkaProducer: records what would be produced."""

    sent: ClassVar[list[tuple[str, bytes]]] = []
    config: ClassVar[dict[str, Any]] = {}

    def __init__(self, **config: Any) -> None:
        FakeProducer.config = config

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    async def send(self, topic: str, value: bytes) -> asyncio.Future[None]:
        FakeProducer.sent.append((topic, value))
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        future.set_result(None)
        return future


async def test_kafka_sink_produces_capture_lines(
    small_run: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    import aiokafka

    monkeypatch.setattr(aiokafka, "AIOKafkaProducer", FakeProducer)
    envelopes = small_run.generator_envelopes[:50]
    report = await send_kafka(envelopes, "broker:9092", "p.tracking.raw", speed=None)
    assert report.sent == 50 and report.failed == 0
    assert FakeProducer.config["acks"] == "all"
    assert [value + b"\n" for _, value in FakeProducer.sent] == small_run.lines[:50]
    assert {topic for topic, _ in FakeProducer.sent} == {"p.tracking.raw"}
