"""Production topic settings on a real 3-node cluster (``devbroker.LocalCluster``).

With no replication setting, every topic the project creates — the contract topics
(``ensure_topics``), the notifier's ``notifications.dlq`` and quix-streams' changelogs (the
worker's ``EngineTopicManager``) — gets 3 replicas and ``min.insync.replicas=2`` as its own
topic config (not just the brokers' default, which this cluster sets to 2 as well), and
``tracking.raw`` the configured retention.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from waybill_watch.devbroker import BrokerError, LocalCluster
from waybill_watch.notify.app import ensure_dlq_topic
from waybill_watch.settings import Settings
from waybill_watch.worker.app import create_worker
from waybill_watch.worker.topics import ensure_topics

pytestmark = pytest.mark.integration

RAW_RETENTION_HOURS = 36


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalCluster]:
    nodes = LocalCluster(3)
    try:
        nodes.start()
    except BrokerError as exc:
        pytest.fail(f"the 3-node cluster did not start:\n{exc}", pytrace=False)
    try:
        yield nodes
    finally:
        nodes.stop()


def _describe(bootstrap: str, prefix: str) -> dict[str, tuple[int, dict[str, tuple[str, str]]]]:
    """Topic → (replicas of partition 0, {config: (value, source)}) for topics naming
    ``prefix`` (quix-streams' changelogs carry it inside their names)."""
    from confluent_kafka.admin import AdminClient, ConfigResource, ConfigSource, ResourceType

    admin = AdminClient({"bootstrap.servers": bootstrap})
    metadata = admin.list_topics(timeout=15)
    names = sorted(name for name in metadata.topics if prefix in name)
    futures = admin.describe_configs([ConfigResource(ResourceType.TOPIC, n) for n in names])
    described: dict[str, tuple[int, dict[str, tuple[str, str]]]] = {}
    for resource, future in futures.items():
        entries = future.result(timeout=15)
        configs = {
            key: (entry.value, ConfigSource(entry.source).name) for key, entry in entries.items()
        }
        replicas = len(metadata.topics[resource.name].partitions[0].replicas)
        described[resource.name] = (replicas, configs)
    return described


async def test_created_topics_are_replicated_three_times_with_two_in_sync(
    cluster: LocalCluster, tmp_path: Path
) -> None:
    prefix = f"rf{uuid.uuid4().hex[:8]}."
    settings = Settings(
        KAFKA_BOOTSTRAP_SERVERS=cluster.bootstrap,
        topic_prefix=prefix,
        partitions=2,
        raw_retention_hours=RAW_RETENTION_HOURS,
        data_dir=tmp_path / "worker",
    )
    names = await asyncio.wait_for(ensure_topics(settings), 90)
    dlq = await asyncio.wait_for(ensure_dlq_topic(settings), 60)
    worker = await asyncio.to_thread(create_worker, settings)  # registers its changelogs
    try:
        described = await asyncio.to_thread(_describe, cluster.bootstrap, prefix)
    finally:
        await worker.queries.close()

    changelogs = [n for n in described if n.startswith("changelog__")]
    assert len(changelogs) >= 2, sorted(described)  # the per-waybill and aggregate stores
    expected = {*names.all(), dlq, *changelogs}
    assert set(described) == expected
    for name in sorted(expected):
        replicas, configs = described[name]
        assert replicas == 3, f"{name}: {replicas} replicas"
        value, source = configs["min.insync.replicas"]
        assert (value, source) == ("2", "DYNAMIC_TOPIC_CONFIG"), f"{name}: {configs}"
    for name in changelogs:
        assert described[name][1]["cleanup.policy"][0] == "compact", name  # quix-streams' own

    raw_ms, raw_source = described[names.raw][1]["retention.ms"]
    assert (int(raw_ms), raw_source) == (RAW_RETENTION_HOURS * 3_600_000, "DYNAMIC_TOPIC_CONFIG")
    # only tracking.raw gets a retention of its own; the others keep the cluster's
    assert described[names.events][1]["retention.ms"][1] != "DYNAMIC_TOPIC_CONFIG"
