"""Shared machinery of keyed processors: per-partition clocks and the state+deadline record.

A table value is ``8-byte big-endian due epoch (NaN = none) + state bytes``; the due time is
kept beside the state so a popped deadline can be checked against the key's current one
(lazy deletion in the deadline index).
"""

from __future__ import annotations

import math
import struct
from collections.abc import MutableMapping
from datetime import datetime

from waybill_watch.timefmt import from_epoch, local_now
from waybill_watch.worker.deadline_table import TableDeadlineIndex

_DUE = struct.Struct(">d")


def pack(due: datetime | None, state: bytes) -> bytes:
    """Table value for a state and its next deadline."""
    return _DUE.pack(due.timestamp() if due is not None else math.nan) + state


def unpack(value: bytes) -> tuple[float | None, bytes]:
    """``(due_epoch | None, state bytes)``."""
    (due,) = _DUE.unpack_from(value)
    return (None if math.isnan(due) else due), value[_DUE.size :]


class PartitionClock:
    """The detection clock of each partition.

    ``wall``: the wall clock. ``stream``: the largest ``received_at`` (or stream tick) seen on
    the partition, stored in the table so it survives restarts; it never goes backwards.
    """

    def __init__(self, mode: str, table: MutableMapping[bytes, bytes], timezone: str) -> None:
        self.mode = mode
        self.table = table
        self.timezone = timezone

    def now(self, partition: int, observed: datetime | None) -> datetime:
        """Advance with ``observed`` (stream mode) and return the partition's clock."""
        if self.mode == "wall":
            return local_now(self.timezone)
        key = f"{partition}:clock".encode()
        raw = self.table.get(key)
        current = float(raw) if raw is not None else None
        if observed is not None and (current is None or observed.timestamp() > current):
            self.table[key] = repr(observed.timestamp()).encode()
            return observed
        if current is None:
            return local_now(self.timezone) if observed is None else observed
        return from_epoch(current, self.timezone)


def index_for(table: MutableMapping[bytes, bytes], partition: int) -> TableDeadlineIndex:
    """The deadline index of one partition."""
    return TableDeadlineIndex(table, partition)


class KeyedStore:
    """State records of one keyed processor plus their table-backed deadline index."""

    def __init__(
        self,
        states: MutableMapping[bytes, bytes],
        deadlines: MutableMapping[bytes, bytes],
        clock: PartitionClock,
    ) -> None:
        self.states = states
        self.deadlines = deadlines
        self.clock = clock

    def load(self, key: str) -> bytes | None:
        """The stored state bytes of ``key``."""
        raw = self.states.get(key.encode())
        return unpack(raw)[1] if raw is not None else None

    def save(
        self, key: str, state: bytes, next_due: datetime | None, now: datetime, partition: int
    ) -> None:
        """Store a state and (re)schedule its next deadline."""
        self.states[key.encode()] = pack(next_due, state)
        if next_due is not None:
            index_for(self.deadlines, partition).schedule(key, next_due, now)

    def forget(self, key: str) -> None:
        """Delete a key's state (its index entries are stale from now on)."""
        raw_key = key.encode()
        if raw_key in self.states:
            del self.states[raw_key]  # a Faust table sends the changelog tombstone

    def due(
        self, partition: int, now: datetime
    ) -> tuple[list[tuple[str, float]], list[tuple[str, bytes]]]:
        """``(index entries due, [(key, state bytes)])`` whose current deadline has passed.

        Index entries that no longer match the key's stored due time are stale (the key was
        re-scheduled since) and are skipped: that is the index's lazy deletion. Read only:
        call ``done(partition, entries, now)`` after the fired keys' output was sent and their
        states saved.
        """
        entries = index_for(self.deadlines, partition).due(now)
        ready: list[tuple[str, bytes]] = []
        for key, due_epoch in entries:
            raw = self.states.get(key.encode())
            if raw is None:
                continue
            current_due, state = unpack(raw)
            if current_due is not None and current_due == due_epoch:
                ready.append((key, state))
        return entries, ready

    def done(self, partition: int, entries: list[tuple[str, float]], now: datetime) -> None:
        """Remove the handled index ``entries`` (see ``due``)."""
        index_for(self.deadlines, partition).remove(entries, now)
