"""Offline replay (contract §2 ``waybill-watch replay``): the worker's logic, in-process, no Kafka.

For each capture envelope, in file order:

1. advance the stream clock to the envelope's ``received_at`` (it never goes backwards) and let
   the waybill runner, then the site/courier runner, fire every deadline due by then;
2. parse the envelope with the same feed code as ingest;
3. apply each waybill update, then each order event, through the waybill runner; the signals it
   hands out go straight to the site/courier runner (the worker sends them through a topic).

Both runners are ``domain.runner.KeyedRunner``s on in-memory ports: the worker drives the same
runners on quix-streams state, so the order of decisions is written once.

``finish()`` fires the deadlines up to the last envelope's ``received_at`` (or ``until``).
Anomaly events go to a sink (default: a list) in emission order; ``write_jsonl`` writes them
byte-identically on every run. A malformed envelope is counted in ``ReplayStats`` by reason,
never fatal. The hot path stays on dataclasses: pydantic parses the envelope once and builds an
``AnomalyEvent`` only when one is emitted.

Whole-trace feeds (Kdniao) re-send every earlier scan in each push; most of a push is scans the
waybill already has. For feeds offering ``parse_pending`` the replay reads each trace's
``event_id`` first and builds ``Scan`` objects only for ids the waybill's state lacks
(``WaybillState.known_ids``). The engine would drop the others anyway, so outcome, statistics
and output are those of ``Feed.parse`` (the tests run both ways and compare).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import IO, Any

from pydantic import ValidationError

from waybill_watch import jsonio
from waybill_watch.domain.aggregate_state import load_aggregate
from waybill_watch.domain.aggregates import AggregateEngines
from waybill_watch.domain.clock import StreamClock, to_ms
from waybill_watch.domain.config import DetectionSettings
from waybill_watch.domain.deadlines import InMemoryDeadlineIndex
from waybill_watch.domain.engine import WaybillEngine
from waybill_watch.domain.runner import (
    AggregateHandler,
    AggregateRunner,
    AggregateState,
    InMemoryStore,
    Ports,
    WaybillHandler,
    WaybillRunner,
)
from waybill_watch.domain.signals import Signal
from waybill_watch.domain.state import WaybillState
from waybill_watch.domain.types import Scan, WaybillUpdate
from waybill_watch.feeds.base import Feed, FeedError, MalformedBody
from waybill_watch.feeds.scans import PendingParse, PendingUpdate
from waybill_watch.models.anomaly import AnomalyEvent
from waybill_watch.models.envelope import CaptureEnvelope
from waybill_watch.models.order import OrderEvent


@dataclass(slots=True)
class ReplayStats:
    """What a replay read and produced; ``malformed`` counts unusable envelopes by reason."""

    envelopes: int = 0
    updates: int = 0
    orders: int = 0
    scans: int = 0
    new_scans: int = 0
    anomalies: int = 0
    deadlines_fired: int = 0
    retired: int = 0
    forgotten: int = 0
    after_until: int = 0
    malformed: Counter[str] = field(default_factory=Counter)
    rejected: Counter[str] = field(default_factory=Counter)
    ignored: Counter[str] = field(default_factory=Counter)

    def to_dict(self) -> dict[str, Any]:
        """Plain data, reasons sorted (for a JSON report)."""
        return {
            "envelopes": self.envelopes,
            "updates": self.updates,
            "orders": self.orders,
            "scans": self.scans,
            "new_scans": self.new_scans,
            "anomalies": self.anomalies,
            "deadlines_fired": self.deadlines_fired,
            "retired": self.retired,
            "forgotten": self.forgotten,
            "after_until": self.after_until,
            "malformed": dict(sorted(self.malformed.items())),
            "rejected": dict(sorted(self.rejected.items())),
            "ignored": dict(sorted(self.ignored.items())),
        }

    def summary(self) -> str:
        """A few human lines for stderr."""
        lines = [
            f"envelopes={self.envelopes} updates={self.updates} orders={self.orders} "
            f"scans={self.scans} new_scans={self.new_scans} anomalies={self.anomalies} "
            f"deadlines_fired={self.deadlines_fired} retired={self.retired} "
            f"forgotten={self.forgotten} after_until={self.after_until}"
        ]
        for label, counts in (
            ("malformed", self.malformed),
            ("rejected", self.rejected),
            ("ignored", self.ignored),
        ):
            if counts:
                detail = " ".join(f"{k}={v}" for k, v in sorted(counts.items()))
                lines.append(f"{label}: {detail}")
        return "\n".join(lines)


def encode_anomaly(event: AnomalyEvent) -> bytes:
    """One JSON Lines record of an anomaly event."""
    return jsonio.dumps(event) + b"\n"


def write_jsonl(events: Iterable[AnomalyEvent], out: IO[bytes]) -> int:
    """Write events as JSON Lines; return how many."""
    count = 0
    for event in events:
        out.write(encode_anomaly(event))
        count += 1
    return count


class _ReplayEffects:
    """Replay's ``Effects`` port: anomalies to the sink, signals straight to the aggregate
    runner, counters to ``ReplayStats``."""

    def __init__(self, replay: Replay) -> None:
        self.replay = replay
        self.stats = replay.stats

    def anomaly(self, event: AnomalyEvent) -> None:
        self.stats.anomalies += 1
        self.replay._sink(event)

    def scans(self, key: str, scans: list[Scan]) -> None:
        self.stats.new_scans += len(scans)

    def signal(self, signal: Signal, now: datetime) -> None:
        replay = self.replay
        replay.aggregates.apply(replay.aggregate_ports, signal.key, signal, now)

    def lifecycle(self, event: str) -> None:
        stats = self.stats
        if event == "fired":
            stats.deadlines_fired += 1
        elif event == "retired":
            stats.retired += 1
        else:
            stats.forgotten += 1


class Replay:
    """One in-process run of the detection pipeline over captured envelopes."""

    def __init__(
        self,
        detection: DetectionSettings,
        feeds: Mapping[str, Feed] | None = None,
        *,
        until: datetime | None = None,
        verify_signatures: bool = False,
        sink: Callable[[AnomalyEvent], None] | None = None,
        store_bytes: bool = False,
    ) -> None:
        self.feeds = dict(feeds or {})
        self.until = until
        self.verify_signatures = verify_signatures
        self.clock = StreamClock()
        self.stats = ReplayStats()
        self.anomalies: list[AnomalyEvent] = []
        self._sink = sink if sink is not None else self.anomalies.append
        #: Feeds that can hand out updates before building their scans (see ``_realise``).
        self._pending_parsers: dict[str, Callable[[CaptureEnvelope], PendingParse]] = {
            name: parser
            for name, feed in self.feeds.items()
            if (parser := getattr(feed, "parse_pending", None)) is not None
        }
        # ``store_bytes`` keeps states serialised, exactly as the worker does.
        self._waybills: InMemoryStore[WaybillState] = InMemoryStore(
            (WaybillState.to_bytes, WaybillState.from_bytes) if store_bytes else None
        )
        self._aggregates: InMemoryStore[AggregateState] = InMemoryStore(
            (_dump_aggregate, load_aggregate) if store_bytes else None
        )
        effects = _ReplayEffects(self)
        self.waybills: WaybillRunner = WaybillRunner(WaybillHandler(WaybillEngine(detection)))
        self.aggregates: AggregateRunner = AggregateRunner(
            AggregateHandler(AggregateEngines(detection))
        )
        self.waybill_ports = Ports(self._waybills, InMemoryDeadlineIndex(), effects)
        self.aggregate_ports = Ports(self._aggregates, InMemoryDeadlineIndex(), effects)

    # -- input ----------------------------------------------------------------------------

    def run(self, lines: Iterable[bytes | str]) -> list[AnomalyEvent]:
        """Process every capture line, then ``finish``; return the collected anomalies."""
        for line in lines:
            self.process_line(line)
        self.finish()
        return self.anomalies

    def process_line(self, line: bytes | str) -> None:
        """One JSON Lines record of a capture file (blank lines are skipped)."""
        if not line.strip():
            return
        try:
            envelope = CaptureEnvelope.model_validate_json(line)
        except ValidationError as exc:
            self.stats.envelopes += 1
            bad_json = any(e["type"] == "json_invalid" for e in exc.errors())
            self.stats.malformed["invalid_json" if bad_json else "invalid_envelope"] += 1
            return
        self.process_envelope(envelope)

    def process_envelope(self, envelope: CaptureEnvelope) -> None:
        """Advance the clock to the envelope, fire deadlines, parse and apply it."""
        self.stats.envelopes += 1
        if self.until is not None and envelope.received_at > self.until:
            self.stats.after_until += 1
            return
        now = self.advance(envelope.received_at)
        feed = self.feeds.get(envelope.feed)
        if feed is None:
            self.stats.malformed["unknown_feed"] += 1
            return
        try:
            if self.verify_signatures:
                headers = {k.lower(): v for k, v in envelope.headers.items()}
                feed.verify(headers, envelope.body.encode("utf-8"))
            pending_parser = self._pending_parsers.get(envelope.feed)
            if pending_parser is not None:
                found = pending_parser(envelope)
                rejected, ignored = found.rejected, found.ignored
                updates = self._realise(found.updates)
                orders: list[OrderEvent] = []
            else:
                result = feed.parse(envelope)
                rejected, ignored, orders = result.rejected, result.ignored, result.orders
                updates = [(update, len(update.scans)) for update in result.updates]
        except FeedError as exc:
            self.stats.malformed[exc.reason] += 1
            return
        except Exception:  # a feed bug must not stop a backtest; it is counted instead
            self.stats.malformed["parse_error"] += 1
            return
        for part in rejected:
            self.stats.rejected[part.reason] += 1
        if ignored:
            self.stats.ignored[ignored] += 1
        for update, scans in updates:
            self._apply_update(update, now, scans)
        for order in orders:
            self._apply_order(order, now)

    def _realise(self, pending: list[PendingUpdate]) -> list[tuple[WaybillUpdate, int]]:
        """Build each update's scans except those its waybill already has; with the push's
        count of distinct scans.

        The engine would drop the known ones anyway, so the outcome is the same; only the
        first update of a waybill in an envelope is filtered (a second one, for another
        courier, sees the state as the first leaves it, so it gets every scan). All scans are
        built before any update is applied, as with ``Feed.parse``: a builder failure rejects
        the whole envelope as ``parser_error``.
        """
        out: list[tuple[WaybillUpdate, int]] = []
        filtered: set[str] = set()
        try:
            for part in pending:
                waybill = part.update.waybill
                known = None
                if waybill not in filtered:
                    filtered.add(waybill)
                    state = self._waybill(waybill)
                    known = state.known_ids() if state is not None else None
                out.append((part.realise(known), part.scan_count))
        except Exception as exc:
            raise MalformedBody(
                "parser_error", f"scan builder failed ({type(exc).__name__})"
            ) from exc
        return out

    def process_update(self, update: WaybillUpdate) -> None:
        """Apply one already-parsed update at its ``received_at``."""
        self._apply_update(update, self.advance(update.received_at))

    def process_order(self, order: OrderEvent, received_at: datetime) -> None:
        """Apply one order event received at ``received_at``."""
        self._apply_order(order, self.advance(received_at))

    def advance(self, observed: datetime) -> datetime:
        """Move the stream clock (never backwards) and fire every deadline due by then."""
        now = self.clock.observe(observed)
        self._fire(now)
        return now

    def finish(self, until: datetime | None = None) -> ReplayStats:
        """Fire the deadlines up to ``until`` (default: the constructor's, else the clock)."""
        target = until or self.until
        if target is not None:
            self.clock.observe(target)
        self._fire(self.clock.now())
        return self.stats

    # -- runners --------------------------------------------------------------------------

    def _fire(self, now: datetime) -> None:
        self.waybills.advance(self.waybill_ports, now)
        self.aggregates.advance(self.aggregate_ports, now)

    def _apply_update(self, update: WaybillUpdate, now: datetime, scans: int | None = None) -> None:
        self.stats.updates += 1
        self.stats.scans += len(update.scans) if scans is None else scans
        self.waybills.apply(self.waybill_ports, update.waybill, update, now)

    def _apply_order(self, order: OrderEvent, now: datetime) -> None:
        self.stats.orders += 1
        self.waybills.apply(self.waybill_ports, order.waybill, order, now)

    # -- inspection -----------------------------------------------------------------------

    def _waybill(self, waybill: str) -> WaybillState | None:
        entry = self._waybills.load(waybill)
        return entry[1] if entry is not None else None

    def waybill_state(self, waybill: str) -> WaybillState | None:
        """The current state of one waybill (inspection and tests)."""
        return self._waybill(waybill)

    def waybill_states(self) -> Iterator[WaybillState]:
        """Every waybill's current state (inspection, the benchmark's state sizes)."""
        for waybill in self._waybills.stored_keys():
            state = self._waybill(waybill)
            if state is not None:
                yield state

    def clock_ms(self) -> int:
        """The stream clock in epoch ms."""
        return to_ms(self.clock.now())


def _dump_aggregate(state: AggregateState) -> bytes:
    return state.to_bytes()
