"""A deadline index stored in a Faust table, so deadlines survive restarts and partition moves.

Layout per partition ``p`` (keys carry the partition because the memory store shares one dict
for every partition, and because a RocksDB read inside a stream only sees the current
partition): ``p:b:<bucket>`` → JSON list of keys due in that bucket, ``p:cursor`` → the last
bucket fully processed. A tick reads only the buckets between the cursor and now, so it costs
O(due), not O(active waybills). Re-scheduling does not rewrite the old bucket: the caller
checks each popped key against the key's current due time (lazy deletion).
"""

from __future__ import annotations

import math
from collections.abc import MutableMapping
from datetime import datetime

from waybill_watch import jsonio

BUCKET_SECONDS = 10


def bucket_of(due: datetime) -> int:
    """The bucket a due time belongs to."""
    return math.floor(due.timestamp() / BUCKET_SECONDS)


class TableDeadlineIndex:
    """Deadlines of one partition's keys inside a mutable mapping (a Faust table).

    A bucket holds ``[key, due_epoch]`` pairs; ``pop_due(now)`` returns exactly the entries with
    ``due <= now`` (the current, partly elapsed bucket keeps its later entries), so deadlines
    fire on the first message or tick whose clock passes them, as in ``replay``.
    """

    def __init__(self, table: MutableMapping[bytes, bytes], partition: int) -> None:
        self.table = table
        self.prefix = f"{partition}:".encode()
        self._cursor_key = self.prefix + b"cursor"

    def cursor(self) -> int | None:
        """The last bucket known to be empty of unfired deadlines."""
        raw = self.table.get(self._cursor_key)
        return int(raw) if raw is not None else None

    def schedule(self, key: str, due: datetime, now: datetime) -> None:
        """Record that ``key`` is due at ``due`` (a due time in the past fires next)."""
        cursor = self._ensure_cursor(now)
        bucket = max(bucket_of(due), cursor + 1)
        bucket_key = self._bucket_key(bucket)
        raw = self.table.get(bucket_key)
        entries: list[list[object]] = jsonio.loads(raw) if raw else []
        entry: list[object] = [key, due.timestamp()]
        if entry not in entries:
            entries.append(entry)
            self.table[bucket_key] = jsonio.dumps(entries)

    def pop_due(self, now: datetime) -> list[tuple[str, float]]:
        """``(key, due_epoch)`` of every entry due by ``now``, in due order, removed."""
        due = self.due(now)
        self.remove(due, now)
        return due

    def due(self, now: datetime) -> list[tuple[str, float]]:
        """``(key, due_epoch)`` of every entry due by ``now``, in due order (read only).

        Callers that emit output for these entries call ``remove`` only afterwards, so the
        table (and its changelog) never says "fired" for output that was not sent.
        """
        cursor = self._ensure_cursor(now)
        limit = now.timestamp()
        due: list[tuple[str, float]] = []
        for bucket in range(cursor + 1, bucket_of(now) + 1):
            raw = self.table.get(self._bucket_key(bucket))
            if raw:
                due.extend((str(k), float(d)) for k, d in jsonio.loads(raw) if d <= limit)
        due.sort(key=lambda item: (item[1], item[0]))
        return due

    def remove(self, handled: list[tuple[str, float]], now: datetime) -> None:
        """Drop exactly the ``handled`` entries and move the cursor past emptied buckets.

        Entries scheduled while the handled ones were processed stay, even when already due
        (they fire on the next clock advance).
        """
        cursor = self._ensure_cursor(now)
        current = bucket_of(now)
        if current <= cursor:
            return
        done = {(key, due) for key, due in handled}
        new_cursor = current - 1
        for bucket in range(cursor + 1, current + 1):
            bucket_key = self._bucket_key(bucket)
            raw = self.table.get(bucket_key)
            if not raw:
                continue
            entries = jsonio.loads(raw)
            left = [[k, d] for k, d in entries if (str(k), float(d)) not in done]
            if left and bucket < current:
                new_cursor = min(new_cursor, bucket - 1)
            if len(left) == len(entries):
                continue
            if left:
                self.table[bucket_key] = jsonio.dumps(left)
            else:
                del self.table[bucket_key]
        if new_cursor > cursor:
            self.table[self._cursor_key] = str(new_cursor).encode()

    def _ensure_cursor(self, now: datetime) -> int:
        cursor = self.cursor()
        if cursor is None:
            cursor = bucket_of(now) - 1
            self.table[self._cursor_key] = str(cursor).encode()
        return cursor

    def _bucket_key(self, bucket: int) -> bytes:
        return self.prefix + b"b:" + str(bucket).encode()
