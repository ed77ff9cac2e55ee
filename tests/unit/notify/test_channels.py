"""Each channel against a local receiver that checks the platform's signature scheme, and the
sender loop on the in-memory outbox: retries, Retry-After, throttling, the DLQ, isolation."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest

from waybill_watch.notify import core
from waybill_watch.notify.channels import build_channel
from waybill_watch.notify.metrics import NotifyMetrics
from waybill_watch.notify.model import DeadLetter
from waybill_watch.notify.render import render_batch
from waybill_watch.notify.rules import Rules
from waybill_watch.notify.runtime import ChannelSender
from waybill_watch.notify.store import InMemoryNotifyStore

from .helpers import event
from .receivers import Receiver, channel_entry, start_receivers

pytestmark = pytest.mark.asyncio(loop_scope="session")

URL = "http://cases.example:6067"
KINDS = ("webhook", "wecom", "dingtalk", "feishu")


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def rules_for(channels: dict[str, dict[str, Any]]) -> Rules:
    return Rules.model_validate(
        {"channels": channels, "rules": [{"channels": list(channels), "language": "zh"}]}
    )


def batch(delivery: str = "d-1"):  # type: ignore[no-untyped-def]
    notice = core.notice_for(event(), URL)
    return render_batch([notice], "zh", "Asia/Shanghai", delivery), [notice]


@pytest.mark.parametrize("kind", KINDS)
async def test_signed_message_is_acknowledged(kind: str, http: aiohttp.ClientSession) -> None:
    receiver = await Receiver(kind).start()
    try:
        rules = rules_for({kind: channel_entry(receiver)})
        channel = build_channel(kind, rules.channels[kind], http)
        outcome = await channel.send(*batch())
        assert (outcome.result, outcome.code) == ("delivered", "ok")
        assert receiver.bad_signatures == 0
        assert receiver.counts() == {"d-1": 1}
    finally:
        await receiver.stop()


@pytest.mark.parametrize("kind", ["webhook", "dingtalk", "feishu", "wecom"])
async def test_wrong_secret_is_refused_and_not_retried(
    kind: str, http: aiohttp.ClientSession
) -> None:
    receiver = await Receiver(kind).start()
    try:
        entry = channel_entry(receiver)
        if kind == "wecom":
            entry["url"] = entry["url"].replace("robot-key", "wrong-key")
        else:
            entry["secret"] = "not-the-receivers"
        channel = build_channel(kind, rules_for({kind: entry}).channels[kind], http)
        outcome = await channel.send(*batch())
        assert outcome.result == "failed"
        assert (
            outcome.code
            == {
                "webhook": "http_401",
                "dingtalk": "code_310000",
                "feishu": "code_19021",
                "wecom": "code_93000",
            }[kind]
        )
        assert receiver.bad_signatures == 1 and not receiver.acknowledged
    finally:
        await receiver.stop()


@pytest.mark.parametrize("kind", KINDS)
async def test_500_429_throttle_and_timeout(kind: str, http: aiohttp.ClientSession) -> None:
    receiver = await Receiver(kind, script=["500", "429:7", "timeout", "throttle"]).start()
    receiver._timeout_s = 2.0
    try:
        entry = channel_entry(receiver, timeout="300ms")
        channel = build_channel(kind, rules_for({kind: entry}).channels[kind], http)
        five, many, slow = [await channel.send(*batch()) for _ in range(3)]
        assert (five.result, five.code) == ("retry", "http_500")
        assert (many.result, many.code, many.retry_after) == ("throttled", "http_429", 7.0)
        assert (slow.result, slow.code) == ("retry", "timeout")
        throttle = await channel.send(*batch())
        if kind == "webhook":
            assert throttle.result == "delivered"  # a plain 200 for a webhook
        else:
            assert throttle.result == "throttled"
            assert throttle.retry_after == {"wecom": 60.0, "dingtalk": 600.0, "feishu": 60.0}[kind]
    finally:
        await receiver.stop()


async def test_connection_refused_is_retried(http: aiohttp.ClientSession) -> None:
    receiver = await Receiver("webhook").start()
    await receiver.stop()  # nobody listens on its port now
    channel = build_channel(
        "hook", rules_for({"hook": channel_entry(receiver)}).channels["hook"], http
    )
    outcome = await channel.send(*batch())
    assert (outcome.result, outcome.code) == ("retry", "connection")


# -- the sender loop ------------------------------------------------------------------------


class Letters:
    def __init__(self) -> None:
        self.items: list[DeadLetter] = []

    async def __call__(self, letter: DeadLetter) -> None:
        self.items.append(letter)


async def queue_events(store: InMemoryNotifyStore, rules: Rules, n: int) -> None:
    now = datetime.now(UTC)
    for i in range(n):
        await store.enqueue(
            core.route(event(waybill=f"SF{i:013d}", merchant=None), rules, now, URL)
        )


async def drain(sender: ChannelSender, until: Any, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not until() and time.monotonic() < deadline:
        if not await sender.step():
            await asyncio.sleep(0.02)
    assert until(), "not reached in time"


async def test_retries_honour_retry_after_then_deliver_once(http: aiohttp.ClientSession) -> None:
    receiver = await Receiver("dingtalk", script=["500", "429:1", "timeout", "ok"]).start()
    receiver._timeout_s = 2.0
    try:
        rules = rules_for(
            {"ding": channel_entry(receiver, retry_base="50ms", timeout="300ms", max_attempts=5)}
        )
        store = InMemoryNotifyStore()
        await queue_events(store, rules, 1)
        metrics = NotifyMetrics()
        letters = Letters()
        sender = ChannelSender(
            build_channel("ding", rules.channels["ding"], http), store, metrics, letters
        )
        await drain(sender, lambda: bool(receiver.acknowledged))
        assert [a.answer for a in receiver.attempts] == ["500", "429:1", "timeout", "ok"]
        assert receiver.attempts[2].at - receiver.attempts[1].at >= 1.0  # Retry-After: 1
        assert len(receiver.counts()) == 1 and max(receiver.counts().values()) == 1
        assert await store.depth() == {}
        assert not letters.items
        sample = metrics.registry.get_sample_value
        labels = {"channel": "ding", "type": "dingtalk"}
        total = "waybill_watch_notify_notifications_total"
        assert sample(total, {**labels, "outcome": "sent"}) == 1
        assert sample(total, {**labels, "outcome": "retried"}) == 3
        latency = "waybill_watch_notify_delivery_latency_seconds_count"
        assert sample(latency, {"channel": "ding"}) == 1
    finally:
        await receiver.stop()


async def test_last_try_goes_to_the_dlq_and_a_refusal_at_once(
    http: aiohttp.ClientSession,
) -> None:
    down = await Receiver("webhook", default="500").start()
    try:
        rules = rules_for({"hook": channel_entry(down, retry_base="10ms", max_attempts=3)})
        store = InMemoryNotifyStore()
        await queue_events(store, rules, 2)
        letters = Letters()
        sender = ChannelSender(
            build_channel("hook", rules.channels["hook"], http), store, NotifyMetrics(), letters
        )
        await drain(sender, lambda: len(letters.items) == 2)
        assert len(down.attempts) == 6
        assert {(x.reason, x.result, x.attempts) for x in letters.items} == {
            ("attempts_exhausted", "http_500", 3)
        }
        assert letters.items[0].notices[0].waybill is not None
        assert all(r.state == "dead" for r in store.rows.values())
    finally:
        await down.stop()

    refusing = await Receiver("feishu").start()
    try:
        entry = channel_entry(refusing, secret="wrong", max_attempts=5)
        rules = rules_for({"lark": entry})
        store = InMemoryNotifyStore()
        await queue_events(store, rules, 1)
        letters = Letters()
        sender = ChannelSender(
            build_channel("lark", rules.channels["lark"], http), store, NotifyMetrics(), letters
        )
        await drain(sender, lambda: len(letters.items) == 1)
        assert (letters.items[0].reason, letters.items[0].result) == ("undeliverable", "code_19021")
        assert len(refusing.attempts) == 1
    finally:
        await refusing.stop()


async def test_a_channel_that_is_down_never_blocks_another(http: aiohttp.ClientSession) -> None:
    receivers = await start_receivers("webhook", "wecom")
    slow, fine = receivers["webhook"], receivers["wecom"]
    slow.default = "timeout"
    slow._timeout_s = 5.0
    try:
        rules = rules_for(
            {
                "slow": channel_entry(slow, timeout="1s", retry_base="1s"),
                "fine": channel_entry(fine, rate_per_minute=6000, burst=50),
            }
        )
        store = InMemoryNotifyStore()
        await queue_events(store, rules, 20)
        metrics = NotifyMetrics()
        senders = [
            ChannelSender(
                build_channel(name, rules.channels[name], http), store, metrics, Letters()
            )
            for name in ("slow", "fine")
        ]
        stop = asyncio.Event()
        tasks = [asyncio.create_task(s.run(stop)) for s in senders]
        deadline = time.monotonic() + 15
        while len(fine.counts()) < 20 and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        stop.set()
        await asyncio.gather(*tasks)
        assert len(fine.counts()) == 20
        assert not slow.acknowledged
        assert (await store.depth())["slow"] == 20
    finally:
        for r in receivers.values():
            await r.stop()


async def test_digest_sends_one_message_for_many_warnings(http: aiohttp.ClientSession) -> None:
    receiver = await Receiver("wecom").start()
    try:
        rules = Rules.model_validate(
            {
                "channels": {"ops": channel_entry(receiver)},
                "rules": [{"channels": ["ops"], "language": "en", "digest": "1s"}],
            }
        )
        store = InMemoryNotifyStore()
        now = datetime.now(UTC)
        for i in range(5):
            stalled = event(
                "transit_stall", waybill=f"YT{i:013d}", severity="warning", actions=False
            )
            await store.enqueue(core.route(stalled, rules, now, URL))
        critical = event(waybill="SF0000000000001")
        await store.enqueue(core.route(critical, rules, now, URL))
        sender = ChannelSender(
            build_channel("ops", rules.channels["ops"], http), store, NotifyMetrics(), Letters()
        )
        await drain(sender, lambda: len(receiver.acknowledged) == 2)
        bodies = [d["markdown"]["content"] for _, d in receiver.acknowledged]
        assert "Signed, not received" in bodies[0]  # not held: critical
        assert "Digest: 5 notifications" in bodies[1]
        assert all(f"YT{i:013d}" in bodies[1] for i in range(5))
    finally:
        await receiver.stop()
