"""Prometheus metrics shared by the worker, ingest and the normaliser.

Label values are bounded: feed names come from the registry (unknown paths are counted as
``_unknown``), reasons from the code's fixed reason codes, anomaly types from the contract.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from typing import get_args

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from waybill_watch.models.anomaly import AnomalyType

UNKNOWN_FEED = "_unknown"

#: Every anomaly type (``open_episodes`` reports each, 0 included: a fixed set of series).
ANOMALY_TYPES: tuple[str, ...] = get_args(AnomalyType)

#: Push → anomaly: from a second to an hour (a push applied late waits for the clock).
PUSH_TO_ANOMALY_BUCKETS = (
    0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0,
)  # fmt: skip
#: One record in one stage: tens of microseconds to a slow RocksDB read.
STAGE_BUCKETS = (
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
)  # fmt: skip


class LiveGauges(Collector):
    """Gauges computed when scraped, from what the worker keeps (nothing in ``ingest``):

    * ``waybill_watch_clock_lag_seconds{partition}``: wall clock minus the detection clock of
      each owned waybill partition (``clocks``: partition → epoch ms), so it keeps growing
      while a clock stalls;
    * ``waybill_watch_open_episodes{type}``: open anomaly episodes in the owned partitions
      (``open_episodes()``: type → count; every type is reported, 0 included);
    * ``waybill_watch_waybill_states``: per-waybill states stored in the owned partitions;
    * ``waybill_watch_state_bytes``: RocksDB's estimate of the owned stores' size
      (``state_bytes``, sampled by the worker's ticker).

    The worker's engine thread writes the fields, the HTTP thread reads them: plain
    assignments and dict copies, no lock (a scrape sees each value whole)."""

    def __init__(self, wall: Callable[[], float] = time.time) -> None:
        self.wall = wall
        self.enabled = False  # a worker process: the families are exported
        self.clocks: dict[str, int] = {}
        self.open_episodes: Callable[[], Mapping[str, int]] = dict
        self.waybill_states: Callable[[], int] = int
        self.state_bytes = 0

    def describe(self) -> Iterator[Metric]:
        return iter(self._families())

    def collect(self) -> Iterator[Metric]:
        if not self.enabled:
            return iter(())
        clock_lag, episodes, states, size = self._families()
        wall = self.wall()
        for partition, ms in sorted(dict(self.clocks).items()):
            clock_lag.add_metric([partition], wall - ms / 1000)
        counts = self.open_episodes()
        for anomaly_type in ANOMALY_TYPES:
            episodes.add_metric([anomaly_type], counts.get(anomaly_type, 0))
        states.add_metric([], self.waybill_states())
        size.add_metric([], self.state_bytes)
        return iter((clock_lag, episodes, states, size))

    @staticmethod
    def _families() -> tuple[GaugeMetricFamily, ...]:
        p = "waybill_watch_"
        return (
            GaugeMetricFamily(
                p + "clock_lag_seconds",
                "Wall clock minus the detection clock, per owned waybill partition.",
                labels=["partition"],
            ),
            GaugeMetricFamily(
                p + "open_episodes",
                "Open anomaly episodes (opened minus resolved or dropped) in the owned "
                "partitions, waybill, site and courier scope.",
                labels=["type"],
            ),
            GaugeMetricFamily(
                p + "waybill_states",
                "Per-waybill states (retired markers included) stored in the owned partitions.",
            ),
            GaugeMetricFamily(
                p + "state_bytes",
                "RocksDB's estimate of the owned state stores' size: live data in SST files "
                "plus memtables (rocksdb.estimate-live-data-size + "
                "rocksdb.cur-size-all-mem-tables).",
            ),
        )


class Metrics:
    """All counters of one process, registered in one registry."""

    def __init__(self, registry: CollectorRegistry = REGISTRY) -> None:
        self.registry = registry
        p = "waybill_watch_"
        self.callbacks_received = Counter(
            p + "callbacks_received",
            "HTTP callbacks received, by feed.",
            ["feed"],
            registry=registry,
        )
        self.callbacks_accepted = Counter(
            p + "callbacks_accepted",
            "Callbacks written to tracking.raw and acknowledged.",
            ["feed"],
            registry=registry,
        )
        self.callbacks_rejected = Counter(
            p + "callbacks_rejected",
            "Callbacks refused, by feed and reason code.",
            ["feed", "reason"],
            registry=registry,
        )
        self.callback_latency = Histogram(
            p + "callback_latency_seconds",
            "Time from request to acknowledgement (includes the Kafka write).",
            ["feed"],
            registry=registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
        )
        self.envelopes_normalized = Counter(
            p + "envelopes_normalized",
            "Envelopes read from tracking.raw, by feed and outcome.",
            ["feed", "outcome"],
            registry=registry,
        )
        self.dlq_records = Counter(
            p + "dlq_records",
            "Records written to tracking.dlq, by source and reason.",
            ["source", "reason"],
            registry=registry,
        )
        self.tracking_events_processed = Counter(
            p + "tracking_events_processed",
            "Scans applied to per-waybill state, by feed and outcome (new | duplicate).",
            ["feed", "outcome"],
            registry=registry,
        )
        self.order_events_processed = Counter(
            p + "order_events_processed",
            "Order events applied, by type.",
            ["type"],
            registry=registry,
        )
        self.anomalies_emitted = Counter(
            p + "anomalies_emitted",
            "Anomaly events emitted, by type and status.",
            ["type", "status"],
            registry=registry,
        )
        self.deadlines_fired = Counter(
            p + "deadlines_fired",
            "Deadlines that were due and handed to the engine.",
            registry=registry,
        )
        self.waybills_retired = Counter(
            p + "waybills_retired",
            "Quiet waybill states replaced by a marker (retired) or deleted (forgotten).",
            ["stage"],
            registry=registry,
        )
        self.partitions_assigned = Gauge(
            p + "partitions_assigned",
            "Waybill partitions this worker owns (the group's members should add up to "
            "WAYBILL_WATCH_PARTITIONS).",
            registry=registry,
        )
        self.clock_seconds = Gauge(
            p + "clock_seconds",
            "The detection clock (epoch seconds) per partition.",
            ["partition"],
            registry=registry,
        )
        self.consumer_lag = Gauge(
            p + "consumer_lag",
            "Records between the worker consumer's position (its committed offset until it "
            "read one) and the end of each owned partition of the topics it consumes.",
            ["topic", "partition"],
            registry=registry,
        )
        self.push_to_anomaly = Histogram(
            p + "push_to_anomaly_seconds",
            "From the received_at of the push (or order event) that opened an anomaly to the "
            "open event handed to the producer (deadline-fired anomalies not counted).",
            ["type"],
            registry=registry,
            buckets=PUSH_TO_ANOMALY_BUCKETS,
        )
        self.stage_seconds = Histogram(
            p + "stage_seconds",
            "Processing time of one record per worker stage (normalize, validate, waybill, "
            "aggregate).",
            ["stage"],
            registry=registry,
            buckets=STAGE_BUCKETS,
        )
        self.rebalances = Counter(
            p + "rebalances",
            "Consumer group rebalance callbacks with partitions, by event (assigned | "
            "revoked | lost).",
            ["event"],
            registry=registry,
        )
        self.engine_restarts = Counter(
            p + "engine_restarts",
            "Stream engines the worker replaced in-process after a Kafka error, by error "
            "(the Kafka error code or the exception's class).",
            ["error"],
            registry=registry,
        )
        self.callback_responses = Counter(
            p + "callback_responses",
            "Answers of POST /callbacks/{feed}, by feed and HTTP status code.",
            ["feed", "code"],
            registry=registry,
        )
        self.live = LiveGauges()
        registry.register(self.live)


_default: Metrics | None = None


def default_metrics() -> Metrics:
    """The process-wide metrics (created once: prometheus forbids registering twice)."""
    global _default
    if _default is None:
        _default = Metrics()
    return _default
