"""Hostile input against a real ``waybill-watch ingest`` process: memory and answers per attack.

Starts the ingest (local broker, as ``benchmarks ingest``), then throws each attack class at
it for a while from concurrent asyncio clients, while one honest sender posts a signed
canonical push every 0.25 s (from another ``X-Forwarded-For`` address: the ingest trusts
127.0.0.1 as a proxy, so the attackers' rate limit is not the honest sender's). For each attack:
the ingest's RSS (``/proc/<pid>/status`` VmRSS, sampled every 20 ms) before, at its peak and
after, the attack's answers by status code, and the honest pushes accepted during and after.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import itertools
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
import zlib
from collections import Counter
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson

from benchmarks.kafka_capture import bench_kafka

SECRET = "bench-canonical-secret"  # noqa: S105 - the bench's own ingest key
CONCURRENCY = 32
BODY_TIMEOUT_S = 2
HEADER_TIMEOUT_S = 3
#: Lower than the default 500/s so that one address can exceed it from this shared machine.
RATE_PER_S = 20


#: An attack: given the attackers' session, the stop event and the outcome, its client loops.
Attack = Callable[
    [aiohttp.ClientSession, asyncio.Event, "Outcome"], list[Coroutine[Any, Any, None]]
]


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def _sign(body: bytes) -> dict[str, str]:
    mac = hmac.new(SECRET.encode(), body, hashlib.sha256).digest()
    return {
        "Content-Type": "application/json",
        "X-Waybill-Watch-Signature": base64.b64encode(mac).decode(),
    }


def _stamped(body: bytes, at: float | None = None) -> dict[str, str]:
    stamp = str(int(time.time() if at is None else at))
    mac = hmac.new(SECRET.encode(), stamp.encode() + b"." + body, hashlib.sha256).digest()
    return {
        "Content-Type": "application/json",
        "X-Waybill-Watch-Timestamp": stamp,
        "X-Waybill-Watch-Signature-V2": base64.b64encode(mac).decode(),
    }


def _event(i: int) -> dict[str, str]:
    return {
        "waybill": f"HB{i:010d}",
        "courier": "ZTO",
        "event_time": "2026-11-26T10:00:00+08:00",
        "received_at": "2026-11-26T10:00:01+08:00",
        "status": "in_transit",
        "description": "快件已揽收",
        "source_feed": "canonical",
        "event_id": f"hostile-bench-{i}",
    }


def _gzip_zeros(size: int) -> bytes:
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    block = bytes(1 << 20)
    return b"".join(packer.compress(block) for _ in range(size >> 20)) + packer.flush()


@dataclass
class Outcome:
    name: str
    codes: Counter[str] = field(default_factory=Counter)
    rss_before: int = 0
    rss_peak: int = 0
    rss_after: int = 0
    good_during: list[int] = field(default_factory=list)
    good_after: list[int] = field(default_factory=list)
    good_worst_ms: float = 0.0


class Bench:
    def __init__(self, base: str, pid: int, seconds: float) -> None:
        self.base = base
        self.pid = pid
        self.seconds = seconds
        self.port = int(base.rsplit(":", 1)[1])
        self.serial = 0

    # --- attack clients (each runs until ``stop`` is set) -------------------------------------

    async def _post_loop(
        self,
        http: aiohttp.ClientSession,
        stop: asyncio.Event,
        outcome: Outcome,
        make: Callable[[], tuple[str, Any, dict[str, str]]],
    ) -> None:
        while not stop.is_set():
            path, body, headers = make()
            try:
                async with http.post(self.base + path, data=body, headers=headers) as response:
                    await response.read()
                    outcome.codes[str(response.status)] += 1
            except (aiohttp.ClientError, OSError) as exc:
                outcome.codes[type(exc).__name__] += 1
                await asyncio.sleep(0.01)

    async def _raw_loop(
        self,
        stop: asyncio.Event,
        outcome: Outcome,
        head: Callable[[], bytes],
        trickle: bytes,
        every: float,
    ) -> None:
        """Open a connection, send ``head``, then ``trickle`` every ``every`` s until the
        server answers or closes; count its status line (or ``closed``)."""
        while not stop.is_set():
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
            except OSError as exc:
                outcome.codes[type(exc).__name__] += 1
                await asyncio.sleep(0.05)
                continue
            writer.write(head())

            async def drip(w: asyncio.StreamWriter = writer) -> None:
                while not stop.is_set():
                    await asyncio.sleep(every)
                    w.write(trickle)
                    await w.drain()

            dripper = asyncio.create_task(drip())
            try:
                line = await reader.readline()
                outcome.codes[line.split(b" ")[1].decode() if line else "closed"] += 1
            except (ConnectionError, IndexError):
                outcome.codes["closed"] += 1
            finally:
                dripper.cancel()
                writer.close()

    def attacks(
        self,
    ) -> dict[
        str,
        Callable[[aiohttp.ClientSession, asyncio.Event, Outcome], list[Coroutine[Any, Any, None]]],
    ]:
        bomb = _gzip_zeros(1 << 30)  # 1 GiB of zeros
        deep = b"[" * 100_000 + b"]" * 100_000
        not_utf8 = b'[{"waybill": "ZT\xff\xfe\xfd"}]'
        junk_items = b"[" + b"0," * 199_999 + b"0]"
        replay_body = orjson.dumps([_event(0)])
        replay_headers = _stamped(replay_body)
        addresses = itertools.count(1)

        def xff() -> dict[str, str]:
            """A new attacker address per request (a botnet): each attack meets its own
            refusal, not the rate limit (the rate flood below uses one address)."""
            n = next(addresses)
            return {"X-Forwarded-For": f"10.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}"}

        big = b"x" * (1 << 20)

        def post(
            make: Callable[[], tuple[str, Any, dict[str, str]]], n: int = CONCURRENCY
        ) -> Attack:
            return lambda http, stop, out: [
                self._post_loop(http, stop, out, make) for _ in range(n)
            ]

        def oversized() -> tuple[str, Any, dict[str, str]]:
            async def stream() -> AsyncIterator[bytes]:  # 64 MiB, chunk by chunk
                for _ in range(64):
                    yield big

            return "/callbacks/canonical", stream(), {**xff(), "Content-Type": "application/json"}

        def stale() -> tuple[str, bytes, dict[str, str]]:
            return (
                "/callbacks/canonical",
                replay_body,
                {**xff(), **_stamped(replay_body, time.time() - 3600)},
            )

        def head() -> bytes:
            return (
                b"POST /callbacks/merchant HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: "
                + xff()["X-Forwarded-For"].encode()
                + b"\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n"
            )

        flood = {f"X-Flood-{i}": "y" * 60 for i in range(1000)}
        return {
            "gzip bomb (1.0 MiB → 1 GiB, Content-Encoding: gzip)": post(
                lambda: (
                    "/callbacks/canonical",
                    bomb,
                    {**xff(), **_sign(bomb), "Content-Encoding": "gzip"},
                ),
                8,
            ),
            "oversized body (64 MiB streamed, chunked)": post(oversized, 8),
            "slow body (1 byte/s, Content-Length 100000)": lambda http, stop, out: [
                self._raw_loop(stop, out, head, b"[", 1.0) for _ in range(200)
            ],
            "slow head (a header line per second, never ends)": lambda http, stop, out: [
                self._raw_loop(
                    stop,
                    out,
                    lambda: b"POST /callbacks/canonical HTTP/1.1\r\nHost: x\r\n",
                    b"X-A: b\r\n",
                    1.0,
                )
                for _ in range(200)
            ],
            "header flood (1000 headers, 66 KB)": post(
                lambda: ("/callbacks/canonical", b"[]", flood)
            ),
            "rate flood (one address)": post(
                lambda: (
                    "/callbacks/canonical",
                    replay_body,
                    {"X-Forwarded-For": "203.0.113.7", **_sign(replay_body)},
                ),
                64,
            ),
            "nested JSON (100,000-deep arrays, signed)": post(
                lambda: ("/callbacks/canonical", deep, {**xff(), **_sign(deep)})
            ),
            "invalid UTF-8 (signed)": post(
                lambda: ("/callbacks/merchant", not_utf8, {**xff(), **_sign(not_utf8)})
            ),
            "200,000 junk items (signed)": post(
                lambda: ("/callbacks/canonical", junk_items, {**xff(), **_sign(junk_items)})
            ),
            "replayed timestamped signature": post(
                lambda: ("/callbacks/canonical", replay_body, {**xff(), **replay_headers})
            ),
            "stale timestamp (1 h old)": post(stale),
        }

    # --- the honest sender and the memory sampler ---------------------------------------------

    async def _honest(
        self, http: aiohttp.ClientSession, stop: asyncio.Event, codes: list[int], outcome: Outcome
    ) -> None:
        while not stop.is_set():
            self.serial += 1
            body = orjson.dumps([_event(self.serial)])
            started = time.perf_counter()
            try:
                async with http.post(
                    self.base + "/callbacks/canonical",
                    data=body,
                    headers={**_stamped(body), "X-Forwarded-For": "198.51.100.1"},
                    timeout=aiohttp.ClientTimeout(total=30),
                ) as response:
                    await response.read()
                    codes.append(response.status)
            except (aiohttp.ClientError, OSError, TimeoutError):
                codes.append(0)
            outcome.good_worst_ms = max(
                outcome.good_worst_ms, (time.perf_counter() - started) * 1000
            )
            await asyncio.sleep(0.25)

    async def _sample(self, stop: asyncio.Event, outcome: Outcome) -> None:
        while not stop.is_set():
            outcome.rss_peak = max(outcome.rss_peak, _rss_kib(self.pid))
            await asyncio.sleep(0.02)

    async def run(self, name: str, make: Callable[..., list[Coroutine[Any, Any, None]]]) -> Outcome:
        outcome = Outcome(name)
        outcome.rss_before = _rss_kib(self.pid)
        outcome.rss_peak = outcome.rss_before
        stop = asyncio.Event()
        connector = aiohttp.TCPConnector(limit=0, force_close=False)
        async with (
            aiohttp.ClientSession(connector=connector) as attack_http,
            aiohttp.ClientSession() as honest_http,
        ):
            sampler = asyncio.create_task(self._sample(stop, outcome))
            tasks = [asyncio.create_task(c) for c in make(attack_http, stop, outcome)]
            honest = asyncio.create_task(
                self._honest(honest_http, stop, outcome.good_during, outcome)
            )
            await asyncio.sleep(self.seconds)
            stop.set()
            await asyncio.wait([*tasks, honest], timeout=15)
            for task in tasks:
                task.cancel()
            sampler.cancel()
            await asyncio.sleep(1.0)
            after = asyncio.Event()
            honest = asyncio.create_task(
                self._honest(honest_http, after, outcome.good_after, Outcome("x"))
            )
            await asyncio.sleep(1.0)
            after.set()
            await honest
        outcome.rss_after = _rss_kib(self.pid)
        return outcome


def _table(outcomes: list[Outcome], command: str) -> str:
    lines = [
        f"command: `{command}`",
        "",
        "| attack | answers (status: count) | ingest RSS before / peak / after (MiB) "
        "| honest pushes 200 during | after | slowest honest push |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for o in outcomes:
        codes = ", ".join(f"{k}: {v}" for k, v in sorted(o.codes.items()))
        during = f"{sum(c == 200 for c in o.good_during)}/{len(o.good_during)}"
        after = f"{sum(c == 200 for c in o.good_after)}/{len(o.good_after)}"
        lines.append(
            f"| {o.name} | {codes} | {o.rss_before / 1024:.0f} / {o.rss_peak / 1024:.0f} / "
            f"{o.rss_after / 1024:.0f} | {during} | {after} | {o.good_worst_ms:.0f} ms |"
        )
    return "\n".join(lines)


async def _wait_http(base: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 90
    async with aiohttp.ClientSession() as http:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"ingest exited {proc.returncode}")
            try:
                async with http.get(base + "/readyz") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.3)
    raise RuntimeError("ingest not ready")


async def _metrics(base: str) -> str:
    async with aiohttp.ClientSession() as http, http.get(base + "/metrics") as response:
        return await response.text()


def main(quick: bool = False) -> int:
    seconds = 3.0 if quick else 10.0
    command = ".venv/bin/python -m benchmarks hostile" + (" --quick" if quick else "")
    print(
        f"each attack {seconds:g} s from {CONCURRENCY}-200 concurrent clients in this process "
        f"(sharing the machine's {os.cpu_count()} cores with the ingest); body timeout "
        f"{BODY_TIMEOUT_S} s, header timeout {HEADER_TIMEOUT_S} s, rate limit {RATE_PER_S}/s "
        f"(burst {RATE_PER_S * 2}) per (feed, address); command: {command}",
        flush=True,
    )
    bootstrap, broker = bench_kafka()
    proc = None
    try:
        port = _port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("WAYBILL_WATCH_")}
        env.update(
            KAFKA_BOOTSTRAP_SERVERS=bootstrap,
            WAYBILL_WATCH_TOPIC_PREFIX=f"hostile{uuid.uuid4().hex[:8]}.",
            WAYBILL_WATCH_CANONICAL_SECRET=SECRET,
            WAYBILL_WATCH_MERCHANT_SECRET=SECRET,
            WAYBILL_WATCH_WEB_PORT=str(port),
            WAYBILL_WATCH_TRUSTED_PROXIES="127.0.0.1",
            WAYBILL_WATCH_BODY_TIMEOUT_SECONDS=str(BODY_TIMEOUT_S),
            WAYBILL_WATCH_HEADER_TIMEOUT_SECONDS=str(HEADER_TIMEOUT_S),
            WAYBILL_WATCH_RATE_LIMIT_PER_SECOND=str(RATE_PER_S),
            WAYBILL_WATCH_RATE_LIMIT_BURST=str(RATE_PER_S * 2),
            WAYBILL_WATCH_LOG_LEVEL="warning",
        )
        subprocess.run(
            [sys.executable, "-m", "benchmarks.bare_server", "--create-topics"], env=env, check=True
        )
        log_path = os.path.join(tempfile.gettempdir(), f"hostile-bench-ingest-{port}.log")
        with open(log_path, "wb") as log:  # never a pipe nobody reads: a full one blocks it
            proc = subprocess.Popen(
                [sys.executable, "-m", "waybill_watch", "ingest"],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        print(f"ingest log: {log_path}", flush=True)
        base = f"http://127.0.0.1:{port}"
        asyncio.run(_wait_http(base, proc))
        bench = Bench(base, proc.pid, seconds)

        async def everything() -> list[Outcome]:
            outcomes = []
            for name, make in bench.attacks().items():
                outcome = await bench.run(name, make)
                print(
                    f"{name}: {dict(outcome.codes)}; RSS {outcome.rss_before // 1024}/"
                    f"{outcome.rss_peak // 1024}/{outcome.rss_after // 1024} MiB; honest "
                    f"{outcome.good_during.count(200)}/{len(outcome.good_during)} during, "
                    f"{outcome.good_after.count(200)}/{len(outcome.good_after)} after",
                    flush=True,
                )
                outcomes.append(outcome)
                assert proc is not None and proc.poll() is None, "the ingest died"
            return outcomes

        outcomes = asyncio.run(everything())
        text = asyncio.run(_metrics(base))
        print()
        print(_table(outcomes, command))
        print()
        print("rejections counted by the ingest (waybill_watch_callbacks_rejected_total):")
        for line in text.splitlines():
            if line.startswith("waybill_watch_callbacks_rejected_total{"):
                print("   ", line)
        five = [
            line
            for line in text.splitlines()
            if line.startswith("waybill_watch_callback_responses_total{") and 'code="5' in line
        ]
        print("5xx answers:", five or "none", flush=True)
        with open(log_path, errors="replace") as log_file:
            dropped = "falling back to filtered kwargs" in log_file.read()
        print("aiohttp dropped the runner arguments:", dropped, flush=True)
        alive = proc.poll() is None
        print("ingest process alive at the end:", alive, flush=True)
        return 0 if alive and not five and not dropped else 1
    finally:
        if proc is not None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
        if broker is not None:
            broker.stop()


if __name__ == "__main__":
    sys.exit(main("--quick" in sys.argv))
