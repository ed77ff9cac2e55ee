"""Topic names (contract §7) and their creation with the right partition counts.

The stream engine only creates its internal topics; the contract topics are created here
before the app starts, because a topic auto-created with one partition would not be
co-partitioned with the per-waybill table.

Replication (:class:`TopicLayout`): every topic the project creates, quix-streams' changelogs
included (:class:`EngineTopicManager`), gets replication 3 and ``min.insync.replicas`` 2 when
the cluster lists at least three brokers, else 1 / 1; ``WAYBILL_WATCH_REPLICATION_FACTOR`` and
``WAYBILL_WATCH_MIN_INSYNC_REPLICAS`` override that. ``tracking.raw`` keeps
``WAYBILL_WATCH_RAW_RETENTION_HOURS`` (7 days by default) so a capture can be replayed.
Existing topics are never altered.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError

from waybill_watch.kafka_client import kafka_connection, start_client
from waybill_watch.settings import Settings

if TYPE_CHECKING:
    from quixstreams.models.topics import TopicManager

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


#: Replication from this many brokers on (Kafka's production defaults: 3 / 2).
REPLICATED_FROM_BROKERS = 3
HOUR_MS = 3_600_000


@dataclass(frozen=True, slots=True)
class TopicLayout:
    """Replication and ISR minimum of the topics the project creates."""

    replication: int
    min_insync: int

    def configs(self) -> dict[str, str]:
        """Topic configs every created topic carries."""
        return {"min.insync.replicas": str(self.min_insync)}


def topic_layout(settings: Settings, brokers: int) -> TopicLayout:
    """The layout for a cluster whose metadata lists ``brokers`` brokers.

    Replication 3 / ``min.insync.replicas`` 2 from three brokers on (one broker may be down
    and acks=all writes go on), else 1 / 1; the settings override either. A cluster that lists
    fewer brokers than the replication asks for cannot create the topic: that fails here,
    saying which setting to change, instead of as Kafka's INVALID_REPLICATION_FACTOR.
    """
    auto = 3 if brokers >= REPLICATED_FROM_BROKERS else 1
    replication = settings.replication_factor or auto
    if settings.min_insync_replicas is not None:
        min_insync = settings.min_insync_replicas
    else:
        min_insync = 2 if replication >= 3 else 1
    if min_insync > replication:
        raise TopicLayoutError(
            f"WAYBILL_WATCH_MIN_INSYNC_REPLICAS={min_insync} exceeds the replication factor "
            f"{replication} (the cluster lists {brokers} brokers): every acks=all write would "
            "fail; set WAYBILL_WATCH_REPLICATION_FACTOR"
        )
    if replication > brokers >= 1:
        raise TopicLayoutError(
            f"WAYBILL_WATCH_REPLICATION_FACTOR={replication} but the cluster lists only "
            f"{brokers} brokers"
        )
    return TopicLayout(replication, min_insync)


def raw_topic_configs(settings: Settings) -> dict[str, str]:
    """The configs of a new ``tracking.raw``: its retention (``-1``: forever)."""
    hours = settings.raw_retention_hours
    return {"retention.ms": "-1" if hours == -1 else str(round(hours * HOUR_MS))}


async def cluster_layout(admin: AIOKafkaAdminClient, settings: Settings) -> TopicLayout:
    """:func:`topic_layout` for the brokers the cluster's metadata lists now."""
    cluster: dict[str, Any] = await admin.describe_cluster()
    return topic_layout(settings, len(cluster.get("brokers") or ()))


def new_topic(
    name: str, partitions: int, layout: TopicLayout, extra: dict[str, str] | None = None
) -> NewTopic:
    """A ``NewTopic`` with the layout's replication and configs (plus ``extra``)."""
    return NewTopic(
        name, partitions, layout.replication, topic_configs={**layout.configs(), **(extra or {})}
    )


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
    kafka = kafka_connection(settings)
    admin = AIOKafkaAdminClient(**kafka.aiokafka_options())
    await start_client(admin, kafka)
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
        layout = await cluster_layout(admin, settings)
        raw_partitions = settings.raw_topic_partitions()
        new = [
            new_topic(n, raw_partitions, layout, raw_topic_configs(settings))
            if n == names.raw
            else new_topic(n, settings.partitions, layout)
            for n in missing
        ]
        with contextlib.suppress(TopicAlreadyExistsError):  # another worker won the race
            await admin.create_topics(new)
        log.info(
            "created topics %s with %d partitions, replication %d, min.insync.replicas %d",
            missing,
            settings.partitions,
            layout.replication,
            layout.min_insync,
        )
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


def engine_topic_manager(
    settings: Settings, consumer_group: str, *, timeout: float, create_timeout: float = 60.0
) -> TopicManager:
    """quix-streams' topic manager for the worker's ``Application(topic_manager=...)``.

    quix-streams (3.28.1) creates its changelog (and repartition) topics with the replication
    of the source topics (``TopicManager.derive_topic_config``: the largest) and only
    ``cleanup.policy=compact`` plus the sources' retention: no ``min.insync.replicas``, so the
    broker's default (1 unless the cluster sets it) would let an acks=all changelog write be
    acknowledged by one replica. This manager gives them the project's layout too: the larger
    of the derived replication and :func:`topic_layout`'s (an explicit setting wins), and its
    ``min.insync.replicas``. The layout is resolved on first use from the broker count the
    engine's own admin client sees; topics that exist are used as they are.
    """
    from quixstreams.models.topics import Topic, TopicAdmin, TopicConfig
    from quixstreams.models.topics import TopicManager as QuixTopicManager

    class EngineTopicManager(QuixTopicManager):
        _layout: TopicLayout | None = None

        def layout(self) -> TopicLayout:
            if self._layout is None:
                described = self._admin.admin_client.describe_cluster(
                    request_timeout=self._timeout
                ).result(timeout=self._timeout)
                self._layout = topic_layout(settings, len(described.nodes))
            return self._layout

        def _create_topic(self, topic: Topic, timeout: float, create_timeout: float) -> None:
            # the one place quix-streams creates a topic (changelogs, repartitions, and a
            # regular topic ensure_topics did not create: none today)
            if topic.create_config is not None:
                topic.create_config = self._with_layout(topic.create_config)
            super()._create_topic(topic, timeout, create_timeout)

        def _with_layout(self, config: TopicConfig) -> TopicConfig:
            layout = self.layout()
            derived = config.replication_factor or 1
            replication = settings.replication_factor or max(derived, layout.replication)
            min_insync = settings.min_insync_replicas or (2 if replication >= 3 else 1)
            return TopicConfig(
                num_partitions=config.num_partitions,
                replication_factor=replication,
                extra_config={
                    **config.extra_config,
                    "min.insync.replicas": str(min(min_insync, replication)),
                },
            )

    return EngineTopicManager(
        topic_admin=TopicAdmin(broker_address=kafka_connection(settings).quix_connection()),
        consumer_group=consumer_group,
        timeout=timeout,
        create_timeout=create_timeout,
    )
