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
CHUNK = 128  # entries per chunk of a bucket


class BucketDeadlineIndex:
    """The deadline index on a key-value store with get/set only (the worker's RocksDB state,
    whose changelog makes deadlines survive restarts and partition moves).

    Layout: one-minute buckets of due times. A bucket is chunks of at most ``CHUNK`` entries
    (orjson ``[[key, due_ms], ...]``): the first ``b<bucket>``, the rest ``k<bucket>/<i>``
    with a header ``n<bucket>`` → the earliest due of each (null once a chunk is emptied);
    ``g<group>`` → sorted non-empty bucket numbers of one hour; ``top`` → sorted non-empty
    groups. Most buckets (a backlog spreads deadlines over many minutes) need only the first
    chunk: one value written per schedule, as with one list per bucket.

    Costs do not grow with a bucket: a live worker schedules every new waybill's deadline into
    the same minute (48 h from now), thousands a minute, and one list per bucket made each
    schedule read and rewrite all of them (and each checkpoint write them to the changelog).
    A schedule appends to the bucket's last chunk; ``pop_due_ms`` reads the first chunk and
    the others whose earliest due has passed (entries come roughly in due order, so one or two),
    and only non-empty buckets up to the limit, so a clock that jumps days ahead costs O(due),
    not O(minutes passed). Re-scheduling does not remove the old entry (lazy deletion: the
    runner checks each popped key against the key's stored due time).

    A bucket written before chunks (``b<bucket>`` → one list of any length) reads as a first
    chunk.
    """

    def __init__(self, kv: Kv) -> None:
        self.kv = kv

    def schedule_ms(self, key: str, ms: int | None) -> None:
        if ms is None:
            return
        bucket = ms // BUCKET_MS
        head_name = f"n{bucket}"
        raw_head = self.kv.get(head_name)
        entry = [key, ms]
        if raw_head is None:  # the bucket's first chunk, kept under its own name
            name = f"b{bucket}"
            raw = self.kv.get(name)
            first: list[list[Any]] = orjson.loads(raw) if raw else []
            if entry in first:
                return
            if len(first) < CHUNK:
                if raw is None:
                    group = bucket // GROUP_BUCKETS
                    self._add(f"g{group}", bucket, group=group)
                first.append(entry)
                self.kv.set(name, orjson.dumps(first))
                return
        heads: list[int | None] = orjson.loads(raw_head) if raw_head else []
        entries: list[list[Any]] = []
        if heads and heads[-1] is not None:
            raw = self.kv.get(f"k{bucket}/{len(heads) - 1}")
            entries = orjson.loads(raw) if raw else []
            if entry in entries:
                return
        earliest = heads[-1] if entries else None
        if not entries or len(entries) >= CHUNK:
            heads.append(ms)
            entries = []
        elif earliest is not None and ms < earliest:
            heads[-1] = ms
        entries.append(entry)
        self.kv.set(f"k{bucket}/{len(heads) - 1}", orjson.dumps(entries))
        if heads[-1] != earliest:  # a new chunk, or an earlier due: most appends change neither
            self.kv.set(head_name, orjson.dumps(heads))

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
                if bucket > last or self._pop_bucket(bucket, limit, due):
                    kept.append(bucket)
            if kept != buckets:
                self._store(f"g{group}", kept)
            if not kept:
                top.remove(group)
                self._store("top", top)
        due.sort()
        return [key for _, key in due]

    def _pop_bucket(self, bucket: int, limit: int, due: list[tuple[int, str]]) -> bool:
        """Move the entries of ``bucket`` due by ``limit`` to ``due``; True if any are left."""
        left_any = False
        raw = self.kv.get(f"b{bucket}")  # the first chunk
        if raw is not None:
            left_any = self._pop_list(f"b{bucket}", orjson.loads(raw), limit, due)
        head_name = f"n{bucket}"
        raw_head = self.kv.get(head_name)
        if raw_head is None:
            return left_any
        heads: list[int | None] = orjson.loads(raw_head)
        changed = False
        for i, earliest in enumerate(heads):
            if earliest is None or earliest > limit:
                continue
            name = f"k{bucket}/{i}"
            raw = self.kv.get(name)
            entries = orjson.loads(raw) if raw else []
            self._pop_list(name, entries, limit, due)
            left = [e[1] for e in entries if e[1] > limit]
            heads[i] = min(left) if left else None
            changed = True
        if all(h is None for h in heads):
            self.kv.delete(head_name)
            return left_any
        if changed:
            self.kv.set(head_name, orjson.dumps(heads))
        return True

    def _pop_list(
        self, name: str, entries: list[list[Any]], limit: int, due: list[tuple[int, str]]
    ) -> bool:
        """Pop the due entries of one stored list (rewritten or deleted); True if any left."""
        left = [e for e in entries if e[1] > limit]
        due.extend((e[1], e[0]) for e in entries if e[1] <= limit)
        if not left:
            self.kv.delete(name)
        elif len(left) != len(entries):
            self.kv.set(name, orjson.dumps(left))
        return bool(left)

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
