"""Waybill queries on the worker's port (contract §9): two workers in one group; every
waybill queried through each worker gets the owner's answer (one of them forwards), merchant
scope holds, limits and errors are clear."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp

from waybill_watch.tokens import token_digest

from .conftest import RunningWorker, recent_daytime
from .test_direct_topics import PROCESSED, canonical, order

ADMIN, SHOP7, SHOP8 = "it-query-admin", "it-query-shop7", "it-query-shop8"
ASSIGNED = "waybill_watch_partitions_assigned"
WAYBILLS = 40


def tokens_file(tmp: Path) -> Path:
    path = tmp / "tokens.json"
    grants = {
        ADMIN: {"role": "viewer", "merchant": None},
        SHOP7: {"role": "viewer", "merchant": "shop-7"},
        SHOP8: {"role": "viewer", "merchant": "shop-8"},
    }
    path.write_text(json.dumps({token_digest(t): g for t, g in grants.items()}))
    return path


async def call(
    worker: RunningWorker, method: str, path: str, token: str | None = ADMIN, body: Any = None
) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with (
        aiohttp.ClientSession() as http,
        http.request(method, worker.base_url + path, json=body, headers=headers) as response,
    ):
        text = await response.text()
        return response.status, json.loads(text) if text else None


async def test_any_worker_answers_with_the_owners_state(
    worker_factory: Callable[..., RunningWorker], tmp_path: Path
) -> None:
    prefix = f"q{uuid.uuid4().hex[:10]}."
    env = {
        "WAYBILL_WATCH_PARTITIONS": "4",
        "WAYBILL_WATCH_API_TOKENS_FILE": str(tokens_file(tmp_path)),
    }
    first = worker_factory(prefix, **env)
    await first.wait_ready()
    second = worker_factory(prefix, **env)
    await second.wait_ready()
    for _ in range(120):
        shares = [await w.metric(ASSIGNED) for w in (first, second)]
        if sum(shares) == 4 and min(shares) > 0:
            break
        await asyncio.sleep(0.5)
    assert sum(shares) == 4 and min(shares) > 0, shares

    t0 = recent_daytime() - timedelta(hours=6)
    tag = uuid.uuid4().hex[:8].upper()
    waybills = [f"YT{tag}{i:04d}" for i in range(WAYBILLS)]
    for i, waybill in enumerate(waybills):
        await first.produce(
            "tracking.events",
            canonical(waybill, t0, "picked_up", "【南京鼓楼】已揽收，电话13812345678"),
            key=waybill.encode(),
        )
        await first.produce(
            "tracking.events",
            canonical(waybill, t0 + timedelta(hours=1), "in_transit", "【南京转运中心】已发出"),
            key=waybill.encode(),
        )
        if i % 2 == 0:  # half belong to shop-7 (the order says so)
            await first.produce(
                "orders.events", order("shipped", waybill, t0), key=waybill.encode()
            )

    async def processed() -> float:
        return sum(
            [
                await w.metric(PROCESSED, feed="tracking.events", outcome="new")
                for w in (first, second)
            ]
        )

    for _ in range(120):
        if await processed() >= 2 * WAYBILLS:
            break
        await asyncio.sleep(0.5)
    assert await processed() == 2 * WAYBILLS
    await asyncio.sleep(1.5)  # a checkpoint commits the last states (at most 1 s behind)

    # every waybill through each worker: the same answer, the owner's
    for waybill in waybills:
        answers = [await call(w, "GET", f"/api/waybills/{waybill}") for w in (first, second)]
        assert answers[0] == answers[1], waybill
        status, body = answers[0]
        assert status == 200
        assert body["latest_status"] == "in_transit"
        assert [s["status"] for s in body["scans"]] == ["picked_up", "in_transit"]
        assert "13812345678" not in json.dumps(body, ensure_ascii=False)  # masked
    forwards = [
        await w.metric("waybill_watch_query_forwards_total", outcome="ok") for w in (first, second)
    ]
    assert min(forwards) > 0, "each worker answered some waybills through the other"

    # one batch through each worker, with unknown waybills: the same entries as one by one
    batch = [*waybills, "UNKNOWN-1", "UNKNOWN-2"]
    results = []
    for worker in (first, second):
        status, body = await call(worker, "POST", "/api/waybills/query", body={"waybills": batch})
        assert status == 200
        results.append(body["results"])
    assert results[0] == results[1]
    assert results[0]["UNKNOWN-1"] is None and results[0]["UNKNOWN-2"] is None
    single = (await call(second, "GET", f"/api/waybills/{waybills[3]}"))[1]
    assert results[0][waybills[3]] == single

    # merchant scope: shop-7 sees its own waybills only, through either worker
    for worker in (first, second):
        status, body = await call(
            worker, "POST", "/api/waybills/query", token=SHOP7, body={"waybills": waybills}
        )
        assert status == 200
        visible = {w for w, entry in body["results"].items() if entry is not None}
        assert visible == set(waybills[0::2])
        assert (await call(worker, "GET", f"/api/waybills/{waybills[1]}", token=SHOP7))[0] == 404
        assert (await call(worker, "GET", f"/api/waybills/{waybills[0]}", token=SHOP8))[0] == 404

    # clear errors
    status, body = await call(
        first, "POST", "/api/waybills/query", body={"waybills": [f"W{i}" for i in range(1001)]}
    )
    assert status == 422 and body["field"] == "waybills"
    assert (await call(first, "GET", "/api/waybills/UNKNOWN-3"))[0] == 404
    assert (await call(first, "GET", f"/api/waybills/{waybills[0]}", token=None))[0] == 401
    assert (await call(first, "GET", f"/api/waybills/{waybills[0]}", token="guess"))[0] == 401
    status, body = await call(first, "POST", "/api/waybills/query", body={"waybills": []})
    assert status == 422
