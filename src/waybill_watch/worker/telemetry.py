"""The worker's operational gauges that come from the consumer and the stores rather than from
records: consumer lag (librdkafka statistics), rebalances, the stores' size.

Everything here runs on the engine's thread: librdkafka calls ``stats_cb`` and the rebalance
callbacks from inside the consumer's poll, and the ticker samples the stores between records.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterable
from typing import Any

from waybill_watch import jsonio
from waybill_watch.metrics import Metrics

log = logging.getLogger(__name__)

#: librdkafka ``statistics.interval.ms`` of the worker's consumer: how fresh the lag is.
STATS_INTERVAL_MS = 5000

#: RocksDB properties summed for ``waybill_watch_state_bytes`` (default column family, where
#: every key of the worker's state lives): live data in SST files plus the memtables.
SIZE_PROPERTIES = ("rocksdb.estimate-live-data-size", "rocksdb.cur-size-all-mem-tables")

#: A rebalance callback of quix-streams' ``Application``: ``(consumer, partitions)``.
RebalanceCallback = Callable[[Any, list[Any]], None]


def partition_lag(stats: dict[str, Any]) -> int | None:
    """Records between a partition's position and its end, from its librdkafka statistics;
    None when either is unknown.

    The end is the last stable offset (the worker reads ``read_committed``: nothing past an
    open transaction is readable), the high watermark when that is unknown. The position is
    the application's (``app_offset``: the next offset to hand out, past transaction markers)
    once it read anything; before, the group's committed offset (a restarted worker whose
    partitions stay idle), or the log start (no committed offset: ``earliest``). librdkafka's
    own ``consumer_lag`` uses the committed offset librdkafka knows, which under exactly-once
    stays at the one read at the assignment: offsets are committed by the producer's
    transaction."""
    end = stats.get("ls_offset", -1)
    if end < 0:
        end = stats.get("hi_offset", -1)
    if end < 0:
        return None
    position = stats.get("app_offset", -1)
    if position < 0:
        position = stats.get("committed_offset", -1)
    if position < 0:
        position = stats.get("lo_offset", -1)
    if position < 0:
        return None
    return max(0, end - position)


class ConsumerLag:
    """``waybill_watch_consumer_lag{topic,partition}`` from the consumer's statistics, for the
    assigned partitions of the topics the stages consume (changelogs are read only to restore);
    a revoked partition's series is removed."""

    def __init__(self, metrics: Metrics, topics: Iterable[str]) -> None:
        self.gauge = metrics.consumer_lag
        self.topics = frozenset(topics)
        self.assigned: set[tuple[str, int]] = set()
        self.children: dict[tuple[str, int], Any] = {}

    def assign(self, partitions: Iterable[Any]) -> None:
        for tp in partitions:
            if tp.topic in self.topics:
                self.assigned.add((tp.topic, tp.partition))

    def revoke(self, partitions: Iterable[Any]) -> None:
        for tp in partitions:
            key = (tp.topic, tp.partition)
            self.assigned.discard(key)
            if self.children.pop(key, None) is not None:
                with contextlib.suppress(KeyError):
                    self.gauge.remove(tp.topic, str(tp.partition))

    def on_stats(self, stats_json: str) -> None:
        """librdkafka's ``stats_cb``: never raises (it would surface from the poll)."""
        try:
            self.update(jsonio.loads(stats_json))
        except Exception:
            log.debug("could not read the consumer statistics", exc_info=True)

    def update(self, stats: dict[str, Any]) -> None:
        topics = stats.get("topics") or {}
        for name in self.topics.intersection(topics):
            for pid, part in (topics[name].get("partitions") or {}).items():
                key = (name, int(pid))
                if key not in self.assigned:  # -1 (librdkafka's internal one), not ours
                    continue
                lag = partition_lag(part)
                if lag is None:
                    continue
                child = self.children.get(key)
                if child is None:
                    child = self.children[key] = self.gauge.labels(name, str(key[1]))
                child.set(lag)


def store_bytes(db: Any) -> int:
    """RocksDB's estimate of one store partition's size (``SIZE_PROPERTIES``)."""
    return sum(int(db.property_int_value(name) or 0) for name in SIZE_PROPERTIES)


def owned_store_bytes(state_manager: Any, stream_ids: Iterable[str]) -> int:
    """The size of every open store partition of ``stream_ids`` (quix-streams internals, pinned
    with the version: the store's ``partitions`` and a partition's RocksDB handle ``_db``)."""
    total = 0
    for stream_id in stream_ids:
        try:
            partitions = list(state_manager.get_store(stream_id).partitions.values())
        except Exception:  # no store (yet)
            log.debug("no store of %s", stream_id, exc_info=True)
            partitions = []
        for partition in partitions:
            try:
                total += store_bytes(partition._db)
            except Exception:  # closed by a rebalance meanwhile
                log.debug("no size of a store partition of %s", stream_id, exc_info=True)
    return total


def hook_rebalances(app: Any, metrics: Metrics, listener: Callable[[str, list[Any]], None]) -> None:
    """Count quix-streams' rebalance callbacks (those with partitions) and tell ``listener``
    ``(event, partitions)`` after quix-streams handled them: ``assigned``, ``revoked``,
    ``lost``. quix-streams subscribes with its bound ``_on_assign`` / ``_on_revoke`` /
    ``_on_lost`` when it runs, so wrapping them on the instance before works (pinned)."""
    for attribute, event in (
        ("_on_assign", "assigned"),
        ("_on_revoke", "revoked"),
        ("_on_lost", "lost"),
    ):
        setattr(app, attribute, _after(getattr(app, attribute), event, metrics, listener))


def _after(
    original: RebalanceCallback,
    event: str,
    metrics: Metrics,
    listener: Callable[[str, list[Any]], None],
) -> RebalanceCallback:
    counter = metrics.rebalances.labels(event)

    def callback(consumer: Any, partitions: list[Any]) -> None:
        try:
            original(consumer, partitions)
        finally:
            if partitions:
                counter.inc()
                try:
                    listener(event, partitions)
                except Exception:  # metrics must never break a rebalance
                    log.exception("rebalance listener failed on %s", event)

    return callback
