"""Ports of the case service: where cases, their outgoing events and accounts live.

``CaseStore`` is written twice: ``InMemoryCaseStore`` here (unit tests of the service
layer, no database) and ``pg.PostgresCaseStore`` (the real one). mypy checks both against
the Protocols. A unit of work is one transaction: the cases it saves and the ``cases.events``
records they emit (the outbox) commit together or not at all.
"""

from __future__ import annotations

import base64
import contextlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal, Protocol

import orjson

from waybill_watch.cases.model import Case, CaseEvent, CasePage, CaseSummary
from waybill_watch.tokens import Role

#: Sort rank of cases without a pending step (after every dated one).
_NO_DUE = 1e12
_CLOSED = 2e12


@dataclass(frozen=True)
class CaseQuery:
    """Filters and page of ``GET /api/cases`` and the queue page."""

    status: Literal["open", "closed"] | None = None
    type: str | None = None
    courier: str | None = None
    merchant: str | None = None
    overdue: bool = False
    limit: int = 50
    cursor: str | None = None
    #: A merchant-scoped caller sees only this merchant's cases (set by auth, not the user).
    scope_merchant: str | None = None


@dataclass(frozen=True)
class OutboxItem:
    """One ``cases.events`` record waiting to be published."""

    id: int
    key: str
    value: bytes


@dataclass(frozen=True)
class Account:
    """A person who signs in to the case pages."""

    username: str
    password_hash: str
    role: Role
    merchant: str | None = None


@dataclass(frozen=True)
class ReviewRow:
    """Counts of one group (courier, lane, site or type) in a review period."""

    dimension: str
    key: str
    cases: int
    open: int
    closed: int
    share: float
    mean_hours_to_close: float | None
    steps_finished: int
    steps_on_time: int

    @property
    def on_time_share(self) -> float | None:
        """Share of finished steps done or skipped by their due time."""
        return self.steps_on_time / self.steps_finished if self.steps_finished else None


@dataclass(frozen=True)
class Review:
    """``GET /api/review``: the period and its groups."""

    since: datetime
    until: datetime
    total: int
    rows: list[ReviewRow] = field(default_factory=list)


def sort_rank(case: Case) -> float:
    """Queue order: open cases by next due step (undated after), then closed ones, latest
    closed first."""
    if case.status == "closed":
        closed = case.closed_at or case.updated_at
        return _CLOSED - closed.timestamp()
    due = case.next_due_at()
    return due.timestamp() if due else _NO_DUE


def encode_cursor(rank: float, case_id: str) -> str:
    """Opaque keyset cursor: the last row's sort key."""
    return base64.urlsafe_b64encode(orjson.dumps([rank, case_id])).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[float, str]:
    """The sort key in a cursor; ``ValueError`` for one we did not write."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        rank, case_id = orjson.loads(raw)
        return float(rank), str(case_id)
    except Exception as exc:
        raise ValueError("invalid cursor") from exc


def summary(case: Case, now: datetime) -> CaseSummary:
    """The queue's view of a case."""
    pending = case.pending_steps()
    return CaseSummary(
        case_id=case.case_id,
        scope=case.scope,
        subject=case.subject,
        waybill=case.waybill,
        merchant=case.merchant,
        courier=case.courier,
        site=case.site,
        type=case.type,
        types=sorted({a.type for a in case.anomalies}),
        severity=case.severity,
        status=case.status,
        outcome=case.outcome,
        opened_at=case.opened_at,
        closed_at=case.closed_at,
        next_due_at=pending[0].due_at if pending else None,
        next_step=pending[0].step if pending else None,
        overdue=case.overdue(now),
    )


class CaseUnitOfWork(Protocol):
    """One transaction over cases and the outbox."""

    async def get(self, case_id: str) -> Case | None:
        """The case, locked against concurrent changes until the unit ends."""

    async def save(self, case: Case, events: Sequence[CaseEvent]) -> None:
        """Store the case and queue its events for ``cases.events``."""

    async def due(self, now: datetime, limit: int) -> list[Case]:
        """Open cases whose timers are due, locked; others' locked rows are skipped."""


class CaseStore(Protocol):
    """Cases, the outbox and accounts."""

    def unit_of_work(self) -> contextlib.AbstractAsyncContextManager[CaseUnitOfWork]:
        """A transaction: commits when the block ends normally, rolls back on an error."""

    async def find(self, case_id: str) -> Case | None:
        """Read a case without locking it."""

    async def list_cases(self, query: CaseQuery, now: datetime) -> CasePage:
        """One page of cases in queue order."""

    async def review(self, since: datetime, until: datetime, scope_merchant: str | None) -> Review:
        """Cases opened in ``[since, until)`` grouped by courier, lane, site and type."""

    async def outbox(self, limit: int) -> list[OutboxItem]:
        """The oldest unpublished events."""

    async def published(self, ids: Sequence[int]) -> None:
        """Forget events Kafka has acknowledged."""

    async def counts(self, now: datetime) -> dict[str, dict[str, int]]:
        """Gauges: open cases by type (``open``), overdue steps by type (``overdue``)."""

    async def account(self, username: str) -> Account | None:
        """A sign-in account."""

    async def put_account(self, account: Account) -> None:
        """Create or replace an account."""

    async def ping(self) -> None:
        """Raise when the store cannot be reached (readiness)."""

    def relay_lease(self) -> contextlib.AbstractAsyncContextManager[bool]:
        """Whether this process is the one that publishes the outbox (held while inside)."""


# -- in memory ---------------------------------------------------------------------------


class _MemoryUnit:
    def __init__(self, store: InMemoryCaseStore) -> None:
        self._store = store
        self.cases: dict[str, Case] = {}
        self.events: list[CaseEvent] = []

    async def get(self, case_id: str) -> Case | None:
        if case_id in self.cases:
            return self.cases[case_id]
        return self._store.cases.get(case_id)

    async def save(self, case: Case, events: Sequence[CaseEvent]) -> None:
        self.cases[case.case_id] = case
        self.events.extend(events)

    async def due(self, now: datetime, limit: int) -> list[Case]:
        found = [
            c
            for c in self._store.cases.values()
            if c.status == "open" and (t := c.next_timer_at()) is not None and t <= now
        ]
        return sorted(found, key=lambda c: (c.next_timer_at(), c.case_id))[:limit]


class InMemoryCaseStore:
    """The store as dicts: for unit tests and tools; not durable."""

    def __init__(self) -> None:
        self.cases: dict[str, Case] = {}
        self.accounts: dict[str, Account] = {}
        self.pending: list[OutboxItem] = []
        self._next_id = 1
        #: Set to make the next commit fail (tests of rollback).
        self.fail_next_commit: Exception | None = None

    @contextlib.asynccontextmanager
    async def unit_of_work(self) -> AsyncIterator[_MemoryUnit]:
        unit = _MemoryUnit(self)
        yield unit
        if self.fail_next_commit is not None:
            error, self.fail_next_commit = self.fail_next_commit, None
            raise error
        self.cases.update(unit.cases)
        for event in unit.events:
            self.pending.append(
                OutboxItem(self._next_id, event.case_id, event.model_dump_json().encode())
            )
            self._next_id += 1

    async def find(self, case_id: str) -> Case | None:
        return self.cases.get(case_id)

    async def list_cases(self, query: CaseQuery, now: datetime) -> CasePage:
        rows = [c for c in self.cases.values() if _matches(c, query, now)]
        rows.sort(key=lambda c: (sort_rank(c), c.case_id))
        if query.cursor:
            after = decode_cursor(query.cursor)
            rows = [c for c in rows if (sort_rank(c), c.case_id) > after]
        page = rows[: query.limit]
        more = len(rows) > query.limit
        cursor = encode_cursor(sort_rank(page[-1]), page[-1].case_id) if more and page else None
        return CasePage(items=[summary(c, now) for c in page], next_cursor=cursor)

    async def review(self, since: datetime, until: datetime, scope_merchant: str | None) -> Review:
        from waybill_watch.cases.review import review_of

        cases = [
            c
            for c in self.cases.values()
            if since <= c.opened_at < until
            and (scope_merchant is None or c.merchant == scope_merchant)
        ]
        return review_of(cases, since, until)

    async def outbox(self, limit: int) -> list[OutboxItem]:
        return self.pending[:limit]

    async def published(self, ids: Sequence[int]) -> None:
        done = set(ids)
        self.pending = [i for i in self.pending if i.id not in done]

    async def counts(self, now: datetime) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {"open": {}, "overdue": {}}
        for case in self.cases.values():
            if case.status != "open":
                continue
            out["open"][case.type] = out["open"].get(case.type, 0) + 1
            late = sum(1 for s in case.steps if s.overdue(now))
            if late:
                out["overdue"][case.type] = out["overdue"].get(case.type, 0) + late
        return out

    async def account(self, username: str) -> Account | None:
        return self.accounts.get(username)

    async def put_account(self, account: Account) -> None:
        self.accounts[account.username] = account

    async def ping(self) -> None:
        return None

    @contextlib.asynccontextmanager
    async def relay_lease(self) -> AsyncIterator[bool]:
        yield True


def _matches(case: Case, query: CaseQuery, now: datetime) -> bool:
    merchant = query.scope_merchant or query.merchant
    if query.scope_merchant and query.merchant and query.merchant != query.scope_merchant:
        return False
    return (
        (query.status is None or case.status == query.status)
        and (query.type is None or any(a.type == query.type for a in case.anomalies))
        and (query.courier is None or case.courier == query.courier)
        and (merchant is None or case.merchant == merchant)
        and (not query.overdue or case.overdue(now))
    )
