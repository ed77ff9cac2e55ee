"""The runner's ports on quix-streams: state and deadlines in the partition's RocksDB
transaction (changelog-backed), effects produced with the checkpoint's producer.

Everything a stage writes for one record — output records, state, deadline index, clock marks —
belongs to the same quix checkpoint: under ``at-least-once`` the source offset is committed only
after every output and changelog record was acknowledged (and recovery ignores changelog records
of uncommitted offsets), under ``exactly-once`` all of it is one Kafka transaction.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Callable, Collection, Iterable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

from aiokafka.partitioner import murmur2

from waybill_watch import jsonio
from waybill_watch.domain.deadlines import BucketDeadlineIndex, Kv
from waybill_watch.domain.runner import DeadlineIndex, Effects, StateStore
from waybill_watch.domain.signals import Signal
from waybill_watch.domain.types import Scan
from waybill_watch.masking import mask_text
from waybill_watch.metrics import Metrics
from waybill_watch.models.anomaly import AnomalyEvent
from waybill_watch.models.tracking import scan_to_wire
from waybill_watch.worker import codec
from waybill_watch.worker.outputs import ORIGIN_HEADER, Outputs, Send

S = TypeVar("S")

_DUE = struct.Struct(">q")
_NO_DUE = -(2**63)
#: First byte of every state value (layout version 1: tag, 8-byte due, state). Without it a
#: value would start with an 8-byte big-endian epoch-ms (the due time), which is exactly
#: quix-streams' TTL value stamp (``state/rocksdb/ttl_codec.py``): a store left carrying TTL
#: migration bookkeeping (a crash after a changelog restore leaves ``__ttl_backfill_pending__``)
#: is then either flipped into TTL mode at open, when every sampled value looks stamped, and
#: every read loses its due prefix, or it stays legacy and a read whose due is ahead of the
#: wall clock raises ``StateMigrationError``, stopping the worker on every restart. After the
#: tag the first eight bytes are at least 2**56, never a plausible stamp.
_LAYOUT_V1 = b"\x01"

STATE_PREFIX = b"s"
INDEX_PREFIX = b"d"
CLOCK_PREFIX = b"c"
OUTBOX_PREFIX = b"o"
#: The partition's counts (``PartitionCounts``): changelog-backed and committed with the state
#: they count, so they are right after a restart, a restore or a move to another worker.
COUNTS_PREFIX = b"n"


class Transaction(Protocol):
    """The part of quix's ``PartitionTransaction`` the ports use."""

    def get_bytes(self, key: Any, prefix: bytes) -> bytes | None: ...
    def set_bytes(self, key: Any, value: bytes, prefix: bytes) -> None: ...
    def delete(self, key: Any, prefix: bytes) -> None: ...


class TransactionKv:
    """``Kv`` on one prefix of a partition transaction."""

    __slots__ = ("prefix", "tx")

    def __init__(self, tx: Transaction, prefix: bytes) -> None:
        self.tx = tx
        self.prefix = prefix

    def get(self, key: str) -> bytes | None:
        return self.tx.get_bytes(key.encode(), self.prefix)

    def set(self, key: str, value: bytes) -> None:
        self.tx.set_bytes(key.encode(), value, self.prefix)

    def delete(self, key: str) -> None:
        self.tx.delete(key.encode(), self.prefix)


def split_state_value(raw: bytes) -> tuple[int | None, bytes]:
    """A stored state value as (due time, the state's own bytes).

    Untagged values (written before the layout tag) start with the due: 0x00, or 0x80 for
    none."""
    start = 1 if raw[:1] == _LAYOUT_V1 else 0
    (due,) = _DUE.unpack_from(raw, start)
    return (None if due == _NO_DUE else int(due)), raw[start + _DUE.size :]


class TransactionStore(Generic[S]):
    """``StateStore``: a layout tag, the 8-byte due time and the state's bytes, per key."""

    __slots__ = ("dump", "load_state", "tx")

    def __init__(
        self, tx: Transaction, dump: Callable[[S], bytes], load: Callable[[bytes], S]
    ) -> None:
        self.tx = tx
        self.dump = dump
        self.load_state = load

    def load(self, key: str) -> tuple[int | None, S] | None:
        raw = self.tx.get_bytes(key.encode(), STATE_PREFIX)
        if raw is None:
            return None
        due, payload = split_state_value(raw)
        return due, self.load_state(payload)

    def due_ms(self, key: str) -> int | None:
        raw = self.tx.get_bytes(key.encode(), STATE_PREFIX)
        if raw is None:
            return None
        (due,) = _DUE.unpack_from(raw, 1 if raw[:1] == _LAYOUT_V1 else 0)
        return None if due == _NO_DUE else int(due)

    def save(self, key: str, due_ms: int | None, state: S) -> None:
        due = _DUE.pack(_NO_DUE if due_ms is None else due_ms)
        self.tx.set_bytes(key.encode(), _LAYOUT_V1 + due + self.dump(state), STATE_PREFIX)

    def delete(self, key: str) -> None:
        self.tx.delete(key.encode(), STATE_PREFIX)


def anomaly_type_of(slot: str) -> str:
    """The anomaly type of an open-episode slot (the type, or ``<type>@<window>``)."""
    return slot.partition("@")[0]


class PartitionCounts:
    """What one partition's store holds, kept beside it: its states (the waybill store: one
    per waybill, retired markers included) and its open episodes by anomaly type.

    Stored under ``COUNTS_PREFIX`` as the layout tag and a JSON object (``{"states": n,
    "episodes": {type: n}}``); written only when a count changes."""

    __slots__ = ("episodes", "states")
    KEY = b"counts"

    def __init__(self, states: int = 0, episodes: dict[str, int] | None = None) -> None:
        self.states = states
        self.episodes: dict[str, int] = episodes if episodes is not None else {}

    def shift(self, before: Iterable[str], after: Iterable[str]) -> None:
        """Episode slots open before a step and after it: the closed ones (resolved, or
        dropped without an event as ``bulk_signing`` windows are) counted down, the opened
        ones up."""
        episodes = self.episodes
        for slot in before:
            anomaly_type = anomaly_type_of(slot)
            episodes[anomaly_type] = episodes.get(anomaly_type, 0) - 1
        for slot in after:
            anomaly_type = anomaly_type_of(slot)
            episodes[anomaly_type] = episodes.get(anomaly_type, 0) + 1

    def to_bytes(self) -> bytes:
        episodes = dict(sorted(self.open().items()))
        return _LAYOUT_V1 + jsonio.dumps({"states": self.states, "episodes": episodes})

    @classmethod
    def from_bytes(cls, raw: bytes) -> PartitionCounts:
        doc = jsonio.loads(raw[1:] if raw[:1] == _LAYOUT_V1 else raw)
        episodes = doc.get("episodes") or {}
        return cls(int(doc.get("states", 0)), {t: int(n) for t, n in episodes.items()})

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, PartitionCounts):
            return NotImplemented
        return (self.states, self.open()) == (other.states, other.open())

    def open(self) -> dict[str, int]:
        """The types with episodes open (or, counted from a store of an earlier version,
        below 0)."""
        return {t: n for t, n in self.episodes.items() if n}

    def __repr__(self) -> str:
        return f"PartitionCounts(states={self.states}, episodes={self.episodes})"


class Tally:
    """The counts of one keyed store's owned partitions, in memory as committed with the
    state: a partition's are read from its store when first needed (its first record or the
    ticker's first round after the assignment, once restored) and forgotten when it is
    revoked. Only the engine thread changes them; ``states`` and ``episodes`` are read by the
    metrics' scrape (copies, no lock)."""

    def __init__(self) -> None:
        self.partitions: dict[int, PartitionCounts] = {}

    def of(self, tx: Transaction, partition: int) -> PartitionCounts:
        counts = self.partitions.get(partition)
        if counts is None:
            raw = tx.get_bytes(PartitionCounts.KEY, COUNTS_PREFIX)
            counts = PartitionCounts.from_bytes(raw) if raw is not None else PartitionCounts()
            self.partitions[partition] = counts
        return counts

    @staticmethod
    def save(tx: Transaction, counts: PartitionCounts) -> None:
        tx.set_bytes(PartitionCounts.KEY, counts.to_bytes(), COUNTS_PREFIX)

    def drop(self, partition: int) -> None:
        self.partitions.pop(partition, None)

    def states(self) -> int:
        return sum(c.states for c in list(self.partitions.values()))

    def episodes(self) -> dict[str, int]:
        """Open episodes by type over the owned partitions (a partition whose counts started
        after its episodes were opened, by an earlier version, counts none below 0)."""
        out: dict[str, int] = {}
        for counts in list(self.partitions.values()):
            for anomaly_type, n in dict(counts.episodes).items():
                if n > 0:
                    out[anomaly_type] = out.get(anomaly_type, 0) + n
        return out


class Episodic(Protocol):
    """A keyed state with open episodes by slot (waybill, site and courier states)."""

    @property
    def episodes(self) -> Mapping[str, Any]: ...


E = TypeVar("E", bound=Episodic)
_NONE: frozenset[str] = frozenset()


class CountingStore(TransactionStore[E]):
    """``TransactionStore`` that keeps the partition's counts (``Tally``) in step with what it
    stores: a key saved that was not stored is a new state, a key deleted one less, and the
    open-episode slots of the state loaded (before the engine changes it: it changes states in
    place) against those of the state saved or deleted are the episodes opened and closed.

    The runner loads a key then saves or deletes that same key, one key at a time; the counts
    key is written only when a count changes. ``loaded`` (when given) hears of each load (the
    effects tell an input's own step from the deadlines fired before it)."""

    __slots__ = ("_before", "_existed", "_key", "count_states", "loaded", "partition", "tally")

    def __init__(
        self,
        tx: Transaction,
        dump: Callable[[E], bytes],
        load: Callable[[bytes], E],
        tally: Tally,
        partition: int,
        *,
        count_states: bool,
        loaded: Callable[[], None] | None = None,
    ) -> None:
        super().__init__(tx, dump, load)
        self.tally = tally
        self.partition = partition
        self.count_states = count_states
        self.loaded = loaded
        self._key: str | None = None
        self._existed = False
        self._before: Collection[str] = _NONE

    def load(self, key: str) -> tuple[int | None, E] | None:
        entry = super().load(key)
        self._key, self._existed = key, entry is not None
        self._before = frozenset(entry[1].episodes) if entry and entry[1].episodes else _NONE
        if self.loaded is not None:
            self.loaded()
        return entry

    def save(self, key: str, due_ms: int | None, state: E) -> None:
        if key != self._key:
            self.load(key)  # not the runner's order: what is stored now is the "before"
        super().save(key, due_ms, state)
        after, before = state.episodes, self._before
        new = not self._existed and self.count_states
        self._existed = True
        if not new and after.keys() == before:
            return
        self._before = frozenset(after) if after else _NONE
        counts = self.tally.of(self.tx, self.partition)
        counts.states += new
        counts.shift(before, after)
        self.tally.save(self.tx, counts)

    def delete(self, key: str) -> None:
        if key != self._key:
            self.load(key)
        super().delete(key)
        if not self._existed:
            return
        gone, before = self.count_states, self._before
        self._existed, self._before = False, _NONE
        if not gone and not before:
            return
        counts = self.tally.of(self.tx, self.partition)
        counts.states -= gone
        counts.shift(before, ())
        self.tally.save(self.tx, counts)


class SignalOutbox:
    """Signals a waybill partition decided, waiting in its state for the ticker, which sends
    them as one record per signals partition (``stages.send_signals``) just before the
    partition's clock, so the clock vouches for them as it did for one record per signal.

    In the state (one value per partition: the layout tag, then per signal its signals
    partition, length and record), not in memory: the checkpoint that commits an update's
    offset commits its signals with it, and a restart or a new owner of the partition sends
    them. The signals partition of a key is Kafka's default (murmur2, as quix-streams' producer
    partitions keyed records), so a key's state stays where single signal records put it."""

    _KEY = b"signals"
    _ENTRY = struct.Struct(">HI")

    def __init__(self, partitions: int) -> None:
        self.partitions = partitions
        self._partition: dict[bytes, int] = {}

    def partition_of(self, key: bytes) -> int:
        """The signals partition of a signal's key."""
        partition = self._partition.get(key)
        if partition is None:
            if len(self._partition) >= 100_000:  # site keys are many but bounded: a cache
                self._partition.clear()
            partition = (murmur2(key) & 0x7FFFFFFF) % self.partitions
            self._partition[key] = partition
        return partition

    def add(self, tx: Transaction, key: bytes, record: bytes) -> None:
        """Keep one signal record (``codec.encode_signal``) of ``key``."""
        held = tx.get_bytes(self._KEY, OUTBOX_PREFIX) or _LAYOUT_V1
        entry = self._ENTRY.pack(self.partition_of(key), len(record))
        tx.set_bytes(self._KEY, held + entry + record, OUTBOX_PREFIX)

    def take(self, tx: Transaction) -> dict[int, list[bytes]]:
        """Every kept record by signals partition, in the order kept; the outbox is emptied."""
        held = tx.get_bytes(self._KEY, OUTBOX_PREFIX)
        if held is None:
            return {}
        tx.delete(self._KEY, OUTBOX_PREFIX)
        out: dict[int, list[bytes]] = {}
        view, at, size = memoryview(held), 1, self._ENTRY.size
        while at < len(held):
            partition, length = self._ENTRY.unpack_from(held, at)
            at += size
            out.setdefault(partition, []).append(bytes(view[at : at + length]))
            at += length
        return out


def public_scan(scan: Scan) -> dict[str, object]:
    """The wire form published on ``tracking.events``: phone numbers and names in the
    courier's text are masked (``event_id`` was computed from the original text)."""
    wire = scan_to_wire(scan)
    wire["description"] = mask_text(scan.description)
    return wire


class KafkaEffects:
    """``Effects``: anomalies, forwarded scans and signals as records, with their counters."""

    def __init__(
        self,
        send: Send,
        outputs: Outputs,
        metrics: Metrics,
        *,
        events_topic: str,
        signals_topic: str,
        origin: bytes,
        partitions: int,
    ) -> None:
        self.send = send
        self.outputs = outputs
        self.metrics = metrics
        self.events_topic = events_topic
        self.signals_topic = signals_topic
        self.origin_headers = {ORIGIN_HEADER: origin}
        #: The source name of the partition being processed (set by the stage per record).
        self.src = ""
        #: Forward new scans to ``tracking.events`` (not for scans read from it).
        self.forward = True
        #: The waybill partition's transaction (set by the stage per record): signals wait in
        #: its outbox. None: each signal is sent at once, as one record.
        self.tx: Transaction | None = None
        self.outbox = SignalOutbox(partitions)
        #: The received time (epoch s) of the input being applied (``begin_input``), and of
        #: the input whose own step runs now (None while deadlines fire before it).
        self._input_s: float | None = None
        self._pushed_s: float | None = None
        self._push_latency: dict[str, Any] = {}

    def begin_input(self, received_s: float | None) -> None:
        """The stage applies an input received at ``received_s`` next (None: a tick)."""
        self._input_s = received_s
        self._pushed_s = None

    def loaded(self) -> None:
        """The runner loaded a key's state: a fired deadline (``lifecycle("fired")`` follows
        at once) or the input's own step."""
        self._pushed_s = self._input_s

    def anomaly(self, event: AnomalyEvent) -> None:
        self.outputs.anomaly(event)
        pushed = self._pushed_s
        if pushed is not None and event.status == "open":
            child = self._push_latency.get(event.type)
            if child is None:
                child = self._push_latency[event.type] = self.metrics.push_to_anomaly.labels(
                    event.type
                )
            child.observe(max(0.0, time.time() - pushed))

    def scans(self, key: str, scans: list[Scan]) -> None:
        if not self.forward:
            return
        raw_key = key.encode()
        for scan in scans:
            self.send(
                self.events_topic, raw_key, jsonio.dumps(public_scan(scan)), self.origin_headers
            )

    def signal(self, signal: Signal, now: datetime) -> None:
        key, record = signal.key.encode(), codec.encode_signal(signal, now, self.src)
        if self.tx is not None:
            self.outbox.add(self.tx, key, record)
        else:
            self.send(self.signals_topic, key, record, None)

    def lifecycle(self, event: str) -> None:
        if event == "fired":
            self._pushed_s = None  # this key's step is the deadline's, not the input's
            self.metrics.deadlines_fired.inc()
        else:
            self.metrics.waybills_retired.labels(event).inc()


if TYPE_CHECKING:  # mypy checks each implementation against its port

    def _check(
        tx: Transaction,
        effects: KafkaEffects,
        dump: Callable[[Episodic], bytes],
        load: Callable[[bytes], Episodic],
    ) -> None:
        _kv: Kv = TransactionKv(tx, INDEX_PREFIX)
        _index: DeadlineIndex = BucketDeadlineIndex(_kv)
        _store: StateStore[bytes] = TransactionStore[bytes](tx, bytes, bytes)
        _counting: StateStore[Episodic] = CountingStore[Episodic](
            tx, dump, load, Tally(), 0, count_states=True
        )
        _effects: Effects = effects
