"""Prometheus metrics shared by the worker, ingest and the normaliser.

Label values are bounded: feed names come from the registry (unknown paths are counted as
``_unknown``), reasons from the code's fixed reason codes, anomaly types from the contract.
"""

from __future__ import annotations

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram

UNKNOWN_FEED = "_unknown"


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


_default: Metrics | None = None


def default_metrics() -> Metrics:
    """The process-wide metrics (created once: prometheus forbids registering twice)."""
    global _default
    if _default is None:
        _default = Metrics()
    return _default
