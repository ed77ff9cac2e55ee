"""Port of the notifier: the outbox of messages, written by the consumer, worked by the
senders. ``InMemoryNotifyStore`` here (unit tests of the loops), ``pg.PostgresNotifyStore``
the real one; mypy checks both against ``NotifyStore``.

Rules both keep:
* ``enqueue`` inserts one row per (channel, dedupe key) and ignores the rest: a redelivered
  record, or a restart that reads it again, queues nothing.
* ``claim`` takes due messages of one channel (``next_attempt_at <= now``), counts the try
  and leases them (``next_attempt_at = now + lease``) in one short transaction; the send
  happens outside it. A process that dies mid-send leaves the lease to expire, and the
  message goes again with the same delivery id. A digest's rows are claimed together under
  one delivery id, fixed at its first claim so every retry sends the same digest.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from waybill_watch.notify.model import Notice, Queued
from waybill_watch.notify.rules import Language

#: At most this many events in one digest message (a bigger window sends several).
DIGEST_MAX = 200


def delivery_id(channel: str, key: str) -> str:
    """Deterministic delivery id of one message (or digest) to one channel."""
    return "d" + hashlib.sha256(f"{channel}|{key}".encode()).hexdigest()[:31]


@dataclass(frozen=True)
class Row:
    """One event's message in a claimed delivery."""

    id: int
    notice: Notice
    event_at: datetime


@dataclass(frozen=True)
class Delivery:
    """What one send carries: one message or a digest, with the try it is on."""

    channel: str
    delivery_id: str
    language: Language
    timezone: str
    attempts: int
    rows: list[Row]

    @property
    def notices(self) -> list[Notice]:
        """The notices, oldest first."""
        return [r.notice for r in sorted(self.rows, key=lambda r: r.id)]


class NotifyStore(Protocol):
    """The outbox."""

    async def enqueue(self, messages: Sequence[Queued]) -> list[str]:
        """Insert new messages in one transaction; the channels of those that were new."""
        ...

    async def claim(
        self, channel: str, now: datetime, limit: int, lease: timedelta
    ) -> list[Delivery]:
        """Up to ``limit`` due deliveries of ``channel``, leased until ``now + lease``."""
        ...

    async def delivered(self, channel: str, delivery: str, now: datetime) -> None:
        """The channel acknowledged ``delivery``."""
        ...

    async def retry_at(self, channel: str, delivery: str, at: datetime, error: str) -> None:
        """Try ``delivery`` again at ``at``."""
        ...

    async def dead(self, channel: str, delivery: str, now: datetime, error: str) -> None:
        """``delivery`` went to the DLQ."""
        ...

    async def release(self, channel: str, delivery: str, at: datetime) -> None:
        """Give back a claimed delivery that was not tried (due at ``at``, try uncounted)."""
        ...

    async def next_due(self, channel: str) -> datetime | None:
        """When the channel's next pending message is due, if it has one."""
        ...

    async def depth(self) -> dict[str, int]:
        """Pending messages per channel."""
        ...

    async def purge(self, before: datetime) -> int:
        """Delete delivered and dead messages finished before ``before``."""
        ...

    async def ping(self) -> None:
        """Raise if the store cannot be reached."""
        ...


@dataclass
class _Stored:
    id: int
    queued: Queued
    batch: str | None
    next_attempt_at: datetime
    attempts: int = 0
    state: str = "pending"
    error: str | None = None
    finished_at: datetime | None = None


@dataclass
class InMemoryNotifyStore:
    """The outbox in a dict (one process, no persistence)."""

    rows: dict[tuple[str, str], _Stored] = field(default_factory=dict)
    _next: int = 0

    async def enqueue(self, messages: Sequence[Queued]) -> list[str]:
        new = []
        for m in messages:
            key = (m.channel, m.notice.dedupe_key)
            if key in self.rows:
                continue
            self._next += 1
            batch = None if m.digest_key else delivery_id(m.channel, m.notice.dedupe_key)
            self.rows[key] = _Stored(self._next, m, batch, m.send_after)
            new.append(m.channel)
        return new

    def _pending(self, channel: str) -> list[_Stored]:
        return sorted(
            (r for r in self.rows.values() if r.queued.channel == channel and r.state == "pending"),
            key=lambda r: (r.next_attempt_at, r.id),
        )

    async def claim(
        self, channel: str, now: datetime, limit: int, lease: timedelta
    ) -> list[Delivery]:
        pending = self._pending(channel)
        leaders = [r for r in pending if r.next_attempt_at <= now][:limit]
        batches: list[str] = []
        for leader in leaders:
            if leader.batch is None and leader.queued.digest_key is not None:
                bid = delivery_id(channel, f"{leader.queued.digest_key}|{leader.id}")
                same = [
                    r
                    for r in sorted(pending, key=lambda r: r.id)
                    if r.batch is None and r.queued.digest_key == leader.queued.digest_key
                ]
                for r in same[:DIGEST_MAX]:
                    r.batch = bid
            if leader.batch is not None and leader.batch not in batches:
                batches.append(leader.batch)
        out = []
        for bid in batches:
            rows = [r for r in pending if r.batch == bid and r.next_attempt_at <= now]
            if not rows:
                continue
            for r in rows:
                r.attempts += 1
                r.next_attempt_at = now + lease
            first = rows[0].queued
            out.append(
                Delivery(
                    channel=channel,
                    delivery_id=bid,
                    language=first.language,
                    timezone=first.timezone,
                    attempts=rows[0].attempts,
                    rows=[Row(r.id, r.queued.notice, r.queued.notice.at) for r in rows],
                )
            )
        return out

    def _batch(self, channel: str, delivery: str) -> list[_Stored]:
        return [r for r in self._pending(channel) if r.batch == delivery]

    async def delivered(self, channel: str, delivery: str, now: datetime) -> None:
        for r in self._batch(channel, delivery):
            r.state, r.finished_at, r.error = "delivered", now, None

    async def retry_at(self, channel: str, delivery: str, at: datetime, error: str) -> None:
        for r in self._batch(channel, delivery):
            r.next_attempt_at, r.error = at, error

    async def dead(self, channel: str, delivery: str, now: datetime, error: str) -> None:
        for r in self._batch(channel, delivery):
            r.state, r.finished_at, r.error = "dead", now, error

    async def release(self, channel: str, delivery: str, at: datetime) -> None:
        for r in self._batch(channel, delivery):
            r.next_attempt_at, r.attempts = at, max(0, r.attempts - 1)

    async def next_due(self, channel: str) -> datetime | None:
        pending = self._pending(channel)
        return pending[0].next_attempt_at if pending else None

    async def depth(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for r in self.rows.values():
            if r.state == "pending":
                out[r.queued.channel] = out.get(r.queued.channel, 0) + 1
        return out

    async def purge(self, before: datetime) -> int:
        old = [
            k
            for k, r in self.rows.items()
            if r.state != "pending" and r.finished_at is not None and r.finished_at < before
        ]
        for k in old:
            del self.rows[k]
        return len(old)

    async def ping(self) -> None:
        return None
