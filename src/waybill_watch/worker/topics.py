"""Topic names (contract §7) and their creation with the right partition counts.

Faust only creates its internal topics; the contract topics are created here before the app
starts, because a topic auto-created with one partition would not be co-partitioned with the
per-waybill table (faust raises PartitionsMismatch on the first write).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError

from waybill_watch.settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class TopicNames:
    """Every topic the app reads or writes, prefixed."""

    raw: str
    events: str
    orders: str
    anomalies: str
    dlq: str
    updates: str  # internal: one push's scans for one waybill (+ ticks), keyed by waybill
    signals: str  # internal: facts re-keyed by courier or courier:site (+ ticks)
    cases_events: str  # the case service's lifecycle events (contract §9), keyed by case id

    @classmethod
    def from_settings(cls, settings: Settings) -> TopicNames:
        t = settings.topic
        return cls(
            raw=t("tracking.raw"),
            events=t("tracking.events"),
            orders=t("orders.events"),
            anomalies=t("anomalies"),
            dlq=t("tracking.dlq"),
            updates=t("waybill-watch.updates"),
            signals=t("waybill-watch.signals"),
            cases_events=t("cases.events"),
        )

    def keyed_by_waybill(self) -> tuple[str, ...]:
        """Topics co-partitioned with the per-waybill table."""
        return (self.events, self.orders, self.updates)

    def all(self) -> tuple[str, ...]:
        return (
            self.raw,
            self.events,
            self.orders,
            self.anomalies,
            self.dlq,
            self.updates,
            self.signals,
            self.cases_events,
        )


class TopicLayoutError(RuntimeError):
    """An existing topic has a partition count that breaks co-partitioning."""


#: How long topic preparation retries errors Kafka calls retriable once a broker answered.
RETRY_WITHIN_S = 45.0
RETRY_PAUSE_S = 0.5


async def ensure_topics(
    settings: Settings, names: TopicNames | None = None, *, retry_within: float = RETRY_WITHIN_S
) -> TopicNames:
    """Create missing topics; fail clearly when co-partitioned topics disagree.

    No broker answering at all fails at once. Once one did, retriable errors are retried for
    ``retry_within`` seconds: in a cluster that just lost a broker the metadata still names
    it (as controller, as leader) until the controller fences it, and requests routed there
    fail with e.g. ``NodeNotReadyError`` although the cluster serves again seconds later.
    """
    names = names or TopicNames.from_settings(settings)
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    await admin.start()
    try:
        deadline = time.monotonic() + retry_within
        while True:
            try:
                await _prepare(admin, settings, names)
                return names
            except KafkaError as exc:
                if not exc.retriable or time.monotonic() + RETRY_PAUSE_S >= deadline:
                    raise
                log.warning("preparing topics failed (%s); retrying", exc)
                await asyncio.sleep(RETRY_PAUSE_S)
    finally:
        await admin.close()


async def _prepare(admin: AIOKafkaAdminClient, settings: Settings, names: TopicNames) -> None:
    """One attempt of ``ensure_topics`` on a started admin client."""
    existing = set(await admin.list_topics())
    missing = [n for n in names.all() if n not in existing]
    if missing:
        raw_partitions = settings.raw_topic_partitions()
        new = [
            NewTopic(
                n,
                raw_partitions if n == names.raw else settings.partitions,
                settings.replication_factor,
            )
            for n in missing
        ]
        with contextlib.suppress(TopicAlreadyExistsError):  # another worker won the race
            await admin.create_topics(new)
        log.info("created topics %s with %d partitions", missing, settings.partitions)
    described = await _wait_for_leaders(admin, list(names.all()), timeout=30.0)
    counts = {d["topic"]: len(d["partitions"]) for d in described}
    keyed = {t: counts[t] for t in names.keyed_by_waybill() if t in counts}
    if len(set(keyed.values())) > 1:
        raise TopicLayoutError(
            f"topics keyed by waybill must have the same partition count, got {keyed}"
        )
    if settings.clock == "stream" and counts.get(names.raw, 1) != 1:
        raise TopicLayoutError(
            f"WAYBILL_WATCH_CLOCK=stream needs {names.raw} with exactly one partition (it "
            f"has {counts[names.raw]}): the stream clock follows received_at in the order "
            "envelopes are read, and several partitions are read in an arbitrary "
            "interleaving, which would fire deadlines early. Use a topic prefix with a "
            "fresh one-partition tracking.raw (WAYBILL_WATCH_RAW_PARTITIONS=1), or "
            "backtest the capture with `waybill-watch replay`."
        )


async def _wait_for_leaders(
    admin: AIOKafkaAdminClient, topics: list[str], *, timeout: float
) -> list[dict[str, Any]]:
    """Describe ``topics`` once every partition has a leader (fresh topics need a moment)."""
    deadline = time.monotonic() + timeout
    while True:
        described: list[dict[str, Any]] = await admin.describe_topics(topics)
        leaderless = [
            d["topic"]
            for d in described
            if d.get("error_code") or any(p.get("leader", -1) < 0 for p in d["partitions"])
        ]
        if not leaderless or time.monotonic() > deadline:
            if leaderless:
                log.warning(
                    "topics without partition leaders after %.0f s: %s", timeout, leaderless
                )
            return described
        await asyncio.sleep(0.2)
