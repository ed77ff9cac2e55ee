"""Waybill queries without a broker: the view of a state, and two workers' query services
forwarding to each other over real HTTP (in-process servers, in-memory states)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from prometheus_client import CollectorRegistry

from waybill_watch.domain.config import DetectionSettings
from waybill_watch.domain.engine import WaybillEngine
from waybill_watch.domain.state import WaybillState
from waybill_watch.query.api import QueryMetrics, WaybillQueries, add_query_routes
from waybill_watch.query.owners import partition_of
from waybill_watch.query.view import WaybillView
from waybill_watch.tokens import TokenRegistry, token_digest

from ..domain.helpers import at, push, scan

pytestmark = pytest.mark.asyncio(loop_scope="session")
PARTITIONS = 4
NOT_HERE = object()


def state_of(waybill: str) -> WaybillState:
    """A waybill that went out for delivery, failed once (delivery_exception open)."""
    engine = WaybillEngine(DetectionSettings())
    state = WaybillState(waybill)
    for update in (
        push(scan("picked_up", at(0), waybill=waybill, city="上海")),
        push(
            scan(
                "failed_attempt",
                at(20),
                waybill=waybill,
                city="杭州",
                description="派件失败，收件人电话13812345678无人接听",
            )
        ),
    ):
        state = engine.on_update(state, update, at(21)).state
    return state


class Partitions:
    """One worker's states: the partitions it owns."""

    def __init__(self, owned: set[int], states: dict[str, WaybillState]) -> None:
        self.owned = owned
        self.states = states

    def read(self, partition: int, waybill: str) -> object:
        if partition not in self.owned:
            return NOT_HERE
        return self.states.get(waybill)


class Directory:
    def __init__(self) -> None:
        self.urls: dict[int, str] = {}
        self.refreshes = 0

    def owner(self, partition: int, *, refresh: bool = False) -> str | None:
        self.refreshes += refresh
        return self.urls.get(partition)


async def test_the_view_shows_status_timeline_and_open_episodes_masked() -> None:
    body = WaybillView(DetectionSettings()).render(state_of("YT1"))
    assert body["latest_status"] == "failed_attempt"
    assert [s["status"] for s in body["scans"]] == ["picked_up", "failed_attempt"]
    assert [e["type"] for e in body["open_episodes"]] == ["delivery_exception"]
    assert "13812345678" not in json.dumps(body, ensure_ascii=False)


@pytest.fixture
async def two_workers(tmp_path: Path) -> AsyncIterator[tuple[str, str, Directory]]:
    tokens = tmp_path / "tokens.json"
    tokens.write_text(json.dumps({token_digest("t"): {"role": "viewer", "merchant": None}}))
    waybills = [f"W{i:03d}" for i in range(30)]
    states = {w: state_of(w) for w in waybills}
    directory = Directory()
    servers = []
    for owned in ({0, 1}, {2, 3}):
        app = web.Application()
        mine = {w: s for w, s in states.items() if partition_of(w, PARTITIONS) in owned}
        queries = WaybillQueries(
            Partitions(owned, mine),
            directory,
            WaybillView(DetectionSettings()),
            partitions=PARTITIONS,
            self_url="http://placeholder",
            metrics=QueryMetrics(CollectorRegistry()),
        )
        add_query_routes(app.router, queries, TokenRegistry(tokens))
        server = TestServer(app)
        await server.start_server()
        queries.self_url = str(server.make_url("")).rstrip("/")
        for partition in owned:
            directory.urls[partition] = queries.self_url
        servers.append((server, queries))
    try:
        yield servers[0][1].self_url, servers[1][1].self_url, directory
    finally:
        for server, queries in servers:
            await queries.close()
            await server.close()


async def test_each_worker_answers_every_waybill(two_workers: tuple[str, str, Directory]) -> None:
    import aiohttp

    first, second, _ = two_workers
    waybills = [f"W{i:03d}" for i in range(30)]
    async with aiohttp.ClientSession(headers={"Authorization": "Bearer t"}) as http:
        answers = []
        for base in (first, second):
            async with http.post(base + "/api/waybills/query", json={"waybills": waybills}) as r:
                assert r.status == 200
                answers.append((await r.json())["results"])
        assert answers[0] == answers[1]
        assert all(answers[0][w]["waybill"] == w for w in waybills)
        async with http.get(second + "/api/waybills/W000") as r:
            assert r.status == 200 and (await r.json())["waybill"] == "W000"


async def test_a_partition_with_no_reachable_owner_is_503_with_retry_after(
    two_workers: tuple[str, str, Directory],
) -> None:
    import aiohttp

    first, _, directory = two_workers
    elsewhere = next(
        w for w in (f"W{i:03d}" for i in range(30)) if directory.urls[partition_of(w, 4)] != first
    )
    directory.urls[partition_of(elsewhere, PARTITIONS)] = "http://127.0.0.1:9"  # nobody there
    async with (
        aiohttp.ClientSession(headers={"Authorization": "Bearer t"}) as http,
        http.get(first + f"/api/waybills/{elsewhere}") as r,
    ):
        assert r.status == 503 and r.headers["Retry-After"] == "1"
    assert directory.refreshes > 0  # it looked again before giving up
