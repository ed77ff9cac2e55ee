"""Prometheus metrics of the notifier (its own registry, served on its ``/metrics``).

Label values are bounded: channel names come from the rules file, outcomes and results from
fixed codes (``channels.base.Outcome.code``), topics and partitions from the subscription.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_P = "waybill_watch_notify_"


class NotifyMetrics:
    """Every metric of one notifier process."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.records = Counter(
            _P + "records",
            "Records read, by topic and outcome: routed (queued at least one new message), "
            "duplicate (every message already queued), unmatched (no rule), rejected (DLQ).",
            ["topic", "outcome"],
            registry=r,
        )
        self.queued = Counter(
            _P + "queued",
            "Messages queued (one per event and channel), by channel.",
            ["channel"],
            registry=r,
        )
        self.notifications = Counter(
            _P + "notifications",
            "Deliveries (a message or a digest) by channel, channel type and outcome: sent "
            "(acknowledged), retried (failed, tried again later), dead_lettered (to "
            "notifications.dlq).",
            ["channel", "type", "outcome"],
            registry=r,
        )
        self.attempts = Counter(
            _P + "attempts",
            "Send attempts by channel and result code (ok, http_500, http_429, timeout, "
            "connection, code_<platform errcode>, ...).",
            ["channel", "result"],
            registry=r,
        )
        self.latency = Histogram(
            _P + "delivery_latency_seconds",
            "From the event (anomaly detected_at, case event at) to its channel's "
            "acknowledgement, by channel (held and digested messages included).",
            ["channel"],
            buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 4 * 3600, 12 * 3600),
            registry=r,
        )
        self.queue_depth = Gauge(
            _P + "queue_depth",
            "Messages queued and not yet delivered or dead-lettered, by channel.",
            ["channel"],
            registry=r,
        )
        self.lag = Gauge(
            _P + "consumer_lag",
            "Records of the subscribed topics not yet queued, by topic and partition.",
            ["topic", "partition"],
            registry=r,
        )
        self.throttled = Gauge(
            _P + "channel_paused",
            "1 while a channel waits out a receiver's throttling (429, Retry-After).",
            ["channel"],
            registry=r,
        )
        self.store_errors = Counter(
            _P + "store_errors",
            "Database errors, by operation (retried).",
            ["operation"],
            registry=r,
        )
