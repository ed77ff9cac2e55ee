"""The notification outbox on a real PostgreSQL: migrations beside the case service's,
idempotent enqueue, leased claims, digests, concurrent claimers, purge."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from waybill_watch.cases.migrate import migrate as migrate_cases
from waybill_watch.cases.migrate import migrations as case_migrations
from waybill_watch.notify import core
from waybill_watch.notify.migrate import migrate, migrations
from waybill_watch.notify.pg import PostgresNotifyStore
from waybill_watch.notify.rules import Rules
from waybill_watch.notify.store import delivery_id

from ..unit.cases.factory import event

pytestmark = pytest.mark.asyncio(loop_scope="session")

URL = "http://cases.test:6067"
NOW = datetime(2026, 11, 5, 2, 0, tzinfo=UTC)
LEASE = timedelta(seconds=30)


def rules(**rule: object) -> Rules:
    return Rules.model_validate(
        {
            "channels": {"a": {"type": "log"}, "b": {"type": "log"}},
            "rules": [{"channels": ["a", "b"], "language": "zh", **rule}],
        }
    )


async def opened_store(url: str) -> PostgresNotifyStore:
    await migrate(url)
    store = PostgresNotifyStore(url, max_size=4)
    await store.open()
    return store


async def test_migrations_share_a_database_with_the_case_service(database_url: str) -> None:
    assert await migrate_cases(database_url) == [m.version for m in case_migrations()]
    assert await migrate(database_url) == [m.version for m in migrations()]
    assert await migrate(database_url) == []
    assert await migrate_cases(database_url) == []
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        cursor = await conn.execute("SELECT version FROM notify_schema_migrations")
        assert [r[0] for r in await cursor.fetchall()] == [1]
        cursor = await conn.execute("SELECT count(*) FROM schema_migrations")
        row = await cursor.fetchone()
        assert row is not None and row[0] == len(case_migrations())


async def test_enqueue_is_idempotent_and_claims_lease(database_url: str) -> None:
    store = await opened_store(database_url)
    try:
        queued = core.route(event(), rules(), NOW, URL)
        assert sorted(await store.enqueue(queued)) == ["a", "b"]
        assert await store.enqueue(queued) == []  # a redelivered record
        assert await store.depth() == {"a": 1, "b": 1}

        (first,) = await store.claim("a", NOW, 10, LEASE)
        assert first.attempts == 1
        assert first.delivery_id == delivery_id("a", core.dedupe_key(event()))
        assert first.notices[0].dedupe_key == core.dedupe_key(event())
        assert await store.claim("a", NOW, 10, LEASE) == []  # leased
        (again,) = await store.claim("a", NOW + LEASE, 10, LEASE)  # the lease expired
        assert again.attempts == 2 and again.delivery_id == first.delivery_id

        await store.retry_at("a", first.delivery_id, NOW + timedelta(hours=1), "http_500: x")
        assert await store.next_due("a") == NOW + timedelta(hours=1)
        (third,) = await store.claim("a", NOW + timedelta(hours=1), 10, LEASE)
        await store.delivered("a", third.delivery_id, NOW + timedelta(hours=1))
        assert await store.depth() == {"b": 1}
        assert await store.next_due("a") is None

        (b,) = await store.claim("b", NOW, 10, LEASE)
        await store.release("b", b.delivery_id, NOW + timedelta(seconds=5))  # untried: uncounted
        assert await store.claim("b", NOW, 10, LEASE) == []
        (b,) = await store.claim("b", NOW + timedelta(seconds=5), 10, LEASE)
        assert b.attempts == 1
        await store.dead("b", b.delivery_id, NOW, "undeliverable: http_400")
        assert await store.depth() == {}
        assert await store.enqueue(queued) == []  # finished rows still deduplicate
        assert await store.purge(NOW + timedelta(hours=2)) == 2
    finally:
        await store.close()


async def test_digest_rows_go_out_under_one_fixed_delivery_id(database_url: str) -> None:
    store = await opened_store(database_url)
    try:
        digest = rules(digest="15m", digest_severities=["warning"])
        for i in range(5):
            stall = event("transit_stall", waybill=f"YT{i:013d}", severity="warning")
            await store.enqueue(core.route(stall, digest, NOW, URL))
        assert await store.claim("a", NOW, 10, LEASE) == []  # not before the window ends
        end = NOW + timedelta(minutes=15)
        (d,) = await store.claim("a", end, 2, LEASE)  # limit counts deliveries, not rows
        assert len(d.rows) == 5
        await store.retry_at("a", d.delivery_id, end, "timeout: x")
        late = event("transit_stall", waybill="YT9999999999999", severity="warning")
        await store.enqueue(core.route(late, digest, end - timedelta(seconds=1), URL))
        claimed = await store.claim("a", end, 10, LEASE)
        by_id = {c.delivery_id: len(c.rows) for c in claimed}
        assert by_id[d.delivery_id] == 5  # the retry sends the same digest
        assert sorted(by_id.values()) == [1, 5]  # the late one goes in a digest of its own
    finally:
        await store.close()


async def test_concurrent_claimers_never_take_the_same_message(database_url: str) -> None:
    store = await opened_store(database_url)
    try:
        for i in range(200):
            await store.enqueue(core.route(event(waybill=f"SF{i:013d}"), rules(), NOW, URL))

        async def claimer() -> list[str]:
            taken: list[str] = []
            while True:
                got = await store.claim("a", NOW, 7, LEASE)
                if not got:
                    return taken
                taken.extend(d.delivery_id for d in got)

        results = await asyncio.gather(*(claimer() for _ in range(4)))
        every = [d for r in results for d in r]
        assert len(every) == len(set(every)) == 200
    finally:
        await store.close()
