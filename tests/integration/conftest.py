"""Integration helpers: a real ``waybill-watch worker`` process against the test broker."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import orjson
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import ConsumerRecord

from waybill_watch.ops import metric_sum

READY_TIMEOUT_S = 120.0


def free_tcp_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class RunningWorker:
    """One worker process with its own topic prefix, data dir and web port."""

    bootstrap: str
    prefix: str
    port: int
    env: dict[str, str]
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None
    consumers: list[AIOKafkaConsumer] = field(default_factory=list)
    #: The ``waybill-watch`` sub-command this process runs (``worker`` or ``ingest``).
    command: str = "worker"

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def topic(self, name: str) -> str:
        return self.prefix + name

    def start(self) -> RunningWorker:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "waybill_watch", self.command],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        return self

    async def wait_ready(self, timeout: float = READY_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout
        async with aiohttp.ClientSession() as http:
            while time.monotonic() < deadline:
                assert self.proc is not None
                if self.proc.poll() is not None:
                    pytest.fail(f"worker exited {self.proc.returncode}:\n{self.log_tail()}")
                try:
                    async with http.get(self.base_url + "/readyz") as response:
                        if response.status == 200:
                            return
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.5)
        pytest.fail(f"worker not ready after {timeout} s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 60) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, sig: signal.Signals = signal.SIGTERM, timeout: float = 60) -> int:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()

    async def post(
        self, feed: str, body: bytes, headers: dict[str, str] | None = None
    ) -> tuple[int, bytes]:
        async with (
            aiohttp.ClientSession() as http,
            http.post(
                f"{self.base_url}/callbacks/{feed}", data=body, headers=headers or {}
            ) as response,
        ):
            return response.status, await response.read()

    async def metrics(self) -> str:
        async with aiohttp.ClientSession() as http, http.get(self.base_url + "/metrics") as r:
            return await r.text()

    async def read_topic(
        self,
        name: str,
        *,
        until: Callable[[list[dict[str, Any]]], bool],
        timeout: float = 90.0,
        committed: bool = False,
    ) -> list[dict[str, Any]]:
        """Read ``name`` from the beginning until ``until(records)`` holds or time runs out
        (``committed``: only what committed transactions wrote, as under exactly-once)."""
        topic = self.topic(name)
        consumer = AIOKafkaConsumer(
            topic,
            bootstrap_servers=self.bootstrap,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            isolation_level="read_committed" if committed else "read_uncommitted",
        )
        await consumer.start()
        try:
            records: list[dict[str, Any]] = []
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                batch = await consumer.getmany(timeout_ms=500)
                for messages in batch.values():
                    records.extend(orjson.loads(m.value) for m in messages)
                if until(records):
                    return records
            return records
        finally:
            await consumer.stop()

    async def read_records(
        self,
        name: str,
        *,
        until: Callable[[list[ConsumerRecord]], bool],
        timeout: float = 90.0,
    ) -> list[ConsumerRecord]:
        """Like ``read_topic`` but the raw records (key, value bytes, headers): for topics that
        may hold records that are not JSON (what tests produced on purpose)."""
        consumer = AIOKafkaConsumer(
            self.topic(name),
            bootstrap_servers=self.bootstrap,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )
        await consumer.start()
        try:
            records: list[ConsumerRecord] = []
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                batch = await consumer.getmany(timeout_ms=500)
                for messages in batch.values():
                    records.extend(messages)
                if until(records):
                    return records
            return records
        finally:
            await consumer.stop()

    async def produce(
        self,
        name: str,
        value: bytes,
        *,
        key: bytes | None = None,
        headers: dict[str, bytes] | None = None,
    ) -> None:
        """Write one record straight to the prefixed topic ``name`` (acks=all)."""
        producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap, acks="all")
        await producer.start()
        try:
            await producer.send_and_wait(
                self.topic(name), value, key=key, headers=list((headers or {}).items()) or None
            )
        finally:
            await producer.stop()

    async def get(self, path: str) -> tuple[int, bytes]:
        """``GET path`` on this process's web port."""
        async with aiohttp.ClientSession() as http, http.get(self.base_url + path) as response:
            return response.status, await response.read()

    async def metric(self, name: str, **labels: str) -> float:
        """The sum of every sample of ``name`` whose labels include ``labels``."""
        return metric_sum(await self.metrics(), name, **labels)

    async def wait_metric(
        self,
        name: str,
        reached: Callable[[float], bool],
        *,
        timeout: float = 60.0,
        **labels: str,
    ) -> float:
        """Poll ``/metrics`` until ``reached(value)`` holds (or time runs out); the last value."""
        deadline = time.monotonic() + timeout
        value = await self.metric(name, **labels)
        while not reached(value) and time.monotonic() < deadline:
            await asyncio.sleep(0.25)
            value = await self.metric(name, **labels)
        return value


@pytest.fixture
def worker_factory(kafka_bootstrap: str, tmp_path: Path) -> Iterator[Callable[..., RunningWorker]]:
    """Start workers with isolated topics; every one is stopped at the end of the test."""
    started: list[RunningWorker] = []

    def make(prefix: str | None = None, **env: str) -> RunningWorker:
        prefix = prefix or f"t{uuid.uuid4().hex[:10]}."
        port = free_tcp_port()
        data_dir = tmp_path / f"worker-{len(started)}"
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("WAYBILL_WATCH_")}
        full_env.update(
            {
                "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
                "WAYBILL_WATCH_TOPIC_PREFIX": prefix,
                "WAYBILL_WATCH_WEB_PORT": str(port),
                "WAYBILL_WATCH_ADVERTISED_URL": f"http://127.0.0.1:{port}",
                "WAYBILL_WATCH_DATA_DIR": str(data_dir),
                "WAYBILL_WATCH_PARTITIONS": "4",
                "WAYBILL_WATCH_TICK_INTERVAL_SECONDS": "1",
                "WAYBILL_WATCH_LOG_LEVEL": "info",
            }
        )
        full_env.update(env)
        worker = RunningWorker(
            kafka_bootstrap, prefix, port, full_env, tmp_path / f"worker-{len(started)}.log"
        )
        started.append(worker)
        return worker.start()

    yield make
    for worker in started:
        worker.stop()


def spawn_process(
    bootstrap: str,
    workdir: Path,
    name: str,
    *,
    command: str = "worker",
    prefix: str | None = None,
    **env: str,
) -> RunningWorker:
    """Start ``waybill-watch <command>`` with the same isolated settings as ``worker_factory``
    (own topic prefix, web port, data dir); ``env`` overrides them."""
    prefix = prefix or f"t{uuid.uuid4().hex[:10]}."
    port = free_tcp_port()
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("WAYBILL_WATCH_")}
    full_env.update(
        {
            "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "WAYBILL_WATCH_TOPIC_PREFIX": prefix,
            "WAYBILL_WATCH_WEB_PORT": str(port),
            "WAYBILL_WATCH_ADVERTISED_URL": f"http://127.0.0.1:{port}",
            "WAYBILL_WATCH_DATA_DIR": str(workdir / name),
            "WAYBILL_WATCH_PARTITIONS": "4",
            "WAYBILL_WATCH_TICK_INTERVAL_SECONDS": "1",
            "WAYBILL_WATCH_LOG_LEVEL": "info",
        }
    )
    full_env.update(env)
    process = RunningWorker(
        full_env["KAFKA_BOOTSTRAP_SERVERS"],
        prefix,
        port,
        full_env,
        workdir / f"{name}.log",
        command=command,
    )
    return process.start()


@pytest.fixture(scope="module")
def module_worker_factory(
    kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[..., RunningWorker]]:
    """``worker_factory`` for workers shared by a whole module (starting one costs seconds)."""
    workdir = tmp_path_factory.mktemp("module-workers")
    started: list[RunningWorker] = []

    def make(prefix: str | None = None, **env: str) -> RunningWorker:
        worker = spawn_process(
            kafka_bootstrap, workdir, f"worker-{len(started)}", prefix=prefix, **env
        )
        started.append(worker)
        return worker

    yield make
    for worker in started:
        worker.stop()


@pytest.fixture
def ingest_factory(kafka_bootstrap: str, tmp_path: Path) -> Iterator[Callable[..., RunningWorker]]:
    """Start ``waybill-watch ingest`` processes (stopped at the end of the test).

    ``make(prefix, **env)``: pass the worker's prefix to feed that worker; ``env`` may point
    ``KAFKA_BOOTSTRAP_SERVERS`` elsewhere."""
    started: list[RunningWorker] = []

    def make(prefix: str | None = None, **env: str) -> RunningWorker:
        process = spawn_process(
            kafka_bootstrap,
            tmp_path,
            f"ingest-{len(started)}",
            command="ingest",
            prefix=prefix,
            **env,
        )
        started.append(process)
        return process

    yield make
    for process in started:
        process.stop()


def recent_daytime(now: datetime | None = None) -> datetime:
    """A base time ``t0`` for test traces spanning ``t0 - 1 h`` to ``t0 + 3 h``: all in
    08:00–21:00 Shanghai time (never the odd-hours window), all at least an hour past, and
    less than 20 h ago, so no 24 h deadline (last-mile stall, first scan) is due yet at
    whatever time of day the suite runs. (Yesterday 09:00 was 24 h old from 09:00 on: a
    waybill left out for delivery then opened a last-mile stall.)"""
    now = now if now is not None else datetime.now(ZoneInfo("Asia/Shanghai"))
    t0 = (now - timedelta(hours=4)).replace(minute=0, second=0, microsecond=0)
    if t0.hour < 9:
        t0 = (t0 - timedelta(days=1)).replace(hour=18)
    elif t0.hour > 18:
        t0 = t0.replace(hour=18)
    return t0
