"""The REST API (contract §9) over the in-memory store: auth, roles, merchant scope,
validation, pagination."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from waybill_watch.cases.api import add_api_routes, bearer_middleware
from waybill_watch.cases.metrics import CaseMetrics
from waybill_watch.cases.playbooks import load_playbooks
from waybill_watch.cases.services import CaseService
from waybill_watch.cases.store import InMemoryCaseStore
from waybill_watch.tokens import TokenRegistry, token_digest

from .factory import T0, event

TOKENS = {
    "view-token": {"role": "viewer", "merchant": None},
    "op-token": {"role": "operator", "merchant": None},
    "shop03-token": {"role": "operator", "merchant": "shop-03"},
}


pytestmark = pytest.mark.asyncio(loop_scope="session")


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[TestClient]:
    path = tmp_path / "tokens.json"
    path.write_text(json.dumps({token_digest(t): g for t, g in TOKENS.items()}))
    store = InMemoryCaseStore()
    service = CaseService(store, load_playbooks(), clock=lambda: T0 + timedelta(minutes=1))
    await service.apply_anomalies(
        [
            event(),  # shop-03
            event("transit_stall", waybill="W-OTHER", merchant="shop-07", severity="warning"),
            *[
                event("delivery_exception", waybill=f"W{i:03d}", merchant="shop-07")
                for i in range(7)
            ],
        ]
    )
    app = web.Application(middlewares=[bearer_middleware(TokenRegistry(path), set())])
    add_api_routes(app, service, CaseMetrics())
    async with TestClient(TestServer(app)) as test_client:
        yield test_client


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def case_id_of(client: TestClient, waybill: str) -> str:
    body = await (await client.get("/api/cases?limit=500", headers=auth("op-token"))).json()
    return next(c["case_id"] for c in body["items"] if c["waybill"] == waybill)


async def test_no_token_is_401_and_a_wrong_one_too(client: TestClient) -> None:
    assert (await client.get("/api/cases")).status == 401
    response = await client.get("/api/cases", headers=auth("guess"))
    assert response.status == 401 and "Bearer" in response.headers["WWW-Authenticate"]


async def test_viewers_read_but_may_not_change(client: TestClient) -> None:
    cid = await case_id_of(client, "JDVA00353556371")
    assert (await client.get(f"/api/cases/{cid}", headers=auth("view-token"))).status == 200
    response = await client.post(
        f"/api/cases/{cid}/steps/contact_recipient",
        json={"state": "done", "outcome": "reached_buyer"},
        headers=auth("view-token"),
    )
    assert response.status == 403


async def test_an_operator_completes_a_step_and_closes_the_case(client: TestClient) -> None:
    cid = await case_id_of(client, "JDVA00353556371")
    response = await client.post(
        f"/api/cases/{cid}/steps/contact_recipient",
        json={"state": "done", "outcome": "reached_buyer", "note": "guard room has it"},
        headers={**auth("op-token"), "X-Actor": "li.wei"},
    )
    assert response.status == 200
    step = next(s for s in (await response.json())["steps"] if s["step"] == "contact_recipient")
    assert (step["state"], step["outcome"], step["note"]) == (
        "done",
        "reached_buyer",
        "guard room has it",
    )
    assert step["by"].startswith("li.wei")
    again = await client.post(
        f"/api/cases/{cid}/steps/contact_recipient",
        json={"state": "done", "outcome": "reached_buyer"},
        headers=auth("op-token"),
    )
    assert again.status == 409
    closed = await client.post(
        f"/api/cases/{cid}/close", json={"outcome": "found_with_guard"}, headers=auth("op-token")
    )
    body = await closed.json()
    assert closed.status == 200 and (body["status"], body["outcome"]) == (
        "closed",
        "found_with_guard",
    )


async def test_invalid_input_is_422_with_the_field(client: TestClient) -> None:
    cid = await case_id_of(client, "JDVA00353556371")
    response = await client.post(
        f"/api/cases/{cid}/steps/contact_recipient",
        json={"state": "finished", "outcome": "done"},
        headers=auth("op-token"),
    )
    assert response.status == 422 and (await response.json())["field"] == "state"
    response = await client.post(
        f"/api/cases/{cid}/close", json={"outcome": "vanished"}, headers=auth("op-token")
    )
    assert response.status == 422 and (await response.json())["field"] == "outcome"
    response = await client.get("/api/cases?limit=0", headers=auth("op-token"))
    assert response.status == 422 and (await response.json())["field"] == "limit"
    response = await client.get("/api/cases?cursor=garbage", headers=auth("op-token"))
    assert response.status == 422
    response = await client.get("/api/review?since=yesterday", headers=auth("op-token"))
    assert response.status == 422 and (await response.json())["field"] == "since"


async def test_unknown_case_and_unknown_step_are_404(client: TestClient) -> None:
    assert (await client.get("/api/cases/CNOPE", headers=auth("op-token"))).status == 404
    cid = await case_id_of(client, "JDVA00353556371")
    response = await client.post(
        f"/api/cases/{cid}/steps/nope",
        json={"state": "done", "outcome": "done"},
        headers=auth("op-token"),
    )
    assert response.status == 404


async def test_a_merchant_token_never_sees_or_changes_another_merchants_case(
    client: TestClient,
) -> None:
    other = await case_id_of(client, "W-OTHER")
    mine = await case_id_of(client, "JDVA00353556371")
    listed = await (await client.get("/api/cases?limit=500", headers=auth("shop03-token"))).json()
    assert [c["case_id"] for c in listed["items"]] == [mine]
    asked = await client.get("/api/cases?merchant=shop-07", headers=auth("shop03-token"))
    assert (await asked.json())["items"] == []
    assert (await client.get(f"/api/cases/{other}", headers=auth("shop03-token"))).status == 404
    for path, body in (
        (f"/api/cases/{other}/close", {"outcome": "other"}),
        (f"/api/cases/{other}/steps/contact_courier", {"state": "done", "outcome": "done"}),
        (f"/api/cases/{other}/notes", {"text": "hi"}),
    ):
        assert (await client.post(path, json=body, headers=auth("shop03-token"))).status == 404
    assert (await client.get(f"/api/cases/{other}", headers=auth("op-token"))).status == 200
    review = await (await client.get("/api/review", headers=auth("shop03-token"))).json()
    assert review["total"] == 1


async def test_pages_follow_the_cursor_without_gaps_or_repeats(client: TestClient) -> None:
    seen: list[str] = []
    cursor = None
    for _ in range(10):
        url = "/api/cases?limit=3" + (f"&cursor={cursor}" if cursor else "")
        body = await (await client.get(url, headers=auth("op-token"))).json()
        seen += [c["case_id"] for c in body["items"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == 9 and len(set(seen)) == 9
    everything = await (await client.get("/api/cases?limit=500", headers=auth("op-token"))).json()
    assert seen == [c["case_id"] for c in everything["items"]]
    dues = [c["next_due_at"] for c in everything["items"]]
    assert dues == sorted(dues)  # next due first


async def test_filters(client: TestClient) -> None:
    body = await (
        await client.get("/api/cases?type=transit_stall", headers=auth("op-token"))
    ).json()
    assert [c["waybill"] for c in body["items"]] == ["W-OTHER"]
    body = await (await client.get("/api/cases?status=closed", headers=auth("op-token"))).json()
    assert body["items"] == []
    body = await (await client.get("/api/cases?overdue=true", headers=auth("op-token"))).json()
    assert body["items"] == []  # the clock is one minute after opening


async def test_review_groups_by_courier_lane_site_and_type(client: TestClient) -> None:
    body = await (await client.get("/api/review", headers=auth("op-token"))).json()
    assert body["total"] == 9
    types = {g["key"]: g["cases"] for g in body["by"]["type"]}
    assert types == {"delivery_exception": 7, "signed_not_received": 1, "transit_stall": 1}
    assert {g["key"] for g in body["by"]["lane"]} == {"杭州 → 石家庄市"}
