"""Every Kafka client over TLS + SASL (SCRAM-SHA-512) against a real broker.

The local broker is started with a SASL_SSL client listener (``devbroker``'s
``SaslSslListener``): a throw-away CA and a server certificate for 127.0.0.1 made here with
``trustme``, a SCRAM user created when its storage is formatted. Then:

* a worker (quix-streams consumer and producer, the aiokafka topic admin and ingest producer,
  the confluent owner lookup) started with only ``WAYBILL_WATCH_KAFKA_*`` settings takes a
  signed Kdniao push over HTTP to ``tracking.events`` and ``anomalies``, read back here over
  SASL_SSL;
* a wrong password fails fast with one line naming the refused login: the worker's start, the
  ingest producer's start and the readiness wait, none of them a hang or a retry loop.
"""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaConsumer

from waybill_watch.devbroker import BrokerError, LocalBroker, SaslSslListener, wait_until_ready
from waybill_watch.kafka_client import KafkaConnection, start_client
from waybill_watch.query.owners import OwnerDirectory
from waybill_watch.samples import kdniao_form
from waybill_watch.worker.publisher import KafkaStartError, RawPublisher

from .conftest import spawn_process

pytestmark = pytest.mark.integration

USER, PASSWORD = "waybill-watch", "scram-pass-not-real"
APP_KEY = "it-app-key-not-real"
FORM = {"Content-Type": "application/x-www-form-urlencoded;charset=utf-8"}
CST = timezone(timedelta(hours=8))
#: A refused login must end the start this fast (aiokafka gives up on the first refusal).
FAIL_FAST_S = 45.0


def make_certificates(directory: Path) -> tuple[Path, Path, Path]:
    """A CA and a server certificate for 127.0.0.1 / localhost: (cert chain, PKCS#8 key, CA)."""
    import trustme
    from cryptography.hazmat.primitives import serialization

    ca = trustme.CA()
    leaf = ca.issue_cert("127.0.0.1", "localhost")
    cert, key, cafile = directory / "broker.pem", directory / "broker.key", directory / "ca.pem"
    cert.write_bytes(b"".join(blob.bytes() for blob in leaf.cert_chain_pems))
    # Kafka's PEM key store reads PKCS#8 keys only; trustme writes the traditional format
    private = serialization.load_pem_private_key(leaf.private_key_pem.bytes(), None)
    key.write_bytes(
        private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    ca.cert_pem.write_to_path(str(cafile))
    return cert, key, cafile


@pytest.fixture(scope="module")
def secure_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalBroker]:
    """A single local broker whose clients must use SASL_SSL as ``USER``."""
    certs = tmp_path_factory.mktemp("tls")
    cert, key, cafile = make_certificates(certs)
    broker = LocalBroker(secure=SaslSslListener(cert, key, cafile, {USER: PASSWORD}))
    try:
        broker.start()
    except BrokerError as exc:
        pytest.fail(f"the SASL_SSL broker did not start:\n{exc}", pytrace=False)
    try:
        yield broker
    finally:
        broker.stop()


def security_env(broker: LocalBroker, password: str = PASSWORD) -> dict[str, str]:
    """The settings a process needs to reach ``broker`` (and nothing else about security)."""
    assert broker.secure is not None
    return {
        "WAYBILL_WATCH_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "WAYBILL_WATCH_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
        "WAYBILL_WATCH_KAFKA_SASL_USERNAME": USER,
        "WAYBILL_WATCH_KAFKA_SASL_PASSWORD": password,
        "WAYBILL_WATCH_KAFKA_SSL_CAFILE": str(broker.secure.cafile),
    }


def _push(waybill: str, now: datetime) -> bytes:
    """A signed Kdniao push whose last scan is a failed delivery attempt."""
    fmt = "%Y-%m-%d %H:%M:%S"
    traces = [
        ((20, "【上海青浦】快件已揽收", "1")),
        ((2, "【杭州西湖】快件正在派送中", "202")),
        ((1, "【杭州西湖】派件异常，收件人无人接听", "405")),
    ]
    item = {
        "LogisticCode": waybill,
        "ShipperCode": "ZTO",
        "State": "4",
        "StateEx": "405",
        "Location": "杭州市",
        "Traces": [
            {
                "AcceptTime": (now - timedelta(hours=hours)).strftime(fmt),
                "AcceptStation": station,
                "Location": "杭州市",
                "Action": action,
            }
            for hours, station, action in traces
        ],
    }
    return kdniao_form([item], now, APP_KEY)


async def read_secure(
    kafka: KafkaConnection,
    topic: str,
    until: Callable[[list[dict[str, Any]]], bool],
    timeout: float = 90.0,
) -> list[dict[str, Any]]:
    """``topic`` from the beginning, committed records only, over ``kafka``'s TLS + SASL."""
    consumer = AIOKafkaConsumer(
        topic,
        **kafka.aiokafka_options(),
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        isolation_level="read_committed",
    )
    await start_client(consumer, kafka)
    records: list[dict[str, Any]] = []
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not until(records):
            batch = await consumer.getmany(timeout_ms=500)
            for messages in batch.values():
                records.extend(orjson.loads(m.value) for m in messages)
        return records
    finally:
        await consumer.stop()


async def test_worker_processes_a_signed_push_over_sasl_ssl(
    secure_broker: LocalBroker, tmp_path: Path
) -> None:
    worker = spawn_process(
        secure_broker.bootstrap,
        tmp_path,
        "worker",
        WAYBILL_WATCH_KDNIAO_APP_KEY=APP_KEY,
        **security_env(secure_broker),
    )
    try:
        await worker.wait_ready()
        now = datetime.now(CST).replace(microsecond=0)
        status, answer = await worker.post("kdniao", _push("ZT9100000000001", now), FORM)
        assert status == 200, answer
        assert orjson.loads(answer)["Success"] is True

        kafka = secure_broker.connection()
        events = await read_secure(kafka, worker.topic("tracking.events"), lambda r: len(r) >= 3)
        assert sorted(e["status"] for e in events) == [
            "failed_attempt",
            "out_for_delivery",
            "picked_up",
        ]
        assert {e["waybill"] for e in events} == {"ZT9100000000001"}
        anomalies = await read_secure(
            kafka,
            worker.topic("anomalies"),
            lambda r: any(a["type"] == "delivery_exception" for a in r),
        )
        assert [a["status"] for a in anomalies if a["type"] == "delivery_exception"] == ["open"]

        # the waybill query path's owner lookup (confluent's admin client) over SASL_SSL
        owners = OwnerDirectory(
            kafka, worker.prefix + "waybill-watch", worker.topic("waybill-watch.updates")
        )
        owner = await asyncio.to_thread(owners.owner, 0)
        assert owner == worker.base_url
    finally:
        code = worker.stop()
    assert code == 0, worker.log_tail()


def test_worker_with_a_wrong_password_exits_at_once_naming_the_login(
    secure_broker: LocalBroker, tmp_path: Path
) -> None:
    worker = spawn_process(
        secure_broker.bootstrap,
        tmp_path,
        "refused",
        **security_env(secure_broker, password="not-the-password"),
    )
    assert worker.proc is not None
    began = time.monotonic()
    try:
        code = worker.proc.wait(timeout=FAIL_FAST_S)
    except subprocess.TimeoutExpired:
        worker.stop()
        pytest.fail(f"the worker still runs {FAIL_FAST_S:.0f} s after a refused login")
    elapsed = time.monotonic() - began
    output = worker.log_tail()
    assert code == 2, output
    line = next(line for line in output.splitlines() if line.startswith("waybill-watch worker:"))
    assert "rejected the SCRAM-SHA-512 login of 'waybill-watch'" in line
    assert "WAYBILL_WATCH_KAFKA_SASL_PASSWORD" in line
    assert "not-the-password" not in output
    print(f"refused worker exited in {elapsed:.1f} s: {line}")


async def test_ingest_producer_with_a_wrong_password_fails_to_start_clearly(
    secure_broker: LocalBroker,
) -> None:
    refused = secure_broker.connection(password="not-the-password")
    publisher = RawPublisher(refused, "any.tracking.raw", request_timeout_ms=5_000)
    began = time.monotonic()
    with pytest.raises(KafkaStartError) as caught:
        await publisher.start()
    assert time.monotonic() - began < FAIL_FAST_S
    assert "rejected the SCRAM-SHA-512 login" in caught.value.detail
    assert "not-the-password" not in str(caught.value)

    # the right password: the same producer starts and reports ready
    publisher = RawPublisher(secure_broker.connection(), "any.tracking.raw")
    await publisher.start()
    try:
        ready, why = await publisher.readiness(())
        assert ready, why
    finally:
        await publisher.stop()


def test_readiness_wait_gives_up_on_a_refused_login_before_its_timeout(
    secure_broker: LocalBroker,
) -> None:
    began = time.monotonic()
    with pytest.raises(BrokerError, match=r"refuses this client.*SCRAM-SHA-512"):
        wait_until_ready(secure_broker.connection(password="nope"), 120)
    assert time.monotonic() - began < FAIL_FAST_S


async def test_an_untrusted_broker_certificate_fails_to_start_clearly(
    secure_broker: LocalBroker, tmp_path: Path
) -> None:
    import dataclasses

    import trustme

    other_ca = tmp_path / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(other_ca))
    untrusting = dataclasses.replace(secure_broker.connection(), ssl_cafile=other_ca)
    publisher = RawPublisher(untrusting, "any.tracking.raw", request_timeout_ms=5_000)
    with pytest.raises(KafkaStartError) as caught:
        await publisher.start()
    assert "TLS handshake with Kafka at 127.0.0.1:" in caught.value.detail
    assert "certificate verify failed" in caught.value.detail
