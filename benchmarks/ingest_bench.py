"""Callback ingest throughput: HTTP → ``tracking.raw`` with acknowledgements, beside a bare
aiohttp handler answering the same requests without Kafka, in the same run.

Each server runs in its own process (``waybill-watch ingest`` / ``benchmarks.bare_server``); the
load generator keeps ``CONCURRENCY`` requests in flight. The figure is the ratio.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

import aiohttp

from benchmarks.kafka_capture import bench_kafka
from waybill_watch.samples import demo_waybills, kdniao_form
from waybill_watch.timefmt import local_now

CONCURRENCY = 32
APP_KEY = "bench-app-key"


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _bodies(n: int) -> list[bytes]:
    now = local_now()
    return [
        kdniao_form(demo_waybills(now - timedelta(seconds=i), f"B{i:07d}")[:1], now, APP_KEY)
        for i in range(n)
    ]


@contextmanager
def _server(argv: list[str], env: dict[str, str], port: int) -> Iterator[None]:
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if proc.poll() is not None:
                    error = proc.stderr.read().decode() if proc.stderr else "died"
                    raise RuntimeError(error) from None
                time.sleep(0.2)
        yield
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


async def _load(url: str, bodies: list[bytes]) -> tuple[float, list[float], int]:
    latencies: list[float] = []
    failures = 0
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for body in bodies:
        queue.put_nowait(body)
    headers = {"Content-Type": "application/x-www-form-urlencoded;charset=utf-8"}
    connector = aiohttp.TCPConnector(limit=CONCURRENCY)
    async with aiohttp.ClientSession(connector=connector) as http:

        async def client() -> None:
            nonlocal failures
            while not queue.empty():
                body = queue.get_nowait()
                started = time.perf_counter()
                async with http.post(url, data=body, headers=headers) as response:
                    await response.read()
                    if response.status != 200:
                        failures += 1
                latencies.append(time.perf_counter() - started)

        started = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(CONCURRENCY)))
        elapsed = time.perf_counter() - started
    return elapsed, latencies, failures


def _report(label: str, n: int, elapsed: float, latencies: list[float], failures: int) -> float:
    rate = n / elapsed
    q = statistics.quantiles(latencies, n=100)
    print(
        f"{label:<34} {rate:9.0f} req/s   p50 {q[49] * 1000:7.2f} ms   "
        f"p99 {q[98] * 1000:7.2f} ms   non-200 {failures}",
        flush=True,
    )
    return rate


def main(quick: bool = False) -> int:
    n = 2_000 if quick else 20_000
    bodies = _bodies(n)
    print(
        f"{n} Kdniao pushes (1 waybill, 3-4 traces each), {CONCURRENCY} in flight; the load "
        f"generator is this Python process and shares the machine's {os.cpu_count()} cores with "
        "the server; command: .venv/bin/python -m benchmarks ingest"
        + (" --quick" if quick else ""),
        flush=True,
    )
    bootstrap, broker = bench_kafka()
    try:
        env = {k: v for k, v in os.environ.items() if not k.startswith("WAYBILL_WATCH_")}
        bare_port, ingest_port = _port(), _port()
        env.update(
            KAFKA_BOOTSTRAP_SERVERS=bootstrap,
            WAYBILL_WATCH_TOPIC_PREFIX=f"bench{uuid.uuid4().hex[:8]}.",
            WAYBILL_WATCH_KDNIAO_APP_KEY=APP_KEY,
            WAYBILL_WATCH_LOG_LEVEL="warning",
        )
        topics = [sys.executable, "-m", "benchmarks.bare_server", "--create-topics"]
        subprocess.run(topics, env=env, check=True)
        with _server(
            [sys.executable, "-m", "benchmarks.bare_server", "--port", str(bare_port)],
            env,
            bare_port,
        ):
            elapsed, lat, fail = asyncio.run(_load(f"http://127.0.0.1:{bare_port}/", bodies))
            bare = _report("bare aiohttp handler (no Kafka)", n, elapsed, lat, fail)
        env["WAYBILL_WATCH_WEB_PORT"] = str(ingest_port)
        with _server([sys.executable, "-m", "waybill_watch", "ingest"], env, ingest_port):
            url = f"http://127.0.0.1:{ingest_port}/callbacks/kdniao"
            asyncio.run(_load(url, bodies[: n // 10]))  # warm-up (producer connections)
            elapsed, lat, fail = asyncio.run(_load(url, bodies))
            full = _report("waybill-watch ingest → tracking.raw", n, elapsed, lat, fail)
        print(f"ratio ingest/bare: {full / bare:.2f}", flush=True)
    finally:
        if broker is not None:
            broker.stop()
    return 0
