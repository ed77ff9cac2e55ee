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
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from aiokafka import AIOKafkaConsumer

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

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def topic(self, name: str) -> str:
        return self.prefix + name

    def start(self) -> RunningWorker:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "waybill_watch", "worker"],
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
    ) -> list[dict[str, Any]]:
        """Read ``name`` from the beginning until ``until(records)`` holds or time runs out."""
        topic = self.topic(name)
        consumer = AIOKafkaConsumer(
            topic,
            bootstrap_servers=self.bootstrap,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
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
