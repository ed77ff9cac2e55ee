"""Where simulated envelopes go: a capture file, the HTTP callbacks, or ``tracking.raw``.

aiohttp and aiokafka are imported lazily inside the async sinks, so the generator and the
file sink (tests, benchmarks, replay) never load them.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from waybill_watch.simulate.encode import Envelope

if TYPE_CHECKING:
    from waybill_watch.kafka_client import KafkaConnection


@contextmanager
def _open_out(path: str) -> Iterator[IO[bytes]]:
    if path == "-":
        yield sys.stdout.buffer
        sys.stdout.buffer.flush()
        return
    with Path(path).open("wb", buffering=1 << 20) as handle:
        yield handle


def write_capture(envelopes: Iterable[Envelope], path: str) -> int:
    """Write JSON Lines of capture envelopes; returns how many."""
    count = 0
    with _open_out(path) as out:
        write = out.write
        for envelope in envelopes:
            write(envelope.line())
            count += 1
    return count


class Pacer:
    """Holds envelopes back so simulated time runs ``speed`` times as fast as the wall clock."""

    def __init__(self, speed: float | None) -> None:
        self.speed = speed
        self._origin: tuple[int, float] | None = None

    async def wait(self, at: int) -> None:
        if not self.speed:
            return
        if self._origin is None:
            self._origin = (at, time.monotonic())
        sim0, wall0 = self._origin
        delay = wall0 + (at - sim0) / 1000 / self.speed - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)


class SinkUnreachable(Exception):
    """A live sink refused before the first envelope (no broker at the address, or a malformed
    one). Raised instead of counting every envelope as failed, so the caller can name the
    address to fix in one line."""

    def __init__(self, sink: str, address: str, cause: Exception) -> None:
        self.sink = sink
        self.address = address
        text, name = str(cause), type(cause).__name__
        # aiokafka's errors already start with their class name; ValueError's do not.
        self.detail = text if text.startswith(name) else f"{name}: {text}"
        super().__init__(f"cannot reach {sink} at {address} ({self.detail})")


@dataclass(slots=True)
class SendReport:
    """Outcome of sending to a live endpoint."""

    sent: int = 0
    failed: int = 0  # non-2xx answers or transport errors
    statuses: dict[str, int] = field(default_factory=dict)

    def count(self, status: str, ok: bool) -> None:
        self.sent += 1
        self.failed += not ok
        self.statuses[status] = self.statuses.get(status, 0) + 1

    def to_json(self) -> dict[str, Any]:
        return {"sent": self.sent, "failed": self.failed, "statuses": self.statuses}


async def send_http(
    envelopes: Iterable[Envelope], base_url: str, *, concurrency: int, speed: float | None
) -> SendReport:
    """POST each body to ``{base_url}/callbacks/{feed}`` with its headers, N at once.

    Raises :class:`SinkUnreachable` when nothing accepts a connection at ``base_url`` (one
    probe first): with ``--realtime`` the run would otherwise fail for its whole duration.
    Any HTTP answer to the probe is fine; failures after it are counted per envelope."""
    import aiohttp

    report = SendReport()
    pacer = Pacer(speed)
    slots = asyncio.Semaphore(concurrency)
    base = base_url.rstrip("/")
    tasks: set[asyncio.Task[None]] = set()
    timeout = aiohttp.ClientTimeout(total=30)

    async with aiohttp.ClientSession(timeout=timeout) as session:
        try:
            async with session.get(f"{base}/healthz") as probe:
                await probe.read()
        except (aiohttp.ClientConnectionError, aiohttp.InvalidURL, TimeoutError) as exc:
            raise SinkUnreachable("the worker's HTTP", base, exc) from exc

        async def post(envelope: Envelope) -> None:
            try:
                async with session.post(
                    f"{base}/callbacks/{envelope.feed}",
                    data=envelope.body.encode("utf-8"),
                    headers=envelope.headers,
                ) as response:
                    await response.read()
                    report.count(str(response.status), 200 <= response.status < 300)
            except (aiohttp.ClientError, TimeoutError) as exc:
                report.count(type(exc).__name__, False)
            finally:
                slots.release()

        for envelope in envelopes:
            await pacer.wait(envelope.received_at)
            await slots.acquire()
            task = asyncio.create_task(post(envelope))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        if tasks:
            await asyncio.gather(*tasks)
    return report


async def send_kafka(
    envelopes: Iterable[Envelope],
    kafka: str | KafkaConnection,
    topic: str,
    *,
    speed: float | None,
) -> SendReport:
    """Produce each envelope (the capture line without newline) to ``topic``, acks=all
    (``kafka``: a connection with its TLS/SASL settings, or a bare PLAINTEXT bootstrap).

    Raises :class:`SinkUnreachable` when the producer cannot start; it is stopped first, else
    aiokafka reports an "Unclosed AIOKafkaProducer" on the way out."""
    from aiokafka import AIOKafkaProducer
    from aiokafka.errors import KafkaError

    from waybill_watch.kafka_client import as_connection, start_client

    connection = as_connection(kafka)
    report = SendReport()
    pacer = Pacer(speed)
    producer = AIOKafkaProducer(
        **connection.aiokafka_options(), acks="all", enable_idempotence=True, linger_ms=5
    )
    try:
        await start_client(producer, connection)
    except (KafkaError, ValueError) as exc:  # ValueError: a malformed host:port
        await producer.stop()
        raise SinkUnreachable("Kafka", connection.bootstrap_servers, exc) from exc
    try:
        pending: list[asyncio.Future[Any]] = []
        for envelope in envelopes:
            await pacer.wait(envelope.received_at)
            pending.append(await producer.send(topic, envelope.line()[:-1]))
            if len(pending) >= 1000:
                await _settle(pending, report)
        await _settle(pending, report)
    finally:
        await producer.stop()
    return report


async def _settle(pending: list[asyncio.Future[Any]], report: SendReport) -> None:
    results = await asyncio.gather(*pending, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            report.count(type(result).__name__, False)
        else:
            report.count("acked", True)
    pending.clear()
