"""Deadline index: which keys (waybills, sites, couriers) are due, without scanning them all.

Deadlines ("48 h without a scan", "promise passed", "30 min of feed silence") live in our own
state, never in the engine's windows or timers (quix-streams has no timers, and windows close
only on newer records). Each engine call returns the key's ``next_due``; the runner records it
here and a clock advance asks ``pop_due_ms(now)`` for the keys to wake up: O(due), not
O(active keys). Both implementations satisfy ``runner.DeadlineIndex``.

``InMemoryDeadlineIndex`` (replay, tests) is a heap with lazy deletion: re-scheduling pushes a
new entry and records the key's current due; stale heap entries are skipped when popped, and the
heap is rebuilt when stale entries outnumber live ones. ``BucketDeadlineIndex`` (the worker)
keeps minute buckets on a key-value port (the partition's RocksDB transaction).
"""

from __future__ import annotations

import bisect
import heapq
from typing import Any, Protocol

import orjson


class InMemoryDeadlineIndex:
    """Heap + current-due map with lazy deletion."""

    def __init__(self) -> None:
        self._heap: list[tuple[int, str]] = []
        self._due: dict[str, int] = {}
        #: Heap entries looked at by ``pop_due`` (live or stale), for cost tests and metrics.
        self.examined = 0

    def __len__(self) -> int:
        return len(self._due)

    def due_of(self, key: str) -> int | None:
        """The key's due time in epoch ms, if scheduled."""
        return self._due.get(key)

    def schedule_ms(self, key: str, ms: int | None) -> None:
        """``schedule`` with the due time in epoch ms (what the engines compute)."""
        if ms is None:
            self._due.pop(key, None)
            return
        if self._due.get(key) == ms:
            return
        self._due[key] = ms
        heapq.heappush(self._heap, (ms, key))
        if len(self._heap) > 2 * len(self._due) + 1024:
            self._compact()

    def pop_due_ms(self, limit: int) -> list[str]:
        """``pop_due`` with ``now`` in epoch ms."""
        heap, current = self._heap, self._due
        out: list[str] = []
        while heap and heap[0][0] <= limit:
            ms, key = heapq.heappop(heap)
            self.examined += 1
            if current.get(key) == ms:
                del current[key]
                out.append(key)
        return out

    def next_due(self) -> int | None:
        """The earliest live due time in epoch ms (drops stale heap tops on the way)."""
        heap, current = self._heap, self._due
        while heap and current.get(heap[0][1]) != heap[0][0]:
            heapq.heappop(heap)
        return heap[0][0] if heap else None

    def _compact(self) -> None:
        self._heap = [(ms, key) for key, ms in self._due.items()]
        heapq.heapify(self._heap)


class Kv(Protocol):
    """A bytes key-value port (one partition of the worker's state store)."""

    def get(self, key: str) -> bytes | None: ...
    def set(self, key: str, value: bytes) -> None: ...
    def delete(self, key: str) -> None: ...


BUCKET_MS = 60_000
GROUP_BUCKETS = 60  # a directory entry per hour of buckets


class BucketDeadlineIndex:
    """The deadline index on a key-value store with get/set only (the worker's RocksDB state,
    whose changelog makes deadlines survive restarts and partition moves).

    Layout: ``b<bucket>`` → orjson ``[[key, due_ms], ...]`` for one minute of due times;
    ``g<group>`` → sorted non-empty bucket numbers of one hour; ``top`` → sorted non-empty
    groups. ``pop_due_ms`` reads only non-empty buckets up to the limit, so a clock that jumps
    days ahead costs O(due), not O(minutes passed). Re-scheduling does not remove the old entry
    (lazy deletion: the runner checks each popped key against the key's stored due time).
    """

    def __init__(self, kv: Kv) -> None:
        self.kv = kv

    def schedule_ms(self, key: str, ms: int | None) -> None:
        if ms is None:
            return
        bucket = ms // BUCKET_MS
        name = f"b{bucket}"
        raw = self.kv.get(name)
        entries: list[list[Any]] = orjson.loads(raw) if raw else []
        entry = [key, ms]
        if entry in entries:
            return
        entries.append(entry)
        self.kv.set(name, orjson.dumps(entries))
        if raw is None:
            self._add(f"g{bucket // GROUP_BUCKETS}", bucket, group=bucket // GROUP_BUCKETS)

    def pop_due_ms(self, limit: int) -> list[str]:
        top = self._list("top")
        if not top or top[0] * GROUP_BUCKETS * BUCKET_MS > limit:
            return []
        last = limit // BUCKET_MS
        due: list[tuple[int, str]] = []
        for group in [g for g in top if g <= last // GROUP_BUCKETS]:
            buckets = self._list(f"g{group}")
            kept = []
            for bucket in buckets:
                if bucket > last:
                    kept.append(bucket)
                    continue
                name = f"b{bucket}"
                raw = self.kv.get(name)
                entries = orjson.loads(raw) if raw else []
                left = [e for e in entries if e[1] > limit]
                due.extend((e[1], e[0]) for e in entries if e[1] <= limit)
                if left:
                    kept.append(bucket)
                    if len(left) != len(entries):
                        self.kv.set(name, orjson.dumps(left))
                else:
                    self.kv.delete(name)
            if kept != buckets:
                self._store(f"g{group}", kept)
            if not kept:
                top.remove(group)
                self._store("top", top)
        due.sort()
        return [key for _, key in due]

    def _list(self, name: str) -> list[int]:
        raw = self.kv.get(name)
        return orjson.loads(raw) if raw else []

    def _store(self, name: str, values: list[int]) -> None:
        if values:
            self.kv.set(name, orjson.dumps(values))
        else:
            self.kv.delete(name)

    def _add(self, name: str, value: int, *, group: int) -> None:
        values = self._list(name)
        if not values:
            top = self._list("top")
            bisect.insort(top, group)
            self._store("top", top)
        bisect.insort(values, value)
        self._store(name, values)
