"""The case store on PostgreSQL (psycopg 3, a connection pool).

A unit of work is one transaction: ``get`` locks the case row (``SELECT … FOR UPDATE``), so
the consumer, the timers and people's actions on one case queue behind each other; the
timers take their cases with ``SKIP LOCKED`` and never wait on a person. Saved events go
into ``outbox`` in the same transaction; ``relay`` publishes them.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from typing import Any

import orjson
from psycopg import AsyncConnection
from psycopg.rows import tuple_row
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from waybill_watch.cases.model import Case, CaseEvent, CasePage, CaseSummary
from waybill_watch.cases.review import DIMENSIONS, UNKNOWN
from waybill_watch.cases.store import (
    Account,
    CaseQuery,
    OutboxItem,
    Review,
    ReviewRow,
    decode_cursor,
    encode_cursor,
    sort_rank,
)

#: The advisory lock whose holder publishes the outbox (one case service at a time).
_RELAY_LOCK = 0x77627763

_COLUMNS = (
    "case_id, scope, subject, waybill, merchant, courier, site, origin_city, destination_city,"
    " type, types, status, outcome, opened_at, closed_at, updated_at, next_due_at,"
    " next_timer_at, rank, steps_finished, steps_on_time, doc, severity, next_step, pending_due"
)
#: What a queue row (``CaseSummary``) is built from: columns only, no document.
_SUMMARY = (
    "case_id, scope, subject, waybill, merchant, courier, site, type, types, severity, status,"
    " outcome, opened_at, closed_at, next_due_at, next_step, rank"
)
# Built from constants only (no input reaches these strings): noqa S608 below.
_UPSERT = (
    f"INSERT INTO cases ({_COLUMNS}) VALUES ({', '.join(['%s'] * 25)})"  # noqa: S608
    " ON CONFLICT (case_id) DO UPDATE SET "
    + ", ".join(f"{c.strip()} = EXCLUDED.{c.strip()}" for c in _COLUMNS.split(",")[1:])
)


def _loads_case(doc: Any) -> Case:
    if isinstance(doc, bytes | str):
        doc = orjson.loads(doc)
    return Case.model_validate(doc)


def _row(case: Case) -> tuple[Any, ...]:
    finished = [s for s in case.steps if s.state in ("done", "skipped")]
    pending = case.pending_steps()
    return (
        case.case_id,
        case.scope,
        case.subject,
        case.waybill,
        case.merchant,
        case.courier,
        case.site,
        case.origin_city,
        case.destination_city,
        case.type,
        sorted({a.type for a in case.anomalies}),
        case.status,
        case.outcome,
        case.opened_at,
        case.closed_at,
        case.updated_at,
        case.next_due_at(),
        case.next_timer_at(),
        sort_rank(case),
        len(finished),
        sum(1 for s in finished if s.on_time),
        Jsonb(case.model_dump(mode="json")),
        case.severity,
        pending[0].step if pending else None,
        [step.due_at for step in pending],
    )


def _summary(row: tuple[Any, ...], now: datetime) -> CaseSummary:
    """A queue row from the summary columns (the same fields ``store.summary`` takes from a
    document)."""
    (
        case_id,
        scope,
        subject,
        waybill,
        merchant,
        courier,
        site,
        type_,
        types,
        severity,
        status,
        outcome,
        opened_at,
        closed_at,
        next_due_at,
        next_step,
        _rank,
    ) = row
    return CaseSummary(
        case_id=case_id,
        scope=scope,
        subject=subject,
        waybill=waybill,
        merchant=merchant,
        courier=courier,
        site=site,
        type=type_,
        types=list(types),
        severity=severity,
        status=status,
        outcome=outcome,
        opened_at=opened_at,
        closed_at=closed_at,
        next_due_at=next_due_at,
        next_step=next_step,
        overdue=status == "open" and next_due_at is not None and next_due_at <= now,
    )


class _PgUnit:
    def __init__(self, conn: AsyncConnection[Any]) -> None:
        self._conn = conn

    async def get(self, case_id: str) -> Case | None:
        cursor = await self._conn.execute(
            "SELECT doc FROM cases WHERE case_id = %s FOR UPDATE", (case_id,)
        )
        row = await cursor.fetchone()
        return _loads_case(row[0]) if row else None

    async def save(self, case: Case, events: Sequence[CaseEvent]) -> None:
        await self._conn.execute(_UPSERT, _row(case))
        if events:
            async with self._conn.cursor() as cursor:
                await cursor.executemany(
                    "INSERT INTO outbox (case_id, value) VALUES (%s, %s)",
                    [(e.case_id, e.model_dump_json().encode()) for e in events],
                )

    async def due(self, now: datetime, limit: int) -> list[Case]:
        cursor = await self._conn.execute(
            "SELECT doc FROM cases WHERE status = 'open' AND next_timer_at <= %s"
            " ORDER BY next_timer_at, case_id LIMIT %s FOR UPDATE SKIP LOCKED",
            (now, limit),
        )
        return [_loads_case(row[0]) for row in await cursor.fetchall()]


class PostgresCaseStore:
    """``CaseStore`` on a PostgreSQL database (migrated by ``migrate.migrate``)."""

    def __init__(self, url: str, *, min_size: int = 1, max_size: int = 8) -> None:
        self.url = url
        self.pool: AsyncConnectionPool[AsyncConnection[Any]] = AsyncConnectionPool(
            url, min_size=min_size, max_size=max_size, open=False, kwargs={"autocommit": False}
        )

    async def open(self) -> None:
        """Open the pool (waits for the first connection)."""
        await self.pool.open(wait=True, timeout=30)

    async def close(self) -> None:
        """Close every connection."""
        await self.pool.close()

    @contextlib.asynccontextmanager
    async def unit_of_work(self) -> AsyncIterator[_PgUnit]:
        async with self.pool.connection() as conn, conn.transaction():
            yield _PgUnit(conn)

    async def find(self, case_id: str) -> Case | None:
        async with self.pool.connection() as conn:
            cursor = await conn.execute("SELECT doc FROM cases WHERE case_id = %s", (case_id,))
            row = await cursor.fetchone()
        return _loads_case(row[0]) if row else None

    async def list_cases(self, query: CaseQuery, now: datetime) -> CasePage:
        where: list[str] = []
        params: list[Any] = []
        merchant = query.scope_merchant or query.merchant
        if query.scope_merchant and query.merchant and query.merchant != query.scope_merchant:
            return CasePage(items=[], next_cursor=None)
        if query.status:
            where.append("status = %s")
            params.append(query.status)
        if query.type:
            where.append("types @> ARRAY[%s]::text[]")
            params.append(query.type)
        if query.courier:
            where.append("courier = %s")
            params.append(query.courier)
        if merchant:
            where.append("merchant = %s")
            params.append(merchant)
        if query.overdue:
            where.append("status = 'open' AND next_due_at <= %s")
            params.append(now)
        if query.cursor:
            rank, case_id = decode_cursor(query.cursor)
            where.append("(rank, case_id) > (%s, %s)")
            params.extend([rank, case_id])
        sql = f"SELECT {_SUMMARY} FROM cases"  # noqa: S608 - constants only
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY rank, case_id LIMIT %s"
        params.append(query.limit + 1)
        async with self.pool.connection() as conn:
            cursor = await conn.execute(sql.encode(), params)
            rows = await cursor.fetchall()
        page = rows[: query.limit]
        cursor_out = None
        if len(rows) > query.limit and page:
            cursor_out = encode_cursor(float(page[-1][-1]), str(page[-1][0]))
        return CasePage(items=[_summary(r, now) for r in page], next_cursor=cursor_out)

    async def review(self, since: datetime, until: datetime, scope_merchant: str | None) -> Review:
        groups = {
            "courier": "coalesce(courier, %(unknown)s)",
            "lane": "coalesce(origin_city, %(unknown)s) || ' → ' || coalesce(destination_city,"
            " %(unknown)s)",
            "site": "coalesce(site, %(unknown)s)",
            "type": "type",
        }
        scope = " AND merchant = %(merchant)s" if scope_merchant else ""
        selects = " UNION ALL ".join(
            f"SELECT '{name}' AS dimension, {expr} AS key, count(*) AS cases,"  # noqa: S608
            " count(*) FILTER (WHERE status = 'closed') AS closed,"
            " avg(extract(epoch FROM closed_at - opened_at) / 3600)"
            "   FILTER (WHERE status = 'closed') AS hours,"
            " sum(steps_finished) AS finished, sum(steps_on_time) AS on_time"
            f" FROM period GROUP BY {expr}"
            for name, expr in groups.items()
        )
        sql = (
            "WITH period AS (SELECT * FROM cases WHERE opened_at >= %(since)s"  # noqa: S608
            f" AND opened_at < %(until)s{scope}) {selects}"
        )
        params = {"since": since, "until": until, "unknown": UNKNOWN, "merchant": scope_merchant}
        async with self.pool.connection() as conn:
            cursor = conn.cursor(row_factory=tuple_row)
            await cursor.execute(sql.encode(), params)
            rows = await cursor.fetchall()
        total = sum(int(r[2]) for r in rows if r[0] == "type")
        out = [
            ReviewRow(
                dimension=str(r[0]),
                key=str(r[1]),
                cases=int(r[2]),
                open=int(r[2]) - int(r[3]),
                closed=int(r[3]),
                share=int(r[2]) / total if total else 0.0,
                mean_hours_to_close=float(r[4]) if r[4] is not None else None,
                steps_finished=int(r[5] or 0),
                steps_on_time=int(r[6] or 0),
            )
            for r in rows
        ]
        out.sort(key=lambda r: (DIMENSIONS.index(r.dimension), -r.cases, r.key))
        return Review(since=since, until=until, total=total, rows=out)

    async def outbox(self, limit: int) -> list[OutboxItem]:
        async with self.pool.connection() as conn:
            cursor = await conn.execute(
                "SELECT id, case_id, value FROM outbox ORDER BY id LIMIT %s", (limit,)
            )
            rows = await cursor.fetchall()
        return [OutboxItem(int(r[0]), str(r[1]), bytes(r[2])) for r in rows]

    async def published(self, ids: Sequence[int]) -> None:
        async with self.pool.connection() as conn:
            await conn.execute("DELETE FROM outbox WHERE id = ANY(%s)", (list(ids),))

    async def counts(self, now: datetime) -> dict[str, dict[str, int]]:
        async with self.pool.connection() as conn:
            cursor = await conn.execute(
                "SELECT type, count(*) FROM cases WHERE status = 'open' GROUP BY type"
            )
            opened = {str(t): int(n) for t, n in await cursor.fetchall()}
            cursor = await conn.execute(
                "SELECT type, sum((SELECT count(*) FROM unnest(pending_due) AS d WHERE d <= %s))"
                " FROM cases WHERE status = 'open' AND next_due_at <= %s GROUP BY type",
                (now, now),
            )
            overdue = {str(t): int(n) for t, n in await cursor.fetchall()}
        return {"open": opened, "overdue": overdue}

    async def account(self, username: str) -> Account | None:
        async with self.pool.connection() as conn:
            cursor = await conn.execute(
                "SELECT username, password_hash, role, merchant FROM accounts WHERE username = %s",
                (username,),
            )
            row = await cursor.fetchone()
        return Account(row[0], row[1], row[2], row[3]) if row else None

    async def put_account(self, account: Account) -> None:
        async with self.pool.connection() as conn:
            await conn.execute(
                "INSERT INTO accounts (username, password_hash, role, merchant)"
                " VALUES (%s, %s, %s, %s) ON CONFLICT (username) DO UPDATE SET"
                " password_hash = EXCLUDED.password_hash, role = EXCLUDED.role,"
                " merchant = EXCLUDED.merchant",
                (account.username, account.password_hash, account.role, account.merchant),
            )

    @contextlib.asynccontextmanager
    async def relay_lease(self) -> AsyncIterator[bool]:
        """A session advisory lock on a connection of its own (outside the pool, so no
        transaction stays open while it is held)."""
        async with await AsyncConnection.connect(self.url, autocommit=True) as conn:
            cursor = await conn.execute("SELECT pg_try_advisory_lock(%s)", (_RELAY_LOCK,))
            row = await cursor.fetchone()
            yield bool(row and row[0])

    async def ping(self) -> None:
        async with self.pool.connection() as conn:
            await conn.execute("SELECT 1")
