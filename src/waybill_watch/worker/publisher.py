"""A durable producer for ingest: a callback is acknowledged only after Kafka acknowledged it."""

from __future__ import annotations

import asyncio

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from waybill_watch.kafka_client import KafkaConnection, as_connection, start_client


class KafkaStartError(Exception):
    """The producer could not start: no broker answered at ``bootstrap``, or the address is
    malformed. Raised once at start, so the operator fixes the setting instead of the process
    serving callbacks it can never acknowledge; failed writes later are 503s, not this."""

    def __init__(self, bootstrap: str, cause: Exception) -> None:
        self.bootstrap = bootstrap
        self.cause = cause
        detail = str(cause)
        name = type(cause).__name__
        # aiokafka's errors already start with their class name; ValueError's do not.
        self.detail = detail if detail.startswith(name) else f"{name}: {detail}"
        super().__init__(f"cannot reach Kafka at {bootstrap} ({self.detail})")


class RawPublisher:
    """Writes capture envelopes to ``tracking.raw`` with acks=all and idempotence."""

    def __init__(
        self, kafka: str | KafkaConnection, topic: str, *, request_timeout_ms: int = 15_000
    ) -> None:
        self.topic = topic
        self.kafka = as_connection(kafka)  # a bare bootstrap string: PLAINTEXT
        self.bootstrap = self.kafka.bootstrap_servers
        self.request_timeout_ms = request_timeout_ms
        self._producer: AIOKafkaProducer | None = None

    async def start(self) -> None:
        """Connect (aiokafka binds the producer to the running loop, so it is made here).

        aiokafka tries each bootstrap server once (each bounded by ``request_timeout_ms``) and
        gives up; that is final here too, as :class:`KafkaStartError`, with no retry loop."""
        try:
            producer = AIOKafkaProducer(
                **self.kafka.aiokafka_options(),
                acks="all",
                enable_idempotence=True,
                linger_ms=2,
                request_timeout_ms=self.request_timeout_ms,
            )
        except (OSError, ValueError) as exc:  # a CA or certificate file that is not PEM
            raise KafkaStartError(self.bootstrap, exc) from exc
        try:
            await start_client(producer, self.kafka)  # a refused login says so
        except (KafkaError, ValueError) as exc:  # ValueError: a malformed host:port
            await producer.stop()  # else aiokafka reports an "Unclosed AIOKafkaProducer"
            raise KafkaStartError(self.bootstrap, exc) from exc
        self._producer = producer

    async def stop(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            await producer.stop()

    async def __call__(self, envelope: bytes) -> None:
        """Send one serialised envelope and wait for the broker's acknowledgement."""
        if self._producer is None:
            raise RuntimeError("raw publisher is not started")
        await self._producer.send_and_wait(self.topic, envelope)

    async def readiness(self, topics: tuple[str, ...]) -> tuple[bool, str]:
        """Connected to Kafka and every topic present (a metadata request to the cluster)."""
        if self._producer is None:
            return False, "producer not started"
        try:
            metadata = await asyncio.wait_for(self._producer.client.fetch_all_metadata(), 5.0)
            known = metadata.topics()
        except Exception as exc:  # any client error means "not ready", with the reason
            return False, f"metadata request failed: {exc!r}"
        missing = [t for t in topics if t not in known]
        if missing:
            return False, f"missing topics: {missing}"
        return True, "ok"
