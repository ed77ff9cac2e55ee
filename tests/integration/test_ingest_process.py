"""``waybill-watch ingest`` as its own process beside a worker, and what it does when it cannot
write to Kafka: a courier must never get a 2xx for data that was not written."""

from __future__ import annotations

import asyncio
import socket
import time
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import orjson

from waybill_watch.feeds import encode

from .conftest import recent_daytime

SHANGHAI = ZoneInfo("Asia/Shanghai")
APP_KEY = "it-ingest-app-key"
KEYS = {"WAYBILL_WATCH_KDNIAO_APP_KEY": APP_KEY}
H = timedelta(hours=1)


def problem_push(waybill: str) -> encode.Encoded:
    t0 = recent_daytime()
    traces = [
        (t0, "【上海青浦】快件已揽收", "1"),
        (t0 + H, "【杭州西湖】快件正在派送中", "202"),
        (t0 + 2 * H, "【杭州西湖】派件异常，收件人不在", "405"),
    ]
    item = {
        "ShipperCode": "ZTO",
        "LogisticCode": waybill,
        "State": "4",
        "Traces": [
            {"AcceptTime": encode.local_time_text(at), "AcceptStation": text, "Action": action}
            for at, text, action in traces
        ],
    }
    return encode.kdniao_push([item], APP_KEY)


async def wait_healthy(process: Any, timeout: float = 60) -> None:
    """Until ``/healthz`` answers (the process serves HTTP), whatever ``/readyz`` says."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.proc.poll() is None, process.log_tail()
        try:
            status, _ = await process.get("/healthz")
        except aiohttp.ClientError:
            status = 0
        if status == 200:
            return
        await asyncio.sleep(0.25)
    raise AssertionError(f"ingest not serving after {timeout} s:\n{process.log_tail()}")


async def test_push_to_an_ingest_process_is_processed_by_the_worker(
    worker_factory: Callable[..., Any], ingest_factory: Callable[..., Any]
) -> None:
    worker = worker_factory(**KEYS)
    await worker.wait_ready()  # the worker creates the topics the ingest process writes to
    ingest = ingest_factory(worker.prefix, **KEYS)
    await ingest.wait_ready(timeout=60)
    waybill = f"ZT{uuid.uuid4().hex[:12].upper()}"

    status, answer = await ingest.post("kdniao", *problem_push(waybill))

    assert status == 200, answer
    assert orjson.loads(answer)["Success"] is True
    anomalies = await worker.read_topic(
        "anomalies",
        until=lambda rs: any(
            a["waybill"] == waybill and a["type"] == "delivery_exception" for a in rs
        ),
    )
    [opened] = [a for a in anomalies if a["waybill"] == waybill]
    assert opened["status"] == "open" and opened["reasons"] == ["failed_attempt"]
    # It went through the ingest process, not the worker's own HTTP endpoint.
    assert await ingest.metric("waybill_watch_callbacks_accepted_total", feed="kdniao") == 1
    assert await worker.metric("waybill_watch_callbacks_received_total") == 0
    assert (
        await worker.metric("waybill_watch_envelopes_normalized_total", feed="kdniao", outcome="ok")
        == 1
    )
    for path in ("/healthz", "/readyz"):
        status, body = await ingest.get(path)
        assert status == 200, body
    status, body = await ingest.get("/metrics")
    assert status == 200
    assert b"waybill_watch_callback_latency_seconds_bucket" in body


async def test_ingest_answers_503_when_kafka_cannot_take_the_write(
    kafka_bootstrap: str, ingest_factory: Callable[..., Any]
) -> None:
    """A prefix whose topics do not exist (the broker does not auto-create them): Kafka
    refuses every write, so the process is not ready and the courier is told to retry."""
    ingest = ingest_factory(f"missing{uuid.uuid4().hex[:8]}.", **KEYS)
    await wait_healthy(ingest)

    status, body = await ingest.get("/readyz")
    assert status == 503
    assert "tracking.raw" in orjson.loads(body)["detail"]

    status, answer = await ingest.post("kdniao", *problem_push("ZT0000000503"))

    assert status == 503, answer
    ack = orjson.loads(answer)
    assert ack["Success"] is False and ack["Reason"]
    assert (
        await ingest.metric(
            "waybill_watch_callbacks_rejected_total", feed="kdniao", reason="kafka_unavailable"
        )
        == 1
    )
    assert await ingest.metric("waybill_watch_callbacks_accepted_total") == 0
    assert ingest.proc.poll() is None, "a failed write must not stop the process"


async def test_ingest_without_a_reachable_broker_refuses_to_start(
    ingest_factory: Callable[..., Any],
) -> None:
    """Nothing listens at the bootstrap address: the process exits (non-zero) before it ever
    serves HTTP, so no courier can get an answer, let alone a 2xx."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead = f"127.0.0.1:{probe.getsockname()[1]}"
    ingest = ingest_factory(KAFKA_BOOTSTRAP_SERVERS=dead, **KEYS)

    deadline = time.monotonic() + 60
    answered: list[int] = []
    while ingest.proc.poll() is None and time.monotonic() < deadline:
        try:
            status, _ = await ingest.post("kdniao", *problem_push("ZT0000000000"))
            answered.append(status)
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.1)

    assert ingest.proc.poll() not in (None, 0), ingest.log_tail()
    assert not [s for s in answered if 200 <= s < 300]
    assert "Unable to bootstrap" in ingest.log_tail(200)


async def test_ingest_whose_port_is_taken_says_so_and_exits_2(
    ingest_factory: Callable[..., Any],
) -> None:
    """The broker answers but another process listens on the HTTP port: a start-up failure
    the operator fixes in the settings, reported in one line rather than a traceback."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        ingest = ingest_factory(
            WAYBILL_WATCH_WEB_BIND="127.0.0.1", WAYBILL_WATCH_WEB_PORT=str(port), **KEYS
        )
        code = await asyncio.to_thread(ingest.proc.wait, 60)  # a hang raises TimeoutExpired

    assert code == 2, ingest.log_tail()
    log = ingest.log_tail(200)
    assert f"waybill-watch ingest: cannot listen on 127.0.0.1:{port}" in log
    assert "WAYBILL_WATCH_WEB_PORT" in log
    assert "Traceback" not in log
