"""Prometheus metrics of the case service (its own registry, served on its ``/metrics``).

Label values are bounded: anomaly types and case events come from the contract's
vocabularies, reasons from fixed codes, partitions from the topic.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_P = "waybill_watch_cases_"


class CaseMetrics:
    """Every metric of one case service process."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.open = Gauge(_P + "open", "Open cases, by anomaly type.", ["type"], registry=r)
        self.overdue_steps = Gauge(
            _P + "overdue_steps",
            "Pending steps past their due time, by type.",
            ["type"],
            registry=r,
        )
        self.time_to_close = Histogram(
            _P + "time_to_close_seconds",
            "From a case opening to its closing, by type and who closed it (system | person).",
            ["type", "closed_by"],
            buckets=(
                600,
                3600,
                4 * 3600,
                12 * 3600,
                86400,
                2 * 86400,
                4 * 86400,
                7 * 86400,
                14 * 86400,
                30 * 86400,
            ),
            registry=r,
        )
        self.anomalies = Counter(
            _P + "anomalies",
            "Anomaly records read, by outcome: applied (a case changed), unchanged (a "
            "duplicate, or a resolution no case knows), rejected (to the DLQ).",
            ["outcome"],
            registry=r,
        )
        self.events = Counter(
            _P + "events_published",
            "cases.events records published, by event.",
            ["event"],
            registry=r,
        )
        self.dlq = Counter(
            _P + "dlq_records",
            "Anomaly records sent to the DLQ, by reason.",
            ["reason"],
            registry=r,
        )
        self.lag = Gauge(
            _P + "consumer_lag",
            "Records of `anomalies` not yet applied, by partition.",
            ["partition"],
            registry=r,
        )
        self.outbox = Gauge(
            _P + "outbox_pending",
            "cases.events records committed but not yet published.",
            registry=r,
        )
        self.store_errors = Counter(
            _P + "store_errors",
            "Database errors, by operation (retried).",
            ["operation"],
            registry=r,
        )
        self.api_requests = Counter(
            _P + "api_requests",
            "REST API requests, by route and status.",
            ["route", "status"],
            registry=r,
        )

    def set_counts(self, counts: dict[str, dict[str, int]]) -> None:
        """Refresh the gauges from the store's counts (types absent now read 0)."""
        for gauge, values in (
            (self.open, counts.get("open", {})),
            (self.overdue_steps, counts.get("overdue", {})),
        ):
            gauge.clear()
            for type_, n in values.items():
                gauge.labels(type_).set(n)
