"""A worker started while a broker just died retries instead of exiting.

Found by the cluster kill loop (tests/integration/test_kill_loop_cluster.py): until the
controller fences a dead broker the metadata still names it, and requests routed there fail.
``waybill-watch worker`` then exited 2 from topic preparation (aiokafka ``NodeNotReadyError``)
or 1 with a traceback from quix-streams' topic inspection ("Timed out waiting for controller")
although the cluster served again seconds later."""

from __future__ import annotations

from typing import Any, ClassVar

import pytest
from aiokafka.errors import NodeNotReadyError, TopicAuthorizationFailedError
from confluent_kafka import KafkaError, KafkaException
from quixstreams.models.topics.exceptions import TopicNotFoundError

from waybill_watch.cli import create_worker_retrying, is_transient_kafka_error
from waybill_watch.settings import Settings
from waybill_watch.worker import topics
from waybill_watch.worker.topics import TopicNames, ensure_topics

TIMED_OUT = KafkaException(KafkaError(KafkaError._TIMED_OUT, "Timed out waiting for controller"))
DENIED = KafkaException(KafkaError(KafkaError.TOPIC_AUTHORIZATION_FAILED))


def _flaky(*failures: BaseException) -> tuple[Any, list[int]]:
    calls: list[int] = []

    def create() -> Any:
        calls.append(1)
        if len(calls) <= len(failures):
            raise failures[len(calls) - 1]
        return "worker"

    return create, calls


def test_transient_errors_are_retried() -> None:
    create, calls = _flaky(TIMED_OUT, TIMED_OUT)
    assert create_worker_retrying(create, within=10, pause=0.01) == "worker"
    assert len(calls) == 3


def test_other_errors_fail_at_once() -> None:
    create, calls = _flaky(DENIED)
    with pytest.raises(KafkaException):
        create_worker_retrying(create, within=10, pause=0.01)
    create, calls = _flaky(ValueError("bad"))
    with pytest.raises(ValueError):
        create_worker_retrying(create, within=10, pause=0.01)
    assert len(calls) == 1


def test_retries_end_with_the_budget() -> None:
    create, calls = _flaky(*([TIMED_OUT] * 1000))
    with pytest.raises(KafkaException):
        create_worker_retrying(create, within=0.2, pause=0.05)
    assert 2 <= len(calls) < 10


def test_which_errors_are_transient() -> None:
    assert is_transient_kafka_error(TIMED_OUT)
    assert is_transient_kafka_error(KafkaException(KafkaError(KafkaError._TRANSPORT)))
    assert not is_transient_kafka_error(DENIED)
    assert not is_transient_kafka_error(KafkaException("no KafkaError inside"))
    assert not is_transient_kafka_error(TimeoutError())
    # a changelog topic created a moment ago that the metadata does not show yet
    assert is_transient_kafka_error(TopicNotFoundError('Topic "x-changelog" not found'))


class FakeAdmin:
    """An admin client whose first ``list_topics`` calls fail with ``errors``."""

    errors: ClassVar[list[Exception]] = []
    calls = 0

    def __init__(self, **_: Any) -> None:
        pass

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        pass

    async def list_topics(self) -> list[str]:
        FakeAdmin.calls += 1
        if FakeAdmin.errors:
            raise FakeAdmin.errors.pop(0)
        return list(TopicNames.from_settings(Settings()).all())

    async def describe_topics(self, names: list[str]) -> list[dict[str, Any]]:
        raw = TopicNames.from_settings(Settings()).raw
        return [
            {
                "topic": n,
                "error_code": 0,
                "partitions": [{"leader": 1}] * (1 if n == raw else 8),
            }
            for n in names
        ]


@pytest.fixture
def admin(monkeypatch: pytest.MonkeyPatch) -> type[FakeAdmin]:
    monkeypatch.setattr(topics, "AIOKafkaAdminClient", FakeAdmin)
    monkeypatch.setattr(topics, "RETRY_PAUSE_S", 0.01)
    FakeAdmin.calls = 0
    return FakeAdmin


async def test_topic_preparation_retries_a_node_not_ready(admin: type[FakeAdmin]) -> None:
    admin.errors = [NodeNotReadyError("node 3"), NodeNotReadyError("node 3")]
    settings = Settings(raw_partitions=1)
    assert await ensure_topics(settings) == TopicNames.from_settings(settings)
    assert admin.calls == 3


async def test_topic_preparation_does_not_retry_a_refusal(admin: type[FakeAdmin]) -> None:
    admin.errors = [TopicAuthorizationFailedError()]
    with pytest.raises(TopicAuthorizationFailedError):
        await ensure_topics(Settings(raw_partitions=1))
    assert admin.calls == 1


async def test_topic_preparation_retries_within_its_budget(admin: type[FakeAdmin]) -> None:
    admin.errors = [NodeNotReadyError("node 3")] * 1000
    with pytest.raises(NodeNotReadyError):
        await ensure_topics(Settings(raw_partitions=1), retry_within=0.1)
    assert 2 <= admin.calls < 50
