"""The aggregate processor: site- and courier-scope detectors fed by re-keyed signals.

Consumes ``waybill-watch.signals`` (keyed by ``courier`` or ``courier:site``) and keeps one
state per key in the ``aggregates`` table; ``bulk_signing``, ``site_stall_spike`` and
``feed_silence`` never depend on a process-local dict, so any number of workers agree.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from waybill_watch.domain.aggregates import AggOutcome, AggregateEngines
from waybill_watch.metrics import Metrics
from waybill_watch.worker import codec
from waybill_watch.worker.keyed import KeyedStore
from waybill_watch.worker.outputs import Outputs


class AggregateProcessor:
    """Applies one signal (or clock tick) to one site/courier state."""

    def __init__(
        self, engines: AggregateEngines, store: KeyedStore, outputs: Outputs, metrics: Metrics
    ) -> None:
        self.engines = engines
        self.store = store
        self.outputs = outputs
        self.metrics = metrics

    async def handle(self, partition: int, value: bytes) -> None:
        """Process one record of the signals topic."""
        kind, payload = codec.decode(value)
        if kind == codec.TICK:
            await self._advance(partition, payload)
            return
        if kind != codec.SIGNAL:
            raise ValueError(f"unexpected {kind!r} record on the signals topic")
        signal, sender_now = payload
        now = await self._advance(partition, sender_now)
        raw = self.store.load(signal.key)
        state = self.engines.load(raw) if raw is not None else None
        await self._commit(signal.key, self.engines.on_signal(state, signal, now), now, partition)

    async def _advance(self, partition: int, observed: datetime | None) -> datetime:
        now = self.store.clock.now(partition, observed)
        entries, ready = self.store.due(partition, now)
        self.metrics.deadlines_examined.inc(len(entries))
        for key, raw in ready:
            self.metrics.deadlines_fired.inc()
            outcome = self.engines.on_due(self.engines.load(raw), now)
            await self._commit(key, outcome, now, partition)
        self.store.done(partition, entries, now)
        return now

    async def _commit(
        self,
        key: str,
        outcome: AggOutcome[Any],
        now: datetime,
        partition: int,
    ) -> None:
        for anomaly in outcome.anomalies:  # output first, then the table (see waybills.py)
            await self.outputs.anomaly(anomaly)
        self.store.save(key, outcome.state.to_bytes(), outcome.next_due, now, partition)
