"""Where processors write: one small port so agents stay thin and testable."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from waybill_watch import jsonio
from waybill_watch.metrics import Metrics
from waybill_watch.models.anomaly import AnomalyEvent
from waybill_watch.models.dlq import DlqRecord

#: ``send(topic, key, value, headers)``: hand one record to the stage's producer (in the
#: current checkpoint: under exactly-once, in its transaction).
Send = Callable[[str, bytes | None, bytes, dict[str, bytes] | None], None]

#: Marks records this app forwarded itself (so its own consumers skip them).
ORIGIN_HEADER = "wbw-origin"


def payload_text(raw: bytes) -> tuple[str, str]:
    """The original bytes as UTF-8 text, or base64 when they are not text."""
    try:
        return raw.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        import base64

        return base64.b64encode(raw).decode("ascii"), "base64"


class Outputs:
    """Anomalies, dead letters and forwarded records, with their metrics."""

    def __init__(self, send: Send, metrics: Metrics, *, anomalies: str, dlq: str) -> None:
        self.send = send
        self.metrics = metrics
        self.anomalies_topic = anomalies
        self.dlq_topic = dlq

    def anomaly(self, event: AnomalyEvent) -> None:
        self.send(self.anomalies_topic, event.subject.encode(), jsonio.dumps(event), None)
        self.metrics.anomalies_emitted.labels(event.type, event.status).inc()

    def dead_letter(
        self,
        *,
        source: str,
        reason: str,
        error: str,
        payload: bytes,
        now: datetime,
        feed: str | None = None,
        key: bytes | None = None,
    ) -> None:
        text, encoding = payload_text(payload)
        record = DlqRecord(
            reason=reason,
            error=error,
            source_topic=source,
            feed=feed,
            rejected_at=now,
            key=payload_text(key)[0] if key is not None else None,
            payload=text,
            payload_encoding=encoding,
        )
        self.send(self.dlq_topic, key, jsonio.dumps(record), None)
        self.metrics.dlq_records.labels(source, reason).inc()
