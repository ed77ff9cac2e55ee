"""The case store port, run against both implementations: the in-memory one the unit tests
use and PostgreSQL. They must answer alike (queue order, filters, cursors, review, timers,
outbox, accounts), and the PostgreSQL one must be transactional."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest

from waybill_watch.cases.migrate import migrate, migrations
from waybill_watch.cases.pg import PostgresCaseStore
from waybill_watch.cases.playbooks import load_playbooks
from waybill_watch.cases.services import Actor, CaseService
from waybill_watch.cases.store import Account, CaseQuery, CaseStore, InMemoryCaseStore

from ..unit.cases.factory import T0, event

pytestmark = pytest.mark.asyncio(loop_scope="session")
PLAYBOOKS = load_playbooks()


@pytest.fixture(params=["memory", "postgres"])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[CaseStore]:
    if request.param == "memory":
        yield InMemoryCaseStore()
        return
    url = request.getfixturevalue("database_url")
    assert await migrate(url) == [m.version for m in migrations()]
    assert await migrate(url) == []  # applied once
    pg = PostgresCaseStore(url)
    await pg.open()
    try:
        yield pg
    finally:
        await pg.close()


class Clock:
    def __init__(self) -> None:
        self.now = T0 + timedelta(seconds=1)

    def __call__(self):  # type: ignore[no-untyped-def]
        return self.now


def batch() -> list:  # type: ignore[type-arg]
    return [
        event(),
        event("transit_stall", waybill="W-TS", merchant="shop-07", severity="warning"),
        *[
            event(
                "delivery_exception",
                waybill=f"W{i:03d}",
                merchant="shop-07",
                courier="ZTO" if i % 2 else "YTO",
                severity="high",
                at=T0 + timedelta(minutes=i),
            )
            for i in range(12)
        ],
        event(
            "feed_silence",
            scope="courier",
            subject="STO",
            courier="STO",
            waybill=None,
            evidence={"last_update_at": "x"},
        ),
    ]


async def test_queue_order_filters_and_cursors(store: CaseStore) -> None:
    clock = Clock()
    service = CaseService(store, PLAYBOOKS, clock)
    emitted = await service.apply_anomalies(batch())
    assert [e.event for e in emitted] == ["opened"] * 15
    assert await service.apply_anomalies(batch()) == []  # a redelivered batch changes nothing
    everything = await store.list_cases(CaseQuery(limit=100), clock())
    assert len(everything.items) == 15 and everything.next_cursor is None
    dues = [c.next_due_at for c in everything.items]
    assert dues == sorted(dues)
    walked, cursor = [], None
    while True:
        page = await store.list_cases(CaseQuery(limit=4, cursor=cursor), clock())
        walked += [c.case_id for c in page.items]
        if (cursor := page.next_cursor) is None:
            break
    assert walked == [c.case_id for c in everything.items]
    zto = await store.list_cases(CaseQuery(courier="ZTO", limit=100), clock())
    assert len(zto.items) == 6
    scoped = await store.list_cases(CaseQuery(scope_merchant="shop-03", limit=100), clock())
    assert [c.waybill for c in scoped.items] == ["JDVA00353556371"]
    typed = await store.list_cases(CaseQuery(type="feed_silence"), clock())
    assert [c.scope for c in typed.items] == ["courier"]
    clock.now = T0 + timedelta(hours=5)
    late = await store.list_cases(CaseQuery(overdue=True, limit=100), clock())
    assert {c.type for c in late.items} == {
        "signed_not_received",
        "delivery_exception",
        "feed_silence",
    }


async def test_timers_fire_once_and_events_wait_in_the_outbox(store: CaseStore) -> None:
    clock = Clock()
    service = CaseService(store, PLAYBOOKS, clock)
    await service.apply_anomalies([event()])
    assert len(await store.outbox(100)) == 1  # opened
    clock.now = T0 + timedelta(hours=2, seconds=1)
    fired = await service.fire_due()
    assert [(e.event, e.step) for e in fired] == [
        ("step_due", "contact_recipient"),
        ("step_overdue", "contact_recipient"),
    ]
    assert await service.fire_due() == []
    pending = await store.outbox(100)
    assert [p.key for p in pending] == [fired[0].case_id] * 3
    await store.published([p.id for p in pending[:2]])
    assert [p.id for p in await store.outbox(100)] == [pending[2].id]
    counts = await store.counts(clock())
    assert counts == {"open": {"signed_not_received": 1}, "overdue": {"signed_not_received": 1}}


async def test_review_is_the_same_in_sql_and_in_python(store: CaseStore) -> None:
    clock = Clock()
    service = CaseService(store, PLAYBOOKS, clock)
    await service.apply_anomalies(batch())
    cid = (await store.list_cases(CaseQuery(scope_merchant="shop-03"), clock())).items[0].case_id
    clock.now = T0 + timedelta(hours=1)
    await service.complete_step(cid, "contact_recipient", "done", "reached_buyer", "", Actor("li"))
    clock.now = T0 + timedelta(hours=30)
    await service.complete_step(
        cid, "request_sign_proof", "done", "proof_received", "", Actor("li")
    )
    await service.close(cid, "found_with_guard", "", Actor("li"))
    review = await service.review(T0 - timedelta(days=1), T0 + timedelta(days=1), None)
    assert review.total == 15
    row = next(r for r in review.rows if r.dimension == "type" and r.key == "signed_not_received")
    assert (row.cases, row.closed, row.steps_finished, row.steps_on_time) == (1, 1, 2, 1)
    assert row.mean_hours_to_close == pytest.approx(30 - 1 / 3600, abs=0.01)
    expected = await InMemoryCaseStore.review(  # the reference computation over the same cases
        _memory_copy(store, await _all_cases(store, clock)),
        T0 - timedelta(days=1),
        T0 + timedelta(days=1),
        None,
    )
    assert review == expected
    scoped = await service.review(
        T0 - timedelta(days=1), T0 + timedelta(days=1), Actor("x", "shop-03")
    )
    assert scoped.total == 1


async def _all_cases(store: CaseStore, clock: Clock) -> list:  # type: ignore[type-arg]
    page = await store.list_cases(CaseQuery(limit=500), clock())
    return [await store.find(c.case_id) for c in page.items]


def _memory_copy(_: CaseStore, cases: list) -> InMemoryCaseStore:  # type: ignore[type-arg]
    memory = InMemoryCaseStore()
    memory.cases = {c.case_id: c for c in cases}
    return memory


async def test_accounts(store: CaseStore) -> None:
    assert await store.account("li") is None
    await store.put_account(Account("li", "scrypt$x", "operator", "shop-03"))
    await store.put_account(Account("li", "scrypt$y", "viewer", None))
    assert await store.account("li") == Account("li", "scrypt$y", "viewer", None)


async def test_a_failed_unit_of_work_leaves_nothing_behind(database_url: str) -> None:
    await migrate(database_url)
    store = PostgresCaseStore(database_url)
    await store.open()
    try:
        service = CaseService(store, PLAYBOOKS, Clock())
        with pytest.raises(RuntimeError):
            async with store.unit_of_work() as unit:
                from waybill_watch.cases import core

                decision = core.apply_anomaly(None, event(), PLAYBOOKS, T0)
                assert decision is not None
                await unit.save(decision.case, decision.events)
                raise RuntimeError("crash before commit")
        assert (await service.list(CaseQuery())).items == []
        assert await store.outbox(10) == []
    finally:
        await store.close()


async def test_concurrent_changes_to_one_case_serialise(database_url: str) -> None:
    await migrate(database_url)
    store = PostgresCaseStore(database_url, max_size=4)
    await store.open()
    try:
        service = CaseService(store, PLAYBOOKS, Clock())
        await service.apply_anomalies([event()])
        cid = (await service.list(CaseQuery())).items[0].case_id
        results = await asyncio.gather(
            *[service.add_note(cid, f"note {i}", Actor(f"p{i}")) for i in range(8)]
        )
        assert len(results) == 8
        case = await service.get(cid)
        assert sorted(n.text for n in case.notes) == [f"note {i}" for i in range(8)]
    finally:
        await store.close()
