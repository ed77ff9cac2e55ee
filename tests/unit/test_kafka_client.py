"""Kafka client settings: one connection object → aiokafka kwargs, librdkafka dict, quix
ConnectionConfig; and the topic layout rule (3 replicas / 2 in sync from three brokers on)."""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path
from typing import Any

import pytest
import trustme
from pydantic import SecretStr

from waybill_watch.kafka_client import KafkaConnection, diagnose, kafka_connection
from waybill_watch.settings import Settings
from waybill_watch.worker import topics
from waybill_watch.worker.topics import (
    TopicLayout,
    TopicLayoutError,
    engine_topic_manager,
    ensure_topics,
    raw_topic_configs,
    topic_layout,
)

PASSWORD = "pw-not-real"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("WAYBILL_WATCH_") or name == "KAFKA_BOOTSTRAP_SERVERS":
            monkeypatch.delenv(name)


@pytest.fixture
def cafile(tmp_path: Path) -> Path:
    path = tmp_path / "ca.pem"
    trustme.CA().cert_pem.write_to_path(str(path))
    return path


def sasl_ssl_settings(cafile: Path, **more: Any) -> Settings:
    return Settings(
        KAFKA_BOOTSTRAP_SERVERS="k1:9093,k2:9093",
        kafka_security_protocol="sasl_ssl",
        kafka_sasl_mechanism="scram-sha-512",
        kafka_sasl_username="svc",
        kafka_sasl_password=PASSWORD,
        kafka_ssl_cafile=cafile,
        **more,
    )


# --- one connection, three client libraries ------------------------------------------------


def test_plaintext_is_the_default_and_adds_nothing() -> None:
    kafka = kafka_connection(Settings())
    assert kafka.aiokafka_options() == {
        "bootstrap_servers": "127.0.0.1:9092",
        "security_protocol": "PLAINTEXT",
    }
    assert kafka.librdkafka_config() == {
        "bootstrap.servers": "127.0.0.1:9092",
        "security.protocol": "plaintext",
    }


def test_sasl_ssl_for_aiokafka(cafile: Path) -> None:
    options = kafka_connection(sasl_ssl_settings(cafile)).aiokafka_options()
    context = options.pop("ssl_context")
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert options == {
        "bootstrap_servers": "k1:9093,k2:9093",
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "svc",
        "sasl_plain_password": PASSWORD,
    }


def test_sasl_ssl_for_librdkafka_and_quix(cafile: Path) -> None:
    kafka = kafka_connection(sasl_ssl_settings(cafile))
    assert kafka.librdkafka_config() == {
        "bootstrap.servers": "k1:9093,k2:9093",
        "security.protocol": "sasl_ssl",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "svc",
        "sasl.password": PASSWORD,
        "ssl.ca.location": str(cafile),
    }
    quix = kafka.quix_connection()
    assert (quix.bootstrap_servers, quix.security_protocol) == ("k1:9093,k2:9093", "sasl_ssl")
    assert (quix.sasl_mechanism, quix.sasl_username) == ("SCRAM-SHA-512", "svc")
    assert quix.sasl_password is not None and quix.sasl_password.get_secret_value() == PASSWORD
    assert quix.ssl_ca_location == str(cafile)
    assert quix.as_librdkafka_dict() == kafka.librdkafka_config()


def test_mutual_tls_files_reach_both_libraries(tmp_path: Path) -> None:
    ca = trustme.CA()
    leaf = ca.issue_cert("client.example")
    cert, key, cafile = tmp_path / "c.pem", tmp_path / "k.pem", tmp_path / "ca.pem"
    leaf.cert_chain_pems[0].write_to_path(str(cert))
    leaf.private_key_pem.write_to_path(str(key))
    ca.cert_pem.write_to_path(str(cafile))
    settings = Settings(
        kafka_security_protocol="SSL",
        kafka_ssl_cafile=cafile,
        kafka_ssl_certfile=cert,
        kafka_ssl_keyfile=key,
    )
    kafka = kafka_connection(settings)
    config = kafka.librdkafka_config()
    assert config["ssl.certificate.location"] == str(cert)
    assert config["ssl.key.location"] == str(key)
    assert "sasl.mechanism" not in config
    options = kafka.aiokafka_options()
    assert isinstance(options["ssl_context"], ssl.SSLContext)  # the key pair loaded
    assert "sasl_mechanism" not in options


def test_secrets_stay_out_of_reprs(cafile: Path) -> None:
    kafka = kafka_connection(sasl_ssl_settings(cafile))
    assert PASSWORD not in repr(kafka)
    assert PASSWORD not in repr(sasl_ssl_settings(cafile))


async def test_diagnose_says_nothing_when_no_broker_listens() -> None:
    from waybill_watch.localproc import free_port

    assert await diagnose(KafkaConnection(f"127.0.0.1:{free_port()}")) is None


async def test_ingest_producer_uses_the_connection(
    cafile: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from waybill_watch.worker import publisher

    made: list[dict[str, Any]] = []

    class FakeProducer:
        def __init__(self, **kwargs: Any) -> None:
            made.append(kwargs)

        async def start(self) -> None:
            pass

        async def stop(self) -> None:
            pass

    monkeypatch.setattr(publisher, "AIOKafkaProducer", FakeProducer)
    raw = publisher.RawPublisher(kafka_connection(sasl_ssl_settings(cafile)), "p.tracking.raw")
    await raw.start()
    [kwargs] = made
    assert kwargs["security_protocol"] == "SASL_SSL"
    assert kwargs["sasl_plain_password"] == PASSWORD
    assert isinstance(kwargs["ssl_context"], ssl.SSLContext)
    assert (kwargs["acks"], kwargs["enable_idempotence"]) == ("all", True)
    assert raw.bootstrap == "k1:9093,k2:9093"


# --- the topic layout ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("brokers", "expected"),
    [
        (1, TopicLayout(1, 1)),
        (2, TopicLayout(1, 1)),
        (3, TopicLayout(3, 2)),
        (6, TopicLayout(3, 2)),
    ],
)
def test_three_brokers_get_three_replicas_two_in_sync(brokers: int, expected: TopicLayout) -> None:
    assert topic_layout(Settings(), brokers) == expected


def test_settings_override_the_layout() -> None:
    assert topic_layout(Settings(replication_factor=2), 5) == TopicLayout(2, 1)
    assert topic_layout(Settings(min_insync_replicas=3), 5) == TopicLayout(3, 3)
    assert topic_layout(Settings(replication_factor=5, min_insync_replicas=3), 5) == (
        TopicLayout(5, 3)
    )


def test_impossible_layouts_are_named() -> None:
    with pytest.raises(TopicLayoutError, match="WAYBILL_WATCH_MIN_INSYNC_REPLICAS=2"):
        topic_layout(Settings(min_insync_replicas=2), 1)  # auto replication 1
    with pytest.raises(TopicLayoutError, match="lists only 2 brokers"):
        topic_layout(Settings(replication_factor=3), 2)


def test_raw_retention() -> None:
    assert raw_topic_configs(Settings()) == {"retention.ms": str(7 * 24 * 3_600_000)}
    assert raw_topic_configs(Settings(raw_retention_hours=-1)) == {"retention.ms": "-1"}
    assert raw_topic_configs(Settings(raw_retention_hours=1.5)) == {"retention.ms": "5400000"}


class FakeAdmin:
    """The part of ``AIOKafkaAdminClient`` that ``ensure_topics`` uses."""

    def __init__(self, brokers: int, **kwargs: Any) -> None:
        self.kwargs = kwargs
        self.brokers = brokers
        self.created: list[Any] = []

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        pass

    async def list_topics(self) -> list[str]:
        return [t.name for t in self.created]

    async def describe_cluster(self) -> dict[str, Any]:
        return {"brokers": [{"node_id": n} for n in range(self.brokers)], "controller_id": 0}

    async def create_topics(self, new: list[Any]) -> None:
        self.created.extend(new)

    async def describe_topics(self, names: list[str]) -> list[dict[str, Any]]:
        by_name = {t.name: t for t in self.created}
        return [
            {
                "topic": n,
                "error_code": 0,
                "partitions": [{"leader": 0}] * by_name[n].num_partitions,
            }
            for n in names
        ]


@pytest.mark.parametrize(("brokers", "replication", "min_insync"), [(3, 3, "2"), (1, 1, "1")])
def test_ensure_topics_applies_the_layout_seen_in_describe_cluster(
    brokers: int, replication: int, min_insync: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    admins: list[FakeAdmin] = []

    def make(**kwargs: Any) -> FakeAdmin:
        admins.append(FakeAdmin(brokers, **kwargs))
        return admins[-1]

    monkeypatch.setattr(topics, "AIOKafkaAdminClient", make)
    settings = Settings(topic_prefix="p.", partitions=4, raw_retention_hours=48)
    names = asyncio.run(ensure_topics(settings))
    created = {t.name: t for t in admins[0].created}
    assert set(created) == set(names.all())
    for topic in created.values():
        assert topic.replication_factor == replication
        assert topic.topic_configs["min.insync.replicas"] == min_insync
    assert created[names.raw].topic_configs["retention.ms"] == str(48 * 3_600_000)
    assert "retention.ms" not in created[names.events].topic_configs
    assert admins[0].kwargs["security_protocol"] == "PLAINTEXT"


def test_engine_changelogs_get_the_layout(monkeypatch: pytest.MonkeyPatch) -> None:
    """quix-streams' changelog config (derived from the source topics) gets the project's
    replication and min.insync.replicas; its own configs (compaction) stay."""
    from quixstreams.models.topics import Topic, TopicConfig
    from quixstreams.models.topics.topic import TopicType

    manager = engine_topic_manager(Settings(), "p.waybill-watch", timeout=5)
    monkeypatch.setattr(type(manager), "layout", lambda self: TopicLayout(3, 2))
    sent: list[Topic] = []
    monkeypatch.setattr(manager._admin, "create_topics", lambda topics, **kw: sent.extend(topics))
    changelog = Topic(
        "changelog__p.waybill-watch--updates--default",
        create_config=TopicConfig(
            num_partitions=4,
            replication_factor=1,
            extra_config={"cleanup.policy": "compact", "retention.ms": "-1"},
        ),
        topic_type=TopicType.CHANGELOG,
    )
    manager._create_topic(changelog, timeout=5, create_timeout=5)
    [created] = sent
    assert created.create_config is not None
    assert created.create_config.num_partitions == 4
    assert created.create_config.replication_factor == 3
    assert created.create_config.extra_config == {
        "cleanup.policy": "compact",
        "retention.ms": "-1",
        "min.insync.replicas": "2",
    }


def test_engine_keeps_a_larger_derived_replication(monkeypatch: pytest.MonkeyPatch) -> None:
    """Source topics made with 3 replicas by hand keep changelogs at 3 even when the cluster
    lists fewer brokers for a moment (one is restarting)."""
    from quixstreams.models.topics import TopicConfig

    manager = engine_topic_manager(Settings(), "g", timeout=5)
    monkeypatch.setattr(type(manager), "layout", lambda self: TopicLayout(1, 1))
    config = manager._with_layout(TopicConfig(num_partitions=2, replication_factor=3))
    assert (config.replication_factor, config.extra_config["min.insync.replicas"]) == (3, "2")


def test_sasl_plaintext_has_no_tls() -> None:
    kafka = KafkaConnection(
        "b:1",
        security_protocol="SASL_PLAINTEXT",
        sasl_mechanism="PLAIN",
        sasl_username="u",
        sasl_password=SecretStr(PASSWORD),
    )
    assert kafka.librdkafka_config()["sasl.password"] == PASSWORD
    assert "ssl.ca.location" not in kafka.librdkafka_config()
    assert "ssl_context" not in kafka.aiokafka_options()
