"""The case pages through HTTP: sign-in, roles, merchant scope, forms, review and dossier.

The app runs on aiohttp's test server over ``InMemoryCaseStore``, seeded by
``CaseService.apply_anomalies`` with anomaly events shaped like the detectors' (contract §6)
and applied at the times the case service would have consumed them.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from aiohttp import ClientResponse, web
from aiohttp.test_utils import TestClient, TestServer

from waybill_watch.cases import core
from waybill_watch.cases.model import Case
from waybill_watch.cases.playbooks import load_playbooks
from waybill_watch.cases.services import CaseService
from waybill_watch.cases.store import Account, InMemoryCaseStore
from waybill_watch.cases.web.auth import SESSION_COOKIE, hash_password
from waybill_watch.cases.web.pages import add_page_routes, safe_next
from waybill_watch.models.anomaly import AnomalyEvent

CN = ZoneInfo("Asia/Shanghai")
T0 = datetime(2026, 3, 14, 9, 0, tzinfo=CN)
SECRET = b"unit-test-secret-0123456789abcdef"
PLAYBOOKS = load_playbooks()
PASSWORD = "correct horse battery staple"
#: One scrypt hash for every test account (hashing is deliberately slow).
PASSWORD_HASH = hash_password(PASSWORD)

W_SNR = "SF1409876543210"
W_STALL = "YT7781234500921"
W_EXC = "ZT3390001827765"
M_TEA = "tea-shop-hz"
M_SHOES = "shoe-store-gz"


def rfc(value: datetime) -> str:
    return value.isoformat(timespec="milliseconds")


class Clock:
    """The service clock, moved by the test."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def snr_event(detected: datetime) -> AnomalyEvent:
    """A signed_not_received open with the escalation ladder, as the worker emits it."""
    signed = detected - timedelta(hours=13, minutes=18)
    return AnomalyEvent(
        anomaly_id="a-snr-" + W_SNR,
        type="signed_not_received",
        status="open",
        severity="critical",
        scope="waybill",
        subject=W_SNR,
        waybill=W_SNR,
        courier="SF",
        merchant=M_TEA,
        reasons=["not_received_reported"],
        detected_at=detected,
        evidence={
            "order_events": [
                {
                    "type": "not_received_reported",
                    "occurred_at": rfc(detected - timedelta(minutes=2)),
                    "order_id": "TB20260312884512",
                    "merchant": M_TEA,
                }
            ],
            "scans": [
                {
                    "event_id": "sf-9f1c-0006",
                    "event_time": rfc(signed),
                    "status": "delivered",
                    "sign_type": "proxy",
                    "signer": "王*",
                    "city": "杭州市",
                    "site": "杭州西湖文三路营业点",
                    "courier_code": "304",
                    "description": "【杭州西湖】已签收，签收人：王*，如有疑问请联系：138****5678",
                }
            ],
            "complaints": 1,
            "lane": {"origin_city": "上海市", "destination_city": "杭州市"},
        },
        actions=[
            {"step": "contact_recipient", "due_at": detected + timedelta(hours=2)},
            {"step": "request_sign_proof", "due_at": detected + timedelta(hours=24)},
            {"step": "escalate_platform", "due_at": detected + timedelta(hours=48)},
            {"step": "escalate_regulator", "due_at": detected + timedelta(days=7)},
        ],
    )


def stall_event(detected: datetime) -> AnomalyEvent:
    return AnomalyEvent(
        anomaly_id="a-stall-" + W_STALL,
        type="transit_stall",
        status="open",
        severity="warning",
        scope="waybill",
        subject=W_STALL,
        waybill=W_STALL,
        courier="YTO",
        merchant=M_SHOES,
        reasons=["transit"],
        detected_at=detected,
        evidence={
            "scans": [
                {
                    "event_id": "yto-77a1-0003",
                    "event_time": rfc(detected - timedelta(hours=48, minutes=5)),
                    "status": "in_transit",
                    "city": "广州市",
                    "site": "广州白云转运中心",
                    "courier_code": "2",
                }
            ],
            "lane": {"origin_city": "广州市", "destination_city": "成都市"},
        },
    )


def silence_event(detected: datetime) -> AnomalyEvent:
    return AnomalyEvent(
        anomaly_id="a-silence-ZTO",
        type="feed_silence",
        status="open",
        severity="critical",
        scope="courier",
        subject="ZTO",
        courier="ZTO",
        reasons=["no_updates"],
        detected_at=detected,
        evidence={
            "last_update_at": rfc(detected - timedelta(minutes=31)),
            "updates_in_lookback": 143,
            "lookback_minutes": 60,
            "quiet_minutes": 30,
            "min_updates": 60,
        },
    )


def exception_event(detected: datetime, status: str) -> AnomalyEvent:
    resolved = status == "resolved"
    scan = {
        "event_id": "zto-55e0-0009" if resolved else "zto-55e0-0007",
        "event_time": rfc(detected - timedelta(minutes=20)),
        "status": "delivered" if resolved else "failed_attempt",
        "site": "成都武侯营业部",
        "city": "成都市",
        **({"sign_type": "recipient", "signer": "李*"} if resolved else {}),
    }
    return AnomalyEvent(
        anomaly_id="a-exc-" + W_EXC,
        type="delivery_exception",
        status=status,  # type: ignore[arg-type]
        severity="high",
        scope="waybill",
        subject=W_EXC,
        waybill=W_EXC,
        courier="ZTO",
        merchant=M_SHOES,
        reasons=["failed_attempt"],
        detected_at=detected,
        evidence={"resolved_by": scan} if resolved else {"scans": [scan]},
    )


@dataclass
class World:
    store: InMemoryCaseStore
    service: CaseService
    clock: Clock


def case_id(waybill_or_key: str) -> str:
    key = waybill_or_key if ":" in waybill_or_key else f"waybill:{waybill_or_key}"
    return core.case_id_for(key)


SNR_ID = case_id(W_SNR)
STALL_ID = case_id(W_STALL)
EXC_ID = case_id(W_EXC)
SILENCE_ID = case_id("episode:a-silence-ZTO")


async def make_world() -> World:
    """Four cases: SNR (tea shop, SF), stall (shoe store, YTO), ZTO feed silence (overdue),
    and a delivery exception (shoe store) that resolved and closed itself."""
    store = InMemoryCaseStore()
    clock = Clock(T0 - timedelta(hours=30))
    service = CaseService(store, PLAYBOOKS, clock)
    await service.apply_anomalies([exception_event(clock.now, "open")])
    clock.now = T0 - timedelta(hours=20)
    await service.apply_anomalies([exception_event(clock.now, "resolved")])
    clock.now = T0 - timedelta(hours=3)
    await service.apply_anomalies([stall_event(clock.now)])
    clock.now = T0 - timedelta(hours=2)
    await service.apply_anomalies([silence_event(clock.now)])
    clock.now = T0 - timedelta(minutes=10)
    await service.apply_anomalies([snr_event(clock.now)])
    clock.now = T0
    for account in (
        Account("li.na", PASSWORD_HASH, "operator"),
        Account("auditor", PASSWORD_HASH, "viewer"),
        Account("gz.ops", PASSWORD_HASH, "operator", merchant=M_SHOES),
    ):
        await store.put_account(account)
    return World(store, service, clock)


@asynccontextmanager
async def running(world: World) -> AsyncIterator[TestClient[Any, Any]]:
    app = web.Application()
    add_page_routes(app, world.service, secret=SECRET)
    async with TestClient(TestServer(app)) as client:
        yield client


CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def csrf_of(html: str) -> str:
    match = CSRF.search(html)
    assert match, "no CSRF field on the page"
    return match.group(1)


async def sign_in(
    client: TestClient[Any, Any], username: str, password: str = PASSWORD, next_path: str = "/"
) -> ClientResponse:
    form = await client.get("/login")
    token = csrf_of(await form.text())
    return await client.post(
        "/login",
        data={"username": username, "password": password, "csrf": token, "next": next_path},
        allow_redirects=False,
    )


async def page_csrf(client: TestClient[Any, Any], path: str) -> str:
    response = await client.get(path)
    assert response.status == 200
    return csrf_of(await response.text())


async def stored(world: World, cid: str) -> Case:
    case = await world.store.find(cid)
    assert case is not None
    return case


# -- sign-in -------------------------------------------------------------------------------


async def test_signed_out_pages_redirect_to_login_with_next() -> None:
    world = await make_world()
    async with running(world) as client:
        for path in (
            "/",
            f"/cases/{SNR_ID}",
            "/review?since=2026-03-01",
            f"/cases/{SNR_ID}/dossier",
        ):
            response = await client.get(path, allow_redirects=False)
            assert response.status == 303, path
            location = response.headers["Location"]
            assert location.startswith("/login?next=")
        response = await client.post(
            f"/cases/{SNR_ID}/notes", data={"text": "x"}, allow_redirects=False
        )
        assert response.status == 303
        assert response.headers["Location"] == f"/login?next=%2Fcases%2F{SNR_ID}"
        assert (await stored(world, SNR_ID)).notes == []


async def test_sign_in_sets_a_hardened_cookie_and_returns_to_next() -> None:
    world = await make_world()
    async with running(world) as client:
        response = await sign_in(client, "li.na", next_path=f"/cases/{SNR_ID}")
        assert response.status == 303
        assert response.headers["Location"] == f"/cases/{SNR_ID}"
        cookie = response.headers.getall("Set-Cookie")
        session = next(c for c in cookie if c.startswith(SESSION_COOKIE + "="))
        assert "HttpOnly" in session
        assert "SameSite=Lax" in session
        assert "Path=/" in session
        assert "Max-Age=43200" in session
        page = await client.get(f"/cases/{SNR_ID}")
        assert page.status == 200
        html = await page.text()
        assert "li.na" in html and "Sign out" in html


async def test_wrong_password_and_unknown_user_get_the_same_answer() -> None:
    world = await make_world()
    async with running(world) as client:
        wrong = await sign_in(client, "li.na", "not the password")
        unknown = await sign_in(client, "nobody", "not the password")
        for response in (wrong, unknown):
            assert response.status == 200
            assert "Wrong username or password." in await response.text()
            assert not any(
                c.startswith(SESSION_COOKIE + "=") for c in response.headers.getall("Set-Cookie")
            )
        still_out = await client.get("/", allow_redirects=False)
        assert still_out.status == 303


async def test_login_post_without_its_form_token_is_refused() -> None:
    world = await make_world()
    async with running(world) as client:
        response = await client.post(
            "/login", data={"username": "li.na", "password": PASSWORD}, allow_redirects=False
        )
        assert response.status == 403
        assert "expired" in await response.text()


async def test_next_is_never_an_open_redirect() -> None:
    world = await make_world()
    async with running(world) as client:
        response = await sign_in(client, "li.na", next_path="https://evil.example/phish")
        assert response.headers["Location"] == "/"
    assert safe_next("//evil.example") == "/"
    assert safe_next("/\\evil.example") == "/"
    assert safe_next("/login?next=/") == "/"
    assert safe_next("/cases/C1?ok=step") == "/cases/C1?ok=step"
    assert safe_next("/x\r\nSet-Cookie: a=b") == "/"


async def test_session_expires_after_twelve_hours_and_logout_ends_it() -> None:
    world = await make_world()
    async with running(world) as client:
        await sign_in(client, "li.na")
        assert (await client.get("/", allow_redirects=False)).status == 200
        token = await page_csrf(client, "/")
        response = await client.post("/logout", data={"csrf": token}, allow_redirects=False)
        assert response.status == 303
        assert (await client.get("/", allow_redirects=False)).status == 303

        await sign_in(client, "li.na")
        world.clock.now = T0 + timedelta(hours=12, minutes=1)
        assert (await client.get("/", allow_redirects=False)).status == 303


# -- queue ---------------------------------------------------------------------------------


async def test_queue_lists_open_cases_next_due_first_with_overdue_marked() -> None:
    world = await make_world()
    async with running(world) as client:
        await sign_in(client, "li.na")
        html = await (await client.get("/")).text()
        # feed silence: check_feed was due 1 h after it opened 2 h ago, so it is overdue and
        # first; then the SNR (contact_recipient in 1 h 50 m), then the stall (in 9 h)
        order = [html.index(cid) for cid in (SILENCE_ID, SNR_ID, STALL_ID)]
        assert order == sorted(order)
        assert EXC_ID not in html  # auto-closed: not in the open queue
        silence_row = html[html.rindex("<tr", 0, html.index(SILENCE_ID)) : html.index(SILENCE_ID)]
        assert "is-overdue" in silence_row
        assert "Check the courier&#39;s push subscription" in html
        assert "1 overdue" in html

        closed = await (await client.get("/?status=closed")).text()
        assert EXC_ID in closed and SNR_ID not in closed


async def test_queue_filters_by_type_courier_and_merchant() -> None:
    world = await make_world()
    async with running(world) as client:
        await sign_in(client, "li.na")
        by_type = await (await client.get("/?type=transit_stall")).text()
        assert STALL_ID in by_type and SNR_ID not in by_type
        by_courier = await (await client.get("/?courier=SF")).text()
        assert SNR_ID in by_courier and STALL_ID not in by_courier
        by_merchant = await (await client.get(f"/?merchant={M_SHOES}&status=all")).text()
        assert STALL_ID in by_merchant and EXC_ID in by_merchant and SNR_ID not in by_merchant
        overdue = await (await client.get("/?overdue=1")).text()
        assert SILENCE_ID in overdue and SNR_ID not in overdue
        bad_cursor = await client.get("/?cursor=not-a-cursor")
        assert bad_cursor.status == 400


async def test_queue_pages_with_the_next_cursor() -> None:
    world = await make_world()
    events = []
    for i in range(55):
        event = stall_event(T0)
        events.append(
            event.model_copy(
                update={
                    "anomaly_id": f"a-stall-bulk-{i}",
                    "waybill": f"YT90000000{i:03d}",
                    "subject": f"YT90000000{i:03d}",
                }
            )
        )
    await world.service.apply_anomalies(events)
    async with running(world) as client:
        await sign_in(client, "li.na")
        first = await (await client.get("/?type=transit_stall")).text()
        match = re.search(r'href="([^"]*cursor=[^"]+)" rel="next"', first)
        assert match, "no next-page link"
        link = match.group(1).replace("&amp;", "&")
        assert "type=transit_stall" in link
        second = await (await client.get(link)).text()
        first_ids = set(re.findall(r'href="/cases/(C[0-9A-F]+)"', first))
        second_ids = set(re.findall(r'href="/cases/(C[0-9A-F]+)"', second))
        assert len(first_ids) == 50 and len(second_ids) == 6
        assert not first_ids & second_ids
        assert 'rel="next"' not in second
        assert "First page" in second


# -- roles and scope -----------------------------------------------------------------------


async def test_post_without_csrf_is_refused() -> None:
    world = await make_world()
    async with running(world) as client:
        await sign_in(client, "li.na")
        form = {"state": "done", "outcome": "reached_buyer", "note": "x"}
        missing = await client.post(f"/cases/{SNR_ID}/steps/contact_recipient", data=form)
        forged = await client.post(
            f"/cases/{SNR_ID}/steps/contact_recipient", data={**form, "csrf": "0" * 64}
        )
        assert missing.status == 403 and forged.status == 403
        assert (await stored(world, SNR_ID)).pending_steps()[0].step == "contact_recipient"


async def test_viewer_sees_no_forms_and_cannot_post() -> None:
    world = await make_world()
    async with running(world) as client:
        await sign_in(client, "auditor")
        html = await (await client.get(f"/cases/{SNR_ID}")).text()
        assert "/steps/" not in html and "/close" not in html and "Add a note" not in html
        assert "Check with the buyer" in html  # the steps themselves are visible
        token = csrf_of(html)  # the sign-out form's
        response = await client.post(
            f"/cases/{SNR_ID}/steps/contact_recipient",
            data={"csrf": token, "state": "done", "outcome": "reached_buyer"},
        )
        assert response.status == 403
        assert "Read-only" in await response.text()
        for path, data in (
            (f"/cases/{SNR_ID}/close", {"outcome": "false_alarm"}),
            (f"/cases/{SNR_ID}/notes", {"text": "hello"}),
        ):
            assert (await client.post(path, data={"csrf": token, **data})).status == 403
        case = await stored(world, SNR_ID)
        assert case.status == "open" and not case.notes


async def test_merchant_account_sees_only_its_merchant() -> None:
    world = await make_world()
    async with running(world) as client:
        await sign_in(client, "gz.ops")
        queue = await (await client.get("/?status=all")).text()
        assert STALL_ID in queue and EXC_ID in queue
        assert SNR_ID not in queue and SILENCE_ID not in queue
        # asking for another merchant through the filter changes nothing
        sneaky = await (await client.get(f"/?merchant={M_TEA}&status=all")).text()
        assert SNR_ID not in sneaky
        assert 'id="f-merchant"' not in sneaky
        for path in (f"/cases/{SNR_ID}", f"/cases/{SNR_ID}/dossier", f"/cases/{SILENCE_ID}"):
            response = await client.get(path)
            assert response.status == 404, path
            assert "Case not found" in await response.text()
        token = await page_csrf(client, f"/cases/{STALL_ID}")
        response = await client.post(
            f"/cases/{SNR_ID}/notes", data={"csrf": token, "text": "not mine"}
        )
        assert response.status == 404
        assert (await stored(world, SNR_ID)).notes == []
        review = await (await client.get("/review")).text()
        assert "2 cases opened" in review and "SF" not in review


# -- working a case ------------------------------------------------------------------------


async def test_completing_a_step_through_the_form_changes_the_case() -> None:
    world = await make_world()
    async with running(world) as client:
        await sign_in(client, "li.na")
        world.clock.now = T0 + timedelta(minutes=25)
        token = await page_csrf(client, f"/cases/{SNR_ID}")
        response = await client.post(
            f"/cases/{SNR_ID}/steps/contact_recipient",
            data={
                "csrf": token,
                "state": "done",
                "outcome": "reached_buyer",
                "note": "Buyer checked with the guard room: not there.",
            },
            allow_redirects=False,
        )
        assert response.status == 303
        assert response.headers["Location"] == f"/cases/{SNR_ID}?ok=step"
        step = next(s for s in (await stored(world, SNR_ID)).steps if s.step == "contact_recipient")
        assert (step.state, step.outcome, step.by) == ("done", "reached_buyer", "li.na")
        assert step.note == "Buyer checked with the guard room: not there."
        assert step.at == T0 + timedelta(minutes=25)

        page = await (await client.get(response.headers["Location"])).text()
        assert "Step saved." in page
        assert "Buyer checked with the guard room: not there." in page
        assert 'action="/cases/' + SNR_ID + '/steps/contact_recipient"' not in page
        queue = await (await client.get("/")).text()
        row = queue[queue.index(SNR_ID) : queue.index("</tr>", queue.index(SNR_ID))]
        assert "Ask the courier for the signing record" in row


async def test_skip_is_recorded_as_skipped() -> None:
    world = await make_world()
    async with running(world) as client:
        await sign_in(client, "li.na")
        token = await page_csrf(client, f"/cases/{STALL_ID}")
        await client.post(
            f"/cases/{STALL_ID}/steps/contact_recipient",
            data={"csrf": token, "state": "skipped", "outcome": "not_needed"},
        )
        step = next(
            s for s in (await stored(world, STALL_ID)).steps if s.step == "contact_recipient"
        )
        assert step.state == "skipped" and step.note is None


@pytest.mark.parametrize(
    ("path", "data", "status", "message"),
    [
        (
            "/steps/contact_recipient",
            {"state": "done", "outcome": "made_up"},
            422,
            "unknown step outcome",
        ),
        ("/steps/no_such_step", {"state": "done", "outcome": "done"}, 404, "has no step"),
        ("/steps/contact_recipient", {"state": "maybe", "outcome": "done"}, 422, "state"),
        ("/close", {"outcome": "made_up"}, 422, "unknown case outcome"),
        ("/notes", {"text": "   "}, 422, "Write the note first"),
    ],
)
async def test_refused_changes_show_the_reason_with_its_status(
    path: str, data: dict[str, str], status: int, message: str
) -> None:
    world = await make_world()
    async with running(world) as client:
        await sign_in(client, "li.na")
        token = await page_csrf(client, f"/cases/{SNR_ID}")
        response = await client.post(f"/cases/{SNR_ID}{path}", data={"csrf": token, **data})
        assert response.status == status
        html = await response.text()
        assert "Not saved:" in html and message in html
        assert SNR_ID in html  # still the case page, not a bare error
        case = await stored(world, SNR_ID)
        assert case.status == "open" and not case.notes
        assert all(s.state == "pending" for s in case.steps)


async def test_a_step_done_twice_is_a_conflict() -> None:
    world = await make_world()
    async with running(world) as client:
        await sign_in(client, "li.na")
        token = await page_csrf(client, f"/cases/{SNR_ID}")
        form = {"csrf": token, "state": "done", "outcome": "reached_buyer"}
        first = await client.post(f"/cases/{SNR_ID}/steps/contact_recipient", data=form)
        assert first.status == 200  # followed the 303
        again = await client.post(f"/cases/{SNR_ID}/steps/contact_recipient", data=form)
        assert again.status == 409
        assert "is not pending" in await again.text()


async def test_closing_a_case_cancels_its_steps_and_leaves_the_queue() -> None:
    world = await make_world()
    async with running(world) as client:
        await sign_in(client, "li.na")
        token = await page_csrf(client, f"/cases/{SNR_ID}")
        response = await client.post(
            f"/cases/{SNR_ID}/close",
            data={"csrf": token, "outcome": "found_with_neighbour", "note": "Neighbour had it."},
            allow_redirects=False,
        )
        assert response.status == 303
        case = await stored(world, SNR_ID)
        assert (case.status, case.outcome, case.closed_by) == (
            "closed",
            "found_with_neighbour",
            "li.na",
        )
        assert all(s.state == "cancelled" for s in case.steps)
        page = await (await client.get(response.headers["Location"])).text()
        assert "Case closed." in page and "Found with a neighbour or proxy signer" in page
        assert "Close the case" not in page
        assert SNR_ID not in await (await client.get("/")).text()
        again = await client.post(
            f"/cases/{SNR_ID}/close", data={"csrf": token, "outcome": "false_alarm"}
        )
        assert again.status == 409


async def test_notes_are_added_and_escaped() -> None:
    world = await make_world()
    async with running(world) as client:
        await sign_in(client, "li.na")
        token = await page_csrf(client, f"/cases/{SNR_ID}")
        text = "Courier CS ticket 4471 <script>alert(1)</script>"
        response = await client.post(
            f"/cases/{SNR_ID}/notes", data={"csrf": token, "text": text}, allow_redirects=False
        )
        assert response.headers["Location"] == f"/cases/{SNR_ID}?ok=note"
        html = await (await client.get(f"/cases/{SNR_ID}")).text()
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
        assert "<script>" not in html
        assert (await stored(world, SNR_ID)).notes[0].text == text


async def test_case_page_shows_header_evidence_and_activity() -> None:
    world = await make_world()
    async with running(world) as client:
        await sign_in(client, "li.na")
        response = await client.get(f"/cases/{SNR_ID}")
        assert "script-src" not in response.headers["Content-Security-Policy"]
        assert "default-src 'none'" in response.headers["Content-Security-Policy"]
        html = await response.text()
        for text in (
            W_SNR,
            M_TEA,
            "杭州西湖文三路营业点",
            "上海市 → 杭州市",
            "proxy",
            "王*",
            "TB20260312884512",
            "Not received reported",
            "Anomaly open",
            f"/cases/{SNR_ID}/dossier",
            "Found at the door",  # a close outcome
            "Reached the buyer",  # a step outcome
        ):
            assert text in html, text
        # times in Asia/Shanghai: contact_recipient is due 10:50 local (02:50 UTC)
        assert "2026-03-14 10:50" in html


async def test_times_follow_the_zone_given_to_the_app() -> None:
    world = await make_world()
    app = web.Application()
    add_page_routes(app, world.service, secret=SECRET, tz="UTC")
    async with TestClient(TestServer(app)) as client:
        await sign_in(client, "li.na")
        html = await (await client.get(f"/cases/{SNR_ID}")).text()
        assert "2026-03-14 02:50" in html and "Times in UTC" in html


# -- review, dossier, static ---------------------------------------------------------------


async def test_review_shows_groups_tables_and_charts() -> None:
    world = await make_world()
    async with running(world) as client:
        await sign_in(client, "li.na")
        response = await client.get("/review")
        assert response.status == 200
        html = await response.text()
        assert "4 cases opened 2026-02-13 – 2026-03-14" in html
        for heading in ("By courier", "By lane", "By site", "By type"):
            assert heading in html
        for key in (
            "SF",
            "YTO",
            "ZTO",
            "上海市 → 杭州市",
            "广州白云转运中心",
            "Courier feed silent",
        ):
            assert key in html, key
        assert html.count("<svg") >= 4
        assert "25%" in html  # each courier's share... SF 1 of 4
        # the closed delivery exception took 10 h to close
        assert "10.0" in html

        narrow = await (await client.get("/review?since=2026-03-14&until=2026-03-14")).text()
        assert "3 cases opened 2026-03-14 – 2026-03-14" in narrow
        bad = await client.get("/review?since=yesterday")
        assert bad.status == 400
        assert "YYYY-MM-DD" in await bad.text()


async def test_dossier_page_is_printable_and_complete() -> None:
    world = await make_world()
    async with running(world) as client:
        await sign_in(client, "li.na")
        response = await client.get(f"/cases/{SNR_ID}/dossier")
        assert response.status == 200
        assert "'unsafe-inline'" in response.headers["Content-Security-Policy"]
        html = await response.text()
        assert "Case dossier" in html and "@media print" in html
        assert "TB20260312884512" in html and "王*" in html
        assert "<link" not in html and "src=" not in html  # self-contained


async def test_stylesheet_is_served() -> None:
    world = await make_world()
    async with running(world) as client:
        response = await client.get("/static/cases.css")
        assert response.status == 200
        assert response.content_type == "text/css"
        assert ".chip" in await response.text()
