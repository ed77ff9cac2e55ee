"""Hostile input against a real ``waybill-watch ingest`` process (real aiohttp server, real
Kafka): each attack gets its status, its reason is counted in ``/metrics``, nothing answers
5xx, the process lives on and a good signed push is still accepted."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import time
import zlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import orjson
import pytest

from waybill_watch.settings import Settings
from waybill_watch.worker.topics import ensure_topics

from .conftest import RunningWorker

SECRET = "it-hostile-secret"
ENV = {
    "WAYBILL_WATCH_CANONICAL_SECRET": SECRET,
    "WAYBILL_WATCH_MERCHANT_SECRET": SECRET,
    "WAYBILL_WATCH_KDNIAO_APP_KEY": SECRET,
    "WAYBILL_WATCH_BODY_TIMEOUT_SECONDS": "1",
    "WAYBILL_WATCH_HEADER_TIMEOUT_SECONDS": "2",
    "WAYBILL_WATCH_RATE_LIMIT_PER_SECOND": "1",
    "WAYBILL_WATCH_RATE_LIMIT_BURST": "5",
    "WAYBILL_WATCH_TRUSTED_PROXIES": "127.0.0.1,::1",
    "WAYBILL_WATCH_LOG_LEVEL": "warning",
}
serial = 0


def event_body() -> bytes:
    global serial
    serial += 1
    return orjson.dumps(
        [
            {
                "waybill": f"HI{serial:010d}",
                "courier": "ZTO",
                "event_time": "2026-11-26T10:00:00+08:00",
                "received_at": "2026-11-26T10:00:01+08:00",
                "status": "in_transit",
                "description": "快件已揽收",
                "source_feed": "canonical",
                "event_id": f"it-hostile-{serial}-{time.time_ns()}",
            }
        ]
    )


def mac(data: bytes) -> str:
    return base64.b64encode(hmac.new(SECRET.encode(), data, hashlib.sha256).digest()).decode()


def signed(body: bytes, source: str = "198.51.100.1") -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "X-Waybill-Watch-Signature": mac(body),
        "X-Forwarded-For": source,
    }


def stamped(body: bytes, at: float | None = None, source: str = "198.51.100.2") -> dict[str, str]:
    stamp = str(int(time.time() if at is None else at))
    return {
        "Content-Type": "application/json",
        "X-Waybill-Watch-Timestamp": stamp,
        "X-Waybill-Watch-Signature-V2": mac(stamp.encode() + b"." + body),
        "X-Forwarded-For": source,
    }


@pytest.fixture
async def ingest(
    kafka_bootstrap: str, ingest_factory: Callable[..., RunningWorker]
) -> AsyncIterator[RunningWorker]:
    process = ingest_factory(None, **ENV)
    await ensure_topics(
        Settings(kafka_bootstrap_servers=kafka_bootstrap, topic_prefix=process.prefix)
    )
    await process.wait_ready(timeout=90)
    yield process
    assert process.proc is not None and process.proc.poll() is None, process.log_tail()
    # aiohttp drops every runner argument (with this warning) when one is unknown
    assert "falling back to filtered kwargs" not in process.log_path.read_text(errors="replace")


async def still_fine(ingest: RunningWorker, feed: str, reason: str, count: float = 1) -> None:
    """The reason is counted, nothing answered 5xx, the process lives, a good push gets in."""
    assert ingest.proc is not None and ingest.proc.poll() is None, ingest.log_tail()
    counted = await ingest.wait_metric(
        "waybill_watch_callbacks_rejected_total",
        lambda v: v >= count,
        timeout=10,
        feed=feed,
        reason=reason,
    )
    assert counted >= count, f"{reason} counted {counted}"
    text = await ingest.metrics()
    five = [
        line
        for line in text.splitlines()
        if line.startswith("waybill_watch_callback_responses_total{") and 'code="5' in line
    ]
    assert not five, five
    body = event_body()
    status, answer = await ingest.post("canonical", body, stamped(body, source="192.0.2.200"))
    assert status == 200, answer


async def raw(
    ingest: RunningWorker, head: bytes, drip: bytes, every: float, wait: float
) -> tuple[bytes, float]:
    reader, writer = await asyncio.open_connection("127.0.0.1", ingest.port)
    started = time.monotonic()
    writer.write(head)

    async def dripping() -> None:
        while True:
            await asyncio.sleep(every)
            writer.write(drip)
            await writer.drain()

    task = asyncio.create_task(dripping())
    received, closed = b"", float("inf")
    try:
        async with asyncio.timeout(wait):
            while chunk := await reader.read(65536):
                received += chunk
            closed = time.monotonic() - started
    except (TimeoutError, ConnectionError):
        pass
    task.cancel()
    writer.close()
    return received, closed


async def test_gzip_bomb_is_refused_415_without_inflating(ingest: RunningWorker) -> None:
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    zeros = bytes(1 << 20)
    bomb = b"".join(packer.compress(zeros) for _ in range(1024)) + packer.flush()  # 1 GiB
    assert len(bomb) < 1_100_000
    started = time.monotonic()
    status, answer = await ingest.post(
        "canonical", bomb, {**signed(bomb), "Content-Encoding": "gzip"}
    )
    assert status == 415, answer
    assert orjson.loads(answer)["reason"] == "unsupported_encoding"
    assert time.monotonic() - started < 5
    await still_fine(ingest, "canonical", "unsupported_encoding")


async def test_slowloris_body_is_refused_408_and_a_slow_head_is_closed(
    ingest: RunningWorker,
) -> None:
    head = (
        b"POST /callbacks/merchant HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: 1000\r\n\r\n"
    )
    received, closed = await raw(ingest, head, b"[", 0.3, 10)
    assert received.startswith(b"HTTP/1.1 408"), received[:200]
    assert closed < 5
    received, closed = await raw(
        ingest, b"POST /callbacks/merchant HTTP/1.1\r\nHost: x\r\n", b"X-A: b\r\n", 0.3, 10
    )
    assert received == b"" and closed < 6  # header timeout 2 s
    await still_fine(ingest, "merchant", "slow_body")


async def test_oversized_body_is_refused_413_early(ingest: RunningWorker) -> None:
    async def stream() -> AsyncIterator[bytes]:
        for _ in range(200):  # 200 MiB
            yield bytes(1 << 20)

    started = time.monotonic()
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            f"{ingest.base_url}/callbacks/canonical",
            data=stream(),
            headers={"Content-Type": "application/json"},
        ) as response,
    ):
        assert response.status == 413
    assert time.monotonic() - started < 20
    await still_fine(ingest, "canonical", "body_too_large")


async def test_header_flood_is_refused_and_the_process_keeps_serving(
    ingest: RunningWorker,
) -> None:
    for headers in ({f"X-F-{i}": "y" for i in range(1000)}, {"X-Huge": "z" * 100_000}):
        try:
            status, _ = await ingest.post("canonical", b"[]", headers)
        except aiohttp.ClientError:
            status = 400  # aiohttp may close before the client reads its answer
        assert 400 <= status < 500
    # aiohttp's parser answers these before any handler: nothing of ours counts them
    assert await ingest.metric("waybill_watch_callbacks_received_total", feed="canonical") == 0
    body = event_body()
    assert (await ingest.post("canonical", body, stamped(body)))[0] == 200


async def test_rate_limit_answers_429_with_retry_after(ingest: RunningWorker) -> None:
    body = event_body()
    answers: list[tuple[int, Any]] = []
    async with aiohttp.ClientSession() as http:
        for _ in range(8):
            async with http.post(
                f"{ingest.base_url}/callbacks/canonical",
                data=body,
                headers=signed(body, source="203.0.113.50"),
            ) as response:
                answers.append((response.status, response.headers.get("Retry-After")))
    assert [s for s, _ in answers[:5]] == [200] * 5
    assert all(s == 429 and retry and int(retry) >= 1 for s, retry in answers[5:]), answers
    await still_fine(ingest, "canonical", "rate_limited", count=3)


async def test_nested_json_and_invalid_utf8_are_400(ingest: RunningWorker) -> None:
    deep = b"[" * 100_000 + b"]" * 100_000
    status, answer = await ingest.post("canonical", deep, signed(deep, "198.51.100.10"))
    assert status == 400 and orjson.loads(answer)["reason"] == "bad_json"
    deep_form = b"RequestData=" + b"%5B" * 50_000 + b"&DataSign=x&RequestType=102"
    status, _ = await ingest.post(
        "kdniao", deep_form, {"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert status in (400, 403)  # signature (or JSON) refused, never a 5xx
    bad = b'[{"waybill": "ZT\xff\xfe"}]'
    status, answer = await ingest.post("merchant", bad, signed(bad, "198.51.100.11"))
    assert status == 400 and orjson.loads(answer)["reason"] == "bad_encoding"
    form = b"RequestData=\xff\xfe&DataSign=x&RequestType=102"
    status, _ = await ingest.post(
        "kdniao", form, {"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert status == 400
    await still_fine(ingest, "canonical", "bad_json")
    await still_fine(ingest, "merchant", "bad_encoding")
    await still_fine(ingest, "kdniao", "bad_encoding")


async def test_replayed_and_stale_timestamped_signatures_are_refused(
    ingest: RunningWorker,
) -> None:
    body = event_body()
    headers = stamped(body, source="198.51.100.20")
    assert (await ingest.post("canonical", body, headers))[0] == 200
    status, answer = await ingest.post("canonical", body, headers)
    assert status == 403 and orjson.loads(answer)["reason"] == "replayed"
    status, answer = await ingest.post(
        "canonical", body, stamped(body, time.time() - 600, source="198.51.100.21")
    )
    assert status == 401 and orjson.loads(answer)["reason"] == "stale_timestamp"
    # the contract's signature alone still works (WAYBILL_WATCH_REQUIRE_SIGNED_TIMESTAMP off)
    body = event_body()
    assert (await ingest.post("canonical", body, signed(body, "198.51.100.22")))[0] == 200
    await still_fine(ingest, "canonical", "replayed")
    await still_fine(ingest, "canonical", "stale_timestamp")
