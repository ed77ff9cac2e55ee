"""Shared test fixtures: one real Kafka broker per session, started only when asked for.

Broker order: ``KAFKA_BOOTSTRAP_SERVERS`` (must answer) → a Docker engine if one answers
(``apache/kafka`` image) → the local Maven-jar broker (``waybill_watch.devbroker``).
With none of them the requesting tests fail; they are never skipped.

PostgreSQL likewise, one server per session: ``WAYBILL_WATCH_DATABASE_URL`` (must answer)
→ Docker (``postgres:16``) → the local server from the installed binaries
(``waybill_watch.devdb``, fsync off). Each test asking for ``database_url`` gets a new,
empty database on it, dropped afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
import uuid
import warnings
from collections.abc import Awaitable, Callable, Iterator, Sequence

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from waybill_watch.devbroker import KAFKA_VERSION, BrokerError, LocalBroker, wait_until_ready
from waybill_watch.devbroker.config import free_port
from waybill_watch.devdb import (
    DATABASE,
    DatabaseError,
    LocalPostgres,
    create_database,
    drop_database,
    redact_url,
)
from waybill_watch.devdb import wait_until_ready as wait_until_database_ready
from waybill_watch.devdb.server import NON_DURABLE

BROKER_FIXTURE = "kafka_bootstrap"
DATABASE_FIXTURE = "postgres_server_url"
DATABASE_URL_ENV = "WAYBILL_WATCH_DATABASE_URL"
POSTGRES_IMAGE = "postgres:16"
EXTERNAL_READY_S = 30.0
DOCKER_READY_S = 120.0
TOPIC_READY_S = 15.0

CreateTopics = Callable[[str, Sequence[str], int], Awaitable[None]]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test that uses the broker or the database server (``database_url`` included: it
    depends on the server) is an ``integration`` test (``-m 'not integration'``)."""
    for item in items:
        names = getattr(item, "fixturenames", ())
        if BROKER_FIXTURE in names or DATABASE_FIXTURE in names:
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    """``host:port`` of a ready Kafka broker shared by the whole session."""
    external = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "").strip()
    if external:
        try:
            wait_until_ready(external, EXTERNAL_READY_S)
        except BrokerError as exc:
            pytest.fail(f"KAFKA_BOOTSTRAP_SERVERS={external} does not answer: {exc}", pytrace=False)
        yield external
        return
    with _docker_or_local_broker() as bootstrap:
        yield bootstrap


@contextlib.contextmanager
def _docker_or_local_broker() -> Iterator[str]:
    if _docker_answers():
        stack = contextlib.ExitStack()
        try:
            bootstrap = stack.enter_context(_docker_kafka())
        except Exception as exc:  # an unusable engine must not hide the local fallback
            warnings.warn(f"Docker Kafka failed ({exc}); using the local broker", stacklevel=1)
        else:
            with stack:
                yield bootstrap
            return
    broker = LocalBroker()
    try:
        bootstrap = broker.start()
    except BrokerError as exc:
        pytest.fail(
            "no Kafka broker for the integration tests: KAFKA_BOOTSTRAP_SERVERS is unset, "
            f"no Docker engine answers, and the local broker failed:\n{exc}",
            pytrace=False,
        )
    try:
        yield bootstrap
    finally:
        broker.stop()


def _docker_answers() -> bool:
    try:
        import docker

        docker.from_env(timeout=5).ping()
    except Exception:
        return False
    return True


@contextlib.contextmanager
def _docker_kafka() -> Iterator[str]:
    """``apache/kafka`` on the same host and container port, so the advertised address
    works from the host and from inside the container (local Docker engines only)."""
    from testcontainers.core.container import DockerContainer

    port = free_port()
    container = DockerContainer(f"apache/kafka:{KAFKA_VERSION}").with_bind_ports(port, port)
    container.with_envs(
        KAFKA_NODE_ID="1",
        KAFKA_PROCESS_ROLES="broker,controller",
        KAFKA_LISTENERS=f"PLAINTEXT://0.0.0.0:{port},CONTROLLER://0.0.0.0:9093",
        KAFKA_ADVERTISED_LISTENERS=f"PLAINTEXT://127.0.0.1:{port}",
        KAFKA_CONTROLLER_LISTENER_NAMES="CONTROLLER",
        KAFKA_LISTENER_SECURITY_PROTOCOL_MAP="CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        KAFKA_CONTROLLER_QUORUM_VOTERS="1@localhost:9093",
        KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR="1",
        KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR="1",
        KAFKA_TRANSACTION_STATE_LOG_MIN_ISR="1",
        KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS="0",
        KAFKA_AUTO_CREATE_TOPICS_ENABLE="false",
    )
    with container:
        bootstrap = f"127.0.0.1:{port}"
        wait_until_ready(bootstrap, DOCKER_READY_S, probe_topic=True)
        yield bootstrap


# --- helpers for tests -------------------------------------------------------------------


def make_unique_name(prefix: str) -> str:
    """A topic/group name no other test (or earlier run on a kept broker) uses."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


async def create_kafka_topics(bootstrap: str, names: Sequence[str], partitions: int) -> None:
    """Create topics and wait until every partition has a leader (producers need one)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        new = [NewTopic(name, num_partitions=partitions, replication_factor=1) for name in names]
        response = await admin.create_topics(new)
        failed = [(topic, code, rest) for topic, code, *rest in response.topic_errors if code]
        assert not failed, f"create_topics failed: {failed}"
        await _wait_for_leaders(admin, list(names), partitions)
    finally:
        await admin.close()


async def _wait_for_leaders(admin: AIOKafkaAdminClient, names: list[str], partitions: int) -> None:
    deadline = time.monotonic() + TOPIC_READY_S
    while True:
        topics = await admin.describe_topics(names)
        ready = [
            t
            for t in topics
            if t["error_code"] == 0
            and len(t["partitions"]) == partitions
            and all(p["leader"] >= 0 for p in t["partitions"])
        ]
        if len(ready) == len(names):
            return
        assert time.monotonic() < deadline, f"topics {names} have no leaders: {topics}"
        await asyncio.sleep(0.1)


@pytest.fixture
def unique_name() -> Callable[[str], str]:
    """``unique_name("orders")`` → ``"orders-1a2b3c4d5e6f"``."""
    return make_unique_name


@pytest.fixture
def create_topics() -> CreateTopics:
    """``await create_topics(bootstrap, ["t1", "t2"], 3)``."""
    return create_kafka_topics


# --- PostgreSQL ------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def postgres_server_url() -> Iterator[str]:
    """URL of a ready PostgreSQL server shared by the whole session.

    Its database belongs to the session: tests that write should use ``database_url``.
    """
    external = os.environ.get(DATABASE_URL_ENV, "").strip()
    if external:
        try:
            wait_until_database_ready(external, EXTERNAL_READY_S)
        except DatabaseError as exc:
            pytest.fail(
                f"{DATABASE_URL_ENV}={redact_url(external)} does not answer: {exc}",
                pytrace=False,
            )
        yield external
        return
    with _docker_or_local_postgres() as url:
        yield url


@pytest.fixture
def database_url(postgres_server_url: str) -> Iterator[str]:
    """URL of a new, empty database of this test's own (dropped afterwards)."""
    name = f"test_{uuid.uuid4().hex[:16]}"
    try:
        url = create_database(postgres_server_url, name)
    except DatabaseError as exc:
        pytest.fail(f"cannot create a test database: {exc}", pytrace=False)
    try:
        yield url
    finally:
        drop_database(postgres_server_url, name)


@contextlib.contextmanager
def _docker_or_local_postgres() -> Iterator[str]:
    if _docker_answers():
        stack = contextlib.ExitStack()
        try:
            url = stack.enter_context(_docker_postgres())
        except Exception as exc:  # an unusable engine must not hide the local fallback
            warnings.warn(f"Docker PostgreSQL failed ({exc}); using the local server", stacklevel=1)
        else:
            with stack:
                yield url
            return
    server = LocalPostgres(durable=False)
    try:
        url = server.start()
    except DatabaseError as exc:
        pytest.fail(
            f"no PostgreSQL server for the integration tests: {DATABASE_URL_ENV} is unset, "
            f"no Docker engine answers, and the local server failed:\n{exc}",
            pytrace=False,
        )
    try:
        yield url
    finally:
        server.stop()


@contextlib.contextmanager
def _docker_postgres() -> Iterator[str]:
    """``postgres:16`` with trust auth and fsync off, like the local test server."""
    from testcontainers.core.container import DockerContainer

    port = free_port()
    container = DockerContainer(POSTGRES_IMAGE).with_bind_ports(5432, port)
    container.with_envs(POSTGRES_HOST_AUTH_METHOD="trust", POSTGRES_DB=DATABASE)
    container.with_command(["postgres", *(arg for s in NON_DURABLE for arg in ("-c", s))])
    with container:
        url = f"postgresql://postgres@127.0.0.1:{port}/{DATABASE}"
        wait_until_database_ready(url, DOCKER_READY_S)
        yield url
