"""``waybill-watch notify`` on a real broker and PostgreSQL: records on ``anomalies`` and
``cases.events`` (each sent twice, one malformed) → every channel gets each message once:
a signed webhook (after a 500 and a 429 with Retry-After), WeCom, DingTalk, Feishu, e-mail
over STARTTLS to a real SMTP server, the log channel; a receiver that is down gets its
message to ``notifications.dlq`` after the last try without holding up the others."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import jsonschema
import orjson
from aiokafka import AIOKafkaProducer

from waybill_watch.notify import core
from waybill_watch.notify.store import delivery_id
from waybill_watch.settings import Settings
from waybill_watch.timefmt import local_now
from waybill_watch.worker.topics import ensure_topics

from ..unit.cases.factory import event
from ..unit.notify.receivers import Receiver, channel_entry, start_receivers
from ..unit.notify.smtp_server import PASSWORD, USER, make_certificate, smtp_server
from .notify_helpers import notify_process, write_rules

SCHEMA = Path(__file__).parents[2] / "schemas" / "notification-dlq.schema.json"
HTTP_CHANNELS = {"hook": "webhook", "wecom": "wecom", "ding": "dingtalk", "lark": "feishu"}


def records():  # type: ignore[no-untyped-def]
    now = local_now().replace(microsecond=0)
    opened = event(waybill="SF1000000000001", merchant="shop-1", at=now)
    updated = event(
        waybill="SF1000000000001",
        merchant="shop-1",
        status="updated",
        at=now + timedelta(seconds=5),
    )
    stall = event(
        "transit_stall",
        waybill="YT2000000000002",
        merchant="shop-2",
        severity="warning",
        at=now,
        actions=False,
    )
    dead = event(
        "delivery_exception",
        waybill="ZT3000000000003",
        merchant="shop-9",
        severity="high",
        at=now,
        actions=False,
    )
    cases = [
        {
            "event": kind,
            "event_id": f"case-{kind}",
            "case_id": "C0000000000000A1",
            "waybill": "SF1000000000001",
            "subject": "SF1000000000001",
            "scope": "waybill",
            "type": "signed_not_received",
            "severity": "critical",
            "merchant": "shop-1",
            "courier": "JD",
            "step": "contact_recipient",
            "due_at": (now + timedelta(hours=2)).isoformat(),
            "at": now.isoformat(),
        }
        for kind in ("opened", "step_overdue")
    ]
    return [opened, updated, stall, dead], cases  # fmt: skip


async def wait_until(done: Callable[[], bool], timeout: float, what: Callable[[], str]) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, f"timed out waiting for {what()}"
        await asyncio.sleep(0.2)


async def test_every_channel_gets_each_message_once(
    kafka_bootstrap: str, database_url: str, tmp_path: Path
) -> None:
    prefix = f"n{uuid.uuid4().hex[:10]}."
    settings = Settings(kafka_bootstrap_servers=kafka_bootstrap, topic_prefix=prefix, partitions=4)
    names = await ensure_topics(settings)
    receivers = await start_receivers(*HTTP_CHANNELS.values())
    receivers["webhook"].script = ["500", "429:2"]
    down = await Receiver("webhook", default="500").start()
    cert = make_certificate(tmp_path)
    log_file = tmp_path / "notifications.log"
    with smtp_server(cert) as (smtp_port, mailbox):
        channels = {
            name: channel_entry(receivers[kind], retry_base="200ms")
            for name, kind in HTTP_CHANNELS.items()
        }
        channels["mail"] = {
            "type": "email",
            "host": "127.0.0.1",
            "port": smtp_port,
            "username": USER,
            "password": PASSWORD,
            "from": "waybill-watch <alerts@example.com>",
            "to": ["ops@example.com"],
            "ca_file": str(cert[0]),
        }
        channels["console"] = {"type": "log", "file": str(log_file)}
        channels["down"] = channel_entry(down, retry_base="100ms", max_attempts=3)
        rules = write_rules(
            tmp_path,
            channels,
            [
                {"name": "dead-end", "match": {"merchant": "shop-9"}, "channels": ["down"]},
                {"name": "all", "channels": [c for c in channels if c != "down"]},
            ],
        )
        anomalies, cases = records()
        producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
        await producer.start()
        try:
            for _ in range(2):  # every record twice: a redelivery
                for a in anomalies:
                    await producer.send(names.anomalies, a.model_dump_json().encode(), key=b"k")
                for c in cases:
                    await producer.send(names.cases_events, orjson.dumps(c), key=b"C1")
            await producer.send_and_wait(names.anomalies, b"{not json", key=b"bad")
        finally:
            await producer.stop()

        notify = notify_process(kafka_bootstrap, prefix, database_url, tmp_path, rules).start()
        try:
            await notify.wait_ready()
            expected_keys = [core.dedupe_key(a) for a in anomalies]  # shop-9 too: rule "all"
            expected_keys += [f"case:{c['event_id']}" for c in cases]
            everyone = [*HTTP_CHANNELS.values()]
            await wait_until(
                lambda: (
                    all(len(receivers[k].counts()) == len(expected_keys) for k in everyone)
                    and len(mailbox.messages) == len(expected_keys)
                ),
                90,
                lambda: (
                    f"every channel's messages: "
                    f"{ {k: len(r.counts()) for k, r in receivers.items()} }, "
                    f"mail {len(mailbox.messages)}\n{notify.log_tail()}"
                ),
            )
            dlq = await notify.read_topic("notifications.dlq", until=lambda rs: len(rs) >= 1)
            rejected = await notify.read_topic("tracking.dlq", until=lambda rs: len(rs) >= 1)
            await asyncio.sleep(2)  # anything sent twice would arrive now
            metrics = await notify.metrics()
        finally:
            assert notify.stop() == 0, notify.log_tail()
    try:
        for name, kind in HTTP_CHANNELS.items():
            counts = receivers[kind].counts()
            assert set(counts) == {delivery_id(name, k) for k in expected_keys}, name
            assert set(counts.values()) == {1}, f"{name} got a message twice: {counts}"
            assert receivers[kind].bad_signatures == 0
        mail_ids = sorted(m["X-Waybill-Watch-Delivery"] for m in mailbox.messages)
        assert mail_ids == sorted(delivery_id("mail", k) for k in expected_keys)
        assert all(mailbox.tls) and len(mailbox.logins) == len(expected_keys)
        logged = log_file.read_text(encoding="utf-8")
        assert logged.count("消息编号: ") == len(expected_keys)
        assert "签收未收到" in logged and "步骤已超时" in logged

        # the webhook answered 500, then 429 with Retry-After: 2: both messages were tried
        # again and delivered, and the channel sent nothing for the 2 s it was asked to wait
        hook = receivers["webhook"].attempts
        assert [a.answer for a in hook[:2]] == ["500", "429:2"]
        for failed in hook[:2]:
            again = [a for a in hook[2:] if a.delivery_id == failed.delivery_id]
            assert [a.answer for a in again] == ["ok"]
        assert all(a.at - hook[1].at >= 1.95 for a in hook[2:])

        # the receiver that is down: three tries, then the DLQ; nobody else waited for it
        assert len(down.attempts) == 3 and not down.acknowledged
        (letter,) = dlq
        assert (letter["reason"], letter["result"], letter["attempts"]) == (
            "attempts_exhausted",
            "http_500",
            3,
        )
        assert letter["channel"] == "down" and letter["notices"][0]["waybill"] == "ZT3000000000003"
        schema = orjson.loads(SCHEMA.read_bytes())
        jsonschema.Draft202012Validator(schema).validate(letter)  # the published wire format
        assert rejected[0]["reason"] == "invalid_json"

        assert 'outcome="sent"' in metrics and 'outcome="dead_lettered"' in metrics
        assert "waybill_watch_notify_delivery_latency_seconds_bucket" in metrics
    finally:
        for r in [*receivers.values(), down]:
            await r.stop()
