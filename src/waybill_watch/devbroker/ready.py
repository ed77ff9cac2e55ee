"""Waiting until a Kafka broker really serves clients, not just until its port is open.

An open port is not enough with KRaft: the broker answers before it has registered with
the controller, and until then topic creation fails. So readiness means: a metadata
request lists a broker and a controller, and (optionally, for brokers we own) a topic
can be created and deleted.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from waybill_watch.devbroker import BrokerError
from waybill_watch.kafka_client import (
    KafkaConnection,
    KafkaSecurityError,
    as_connection,
    start_client,
)

T = TypeVar("T")

ATTEMPT_TIMEOUT_S = 15.0
RETRY_DELAY_S = 0.25
TCP_TIMEOUT_S = 2.0
#: A login refused (or a TLS handshake failed) this many times in a row is final: a broker
#: that is still starting may refuse once, a wrong password never stops being wrong.
SECURITY_FAILURES_FINAL = 3


class _NotReady(Exception):
    """The broker answered but is not serving yet."""


def wait_until_ready(
    bootstrap: str | KafkaConnection,
    timeout: float,
    *,
    probe_topic: bool = False,
    check: Callable[[], None] | None = None,
    brokers: int = 1,
) -> None:
    """Block until ``bootstrap`` (``host:port[,host:port...]``, or a connection with TLS/SASL
    settings) serves metadata requests.

    ``brokers``: how many brokers the metadata must list (every node of a cluster).
    ``probe_topic`` also creates and deletes a throw-away topic (only for brokers we own),
    replicated on ``brokers`` of them.
    ``check`` runs between attempts and may raise to abort early (e.g. process died).
    Raises :class:`BrokerError` after ``timeout`` seconds. Safe to call while an event loop
    runs in this thread (the wait then runs in a helper thread and blocks this one).
    """
    _run_blocking(
        lambda: wait_until_ready_async(
            bootstrap, timeout, probe_topic=probe_topic, check=check, brokers=brokers
        )
    )


async def wait_until_ready_async(
    bootstrap: str | KafkaConnection,
    within: float,
    *,
    probe_topic: bool = False,
    check: Callable[[], None] | None = None,
    brokers: int = 1,
) -> None:
    """Async form of :func:`wait_until_ready` (``within`` is its ``timeout``)."""
    connection = as_connection(bootstrap)
    bootstrap = connection.bootstrap_servers
    split_bootstrap(bootstrap)  # a typo fails now, not after the timeout
    deadline = time.monotonic() + within
    last_error = "no attempt finished"
    refused = 0
    while True:
        if check is not None:
            check()
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise BrokerError(
                f"Kafka at {bootstrap} not ready after {within:.0f} s (last error: {last_error})"
            )
        try:
            await asyncio.wait_for(
                _probe(connection, probe_topic, brokers), min(remaining, ATTEMPT_TIMEOUT_S)
            )
            return
        except TimeoutError:
            last_error, refused = "attempt timed out", 0
        except KafkaSecurityError as exc:
            refused += 1
            if refused >= SECURITY_FAILURES_FINAL:
                raise BrokerError(f"Kafka at {bootstrap} refuses this client: {exc}") from None
            last_error = str(exc)
        except Exception as exc:  # aiokafka raises many unrelated types while starting
            last_error, refused = f"{type(exc).__name__}: {exc}", 0
        await asyncio.sleep(max(0.0, min(RETRY_DELAY_S, deadline - time.monotonic())))


def split_bootstrap(bootstrap: str) -> list[tuple[str, int]]:
    """``"a:1,b:2"`` → ``[("a", 1), ("b", 2)]``; raises BrokerError on a malformed entry."""
    hosts: list[tuple[str, int]] = []
    for entry in bootstrap.split(","):
        host, sep, port = entry.strip().rpartition(":")
        if not sep or not host or not port.isdigit():
            raise BrokerError(f"bad bootstrap server {entry.strip()!r}: expected host:port")
        hosts.append((host.strip("[]"), int(port)))
    return hosts


async def _tcp_reachable(bootstrap: str) -> None:
    """Fail fast (and quietly) while nothing listens, before aiokafka logs errors."""
    errors: list[str] = []
    for host, port in split_bootstrap(bootstrap):
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), TCP_TIMEOUT_S)
        except (OSError, TimeoutError) as exc:
            errors.append(f"{host}:{port}: {exc or type(exc).__name__}")
            continue
        writer.close()
        await writer.wait_closed()
        return
    raise _NotReady("; ".join(errors))


async def _probe(connection: KafkaConnection, probe_topic: bool, brokers: int = 1) -> None:
    await _tcp_reachable(connection.bootstrap_servers)
    admin = AIOKafkaAdminClient(**connection.aiokafka_options(), request_timeout_ms=10_000)
    try:
        await start_client(admin, connection)
        cluster: dict[str, Any] = await admin.describe_cluster()
        listed = len(cluster.get("brokers") or ())
        if listed < max(1, brokers):
            raise _NotReady(f"metadata lists {listed} of {brokers} brokers yet")
        if cluster.get("controller_id", -1) < 0:
            raise _NotReady("metadata names no controller yet")
        if probe_topic:
            await _create_and_delete_topic(admin, max(1, brokers))
    finally:
        await admin.close()


async def _create_and_delete_topic(admin: AIOKafkaAdminClient, replication: int = 1) -> None:
    name = f"waybill-watch-ready-{uuid.uuid4().hex}"
    created = await admin.create_topics(
        [NewTopic(name, num_partitions=1, replication_factor=replication)]
    )
    for topic, code, *rest in created.topic_errors:
        if code != 0:
            raise _NotReady(f"creating probe topic {topic} failed: error {code} {rest}")
    deleted = await admin.delete_topics([name])
    for topic, code, *_ in deleted.topic_error_codes:
        if code != 0:
            raise _NotReady(f"deleting probe topic {topic} failed: error {code}")


def _run_blocking(make: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine to completion from sync code, even if a loop runs in this thread."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(make())
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="kafka-ready") as pool:
        return pool.submit(lambda: asyncio.run(make())).result()
