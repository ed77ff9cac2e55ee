"""The case pages in a real browser: Debian's Chromium driven by Selenium, no internet.

The app runs in-process on a free port (its own thread and event loop) over the store made by
``make_store``: the real PostgreSQL store on a fresh database. An operator signs in, opens the
signed-not-received case, completes
``contact_recipient`` through the form, and sees the case page and the queue change.
Screenshots of every page land in ``tests/artifacts/screenshots/`` for people to look at.

Needs ``apt-get install chromium chromium-driver``; without them the test fails (never
skips): a browser test that silently does not run is worse than none.
"""

from __future__ import annotations

import asyncio
import base64
import socket
import threading
import urllib.request
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import pytest
from aiohttp import web
from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select

from waybill_watch.cases import core
from waybill_watch.cases.migrate import migrate
from waybill_watch.cases.pg import PostgresCaseStore
from waybill_watch.cases.playbooks import load_playbooks
from waybill_watch.cases.services import Actor, CaseService
from waybill_watch.cases.store import Account, CaseStore
from waybill_watch.cases.web.auth import SESSION_COOKIE, hash_password
from waybill_watch.cases.web.dossier import build_dossier, render_dossier_html, render_dossier_pdf
from waybill_watch.cases.web.pages import add_page_routes
from waybill_watch.models.anomaly import AnomalyEvent

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
SHOTS = Path(__file__).resolve().parents[1] / "artifacts" / "screenshots"
CN = ZoneInfo("Asia/Shanghai")
USER, PASSWORD = "li.na", "delivery-desk-2026"
SNR_WAYBILL = "SF1409876543210"
SNR_ID = core.case_id_for(f"waybill:{SNR_WAYBILL}")
WIDTH = 1440

T = TypeVar("T")


# -- the store: the one place that decides where cases live ---------------------------------


@pytest.fixture
def make_store(database_url: str) -> Callable[[], Awaitable[CaseStore]]:
    """Creates the store on the app's event loop (its PostgreSQL pool lives there)."""

    async def create() -> CaseStore:
        await migrate(database_url)
        store = PostgresCaseStore(database_url, max_size=4)
        await store.open()
        return store

    return create


# -- the app in a thread ----------------------------------------------------------------------


class Clock:
    """Wall clock, or a fixed instant while the seed replays the past."""

    def __init__(self) -> None:
        self.fixed: datetime | None = None

    def __call__(self) -> datetime:
        return self.fixed or datetime.now(UTC)


@dataclass
class RunningApp:
    """The case pages served on ``base_url`` from a background event loop."""

    service: CaseService
    clock: Clock
    loop: asyncio.AbstractEventLoop
    base_url: str
    thread: threading.Thread
    stop: Callable[[], None] = field(repr=False)

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run a coroutine on the app's loop (the store belongs to it) and wait for it."""
        future: Future[T] = asyncio.run_coroutine_threadsafe(coro, self.loop)
        return future.result(timeout=30)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def app(make_store: Callable[[], Awaitable[CaseStore]]) -> Iterator[RunningApp]:
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    port = free_port()
    clock = Clock()
    holder: dict[str, Any] = {}

    async def start() -> None:
        store = await make_store()
        service = CaseService(store, load_playbooks(), clock)
        application = web.Application()
        add_page_routes(application, service, secret=b"browser-test-secret-0123456789ab")
        runner = web.AppRunner(application)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        holder.update(service=service, runner=runner, store=store)

    def serve() -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(start())
        except BaseException as exc:
            holder["error"] = exc
            ready.set()
            return
        ready.set()
        loop.run_forever()
        loop.run_until_complete(holder["runner"].cleanup())
        close = getattr(holder["store"], "close", None)
        if close is not None:
            loop.run_until_complete(close())  # the pool's workers end on their own loop
        loop.close()

    thread = threading.Thread(target=serve, name="case-pages", daemon=True)
    thread.start()
    assert ready.wait(30), "the app did not start within 30 s"
    if "error" in holder:
        raise holder["error"]

    def stop() -> None:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(30)

    running = RunningApp(holder["service"], clock, loop, f"http://127.0.0.1:{port}", thread, stop)
    try:
        yield running
    finally:
        stop()


# -- the browser ------------------------------------------------------------------------------


@pytest.fixture
def browser(monkeypatch: pytest.MonkeyPatch) -> Iterator[webdriver.Chrome]:
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    if missing:
        pytest.fail(
            f"the browser test needs Debian's Chromium and its driver; missing: {missing}. "
            "Install them: apt-get update && apt-get install -y --no-install-recommends "
            "chromium chromium-driver",
            pytrace=False,
        )
    monkeypatch.setenv("SE_OFFLINE", "true")  # Selenium Manager must never download
    options = Options()
    options.binary_location = str(CHROMIUM)
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-extensions",
        "--disable-background-networking",
        "--no-first-run",
        "--lang=en-US",
        "--force-device-scale-factor=1",
        f"--window-size={WIDTH},900",
    ):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def screenshot(driver: webdriver.Chrome, name: str) -> Path:
    """The whole page, not just the first screenful (Chromium's DevTools capture)."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    driver.execute_script("window.scrollTo(0, 0)")  # the sticky top bar belongs at the top
    size = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]
    clip = {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1}
    shot = driver.execute_cdp_cmd(
        "Page.captureScreenshot",
        {"format": "png", "captureBeyondViewport": True, "clip": clip},
    )
    path = SHOTS / f"{name}.png"
    path.write_bytes(base64.b64decode(shot["data"]))
    return path


# -- a realistic morning's cases --------------------------------------------------------------


def rfc(value: datetime) -> str:
    return value.astimezone(CN).isoformat(timespec="milliseconds")


def waybill_event(
    anomaly_type: str,
    waybill: str,
    courier: str,
    merchant: str,
    detected: datetime,
    *,
    severity: str,
    reasons: list[str],
    evidence: dict[str, Any],
    status: str = "open",
    actions: list[dict[str, Any]] | None = None,
) -> AnomalyEvent:
    return AnomalyEvent.model_validate(
        {
            "anomaly_id": f"a-{anomaly_type}-{waybill}",
            "type": anomaly_type,
            "status": status,
            "severity": severity,
            "scope": "waybill",
            "subject": waybill,
            "waybill": waybill,
            "courier": courier,
            "merchant": merchant,
            "reasons": reasons,
            "detected_at": detected,
            "evidence": evidence,
            "actions": actions or [],
        }
    )


def scan(
    event_id: str, at: datetime, status: str, site: str, city: str, **extra: Any
) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "event_time": rfc(at),
        "status": status,
        "site": site,
        "city": city,
        **extra,
    }


async def seed(running: RunningApp) -> None:
    """Cases as the case service would have consumed them over the last two days."""
    service, clock = running.service, running.clock
    now = datetime.now(UTC)

    async def at(moment: datetime, *events: AnomalyEvent) -> None:
        clock.fixed = moment
        await service.apply_anomalies(list(events))

    lane_sh_hz = {"origin_city": "上海市", "destination_city": "杭州市"}
    lane_gz_cd = {"origin_city": "广州市", "destination_city": "成都市"}
    lane_bj_nj = {"origin_city": "北京市", "destination_city": "南京市"}

    # a delivery exception yesterday that the next delivery resolved (closes itself)
    d = now - timedelta(hours=40)
    failed = scan(
        "zto-0007",
        d - timedelta(minutes=12),
        "failed_attempt",
        "成都武侯营业部",
        "成都市",
        courier_code="405",
        description="【成都武侯】派件异常：电话无人接听，明日再派",
    )
    exc = dict(severity="high", reasons=["failed_attempt"])
    await at(
        d,
        waybill_event(
            "delivery_exception",
            "ZT3390001827765",
            "ZTO",
            "shoe-store-gz",
            d,
            evidence={"scans": [failed], "lane": lane_gz_cd},
            **exc,
        ),
    )
    r = now - timedelta(hours=22)
    delivered = scan(
        "zto-0009",
        r - timedelta(minutes=5),
        "delivered",
        "成都武侯营业部",
        "成都市",
        sign_type="recipient",
        signer="李*",
    )
    await at(
        r,
        waybill_event(
            "delivery_exception",
            "ZT3390001827765",
            "ZTO",
            "shoe-store-gz",
            r,
            status="resolved",
            evidence={"resolved_by": delivered},
            **exc,
        ),
    )

    # stalls in transit at two couriers
    for i, (waybill, courier, merchant, site, city, lane, hours_ago) in enumerate(
        [
            (
                "YT7781234500921",
                "YTO",
                "shoe-store-gz",
                "广州白云转运中心",
                "广州市",
                lane_gz_cd,
                9,
            ),
            (
                "YT7781234500977",
                "YTO",
                "shoe-store-gz",
                "广州白云转运中心",
                "广州市",
                lane_gz_cd,
                8,
            ),
            (
                "ST5520019938810",
                "STO",
                "book-house-bj",
                "北京朝阳分拨中心",
                "北京市",
                lane_bj_nj,
                5,
            ),
        ]
    ):
        t = now - timedelta(hours=hours_ago)
        last = scan(
            f"stall-{i}",
            t - timedelta(hours=48, minutes=7),
            "in_transit",
            site,
            city,
            courier_code="2",
        )
        await at(
            t,
            waybill_event(
                "transit_stall",
                waybill,
                courier,
                merchant,
                t,
                severity="warning",
                reasons=["transit"],
                evidence={"scans": [last], "lane": lane},
            ),
        )

    # a parcel in a locker for two days
    t = now - timedelta(hours=6)
    locker = scan(
        "jd-0004",
        t - timedelta(hours=48, minutes=2),
        "available_for_pickup",
        "南京鼓楼丰巢柜 #0231",
        "南京市",
        description="【南京鼓楼】已放入丰巢柜，取件码 ****",
    )
    await at(
        t,
        waybill_event(
            "locker_uncollected",
            "JD0098812334510",
            "JD",
            "book-house-bj",
            t,
            severity="warning",
            reasons=["uncollected"],
            evidence={"scans": [locker], "lane": lane_bj_nj},
        ),
    )

    # the ZTO push feed went quiet
    t = now - timedelta(hours=2, minutes=10)
    await at(
        t,
        AnomalyEvent.model_validate(
            {
                "anomaly_id": "a-feed_silence-ZTO",
                "type": "feed_silence",
                "status": "open",
                "severity": "critical",
                "scope": "courier",
                "subject": "ZTO",
                "courier": "ZTO",
                "reasons": ["no_updates"],
                "detected_at": t,
                "evidence": {
                    "last_update_at": rfc(t - timedelta(minutes=31)),
                    "updates_in_lookback": 143,
                    "lookback_minutes": 60,
                    "quiet_minutes": 30,
                    "min_updates": 60,
                },
            }
        ),
    )

    # the signed-not-received case: signed by a proxy last night, the buyer complains now
    signed_at = now - timedelta(hours=14)
    signed = scan(
        "sf-9f1c-0006",
        signed_at,
        "delivered",
        "杭州西湖文三路营业点",
        "杭州市",
        sign_type="proxy",
        signer="王*",
        courier_code="304",
        description="【杭州西湖】已签收，签收人：王*，如有疑问请联系：138****5678",
    )
    out = scan(
        "sf-9f1c-0005",
        signed_at - timedelta(hours=3),
        "out_for_delivery",
        "杭州西湖文三路营业点",
        "杭州市",
        courier_code="202",
    )
    arrived = scan(
        "sf-9f1c-0004",
        signed_at - timedelta(hours=9),
        "in_transit",
        "杭州转运中心",
        "杭州市",
        courier_code="2",
    )
    t = now - timedelta(minutes=25)
    complaint = {
        "type": "not_received_reported",
        "occurred_at": rfc(t - timedelta(minutes=1)),
        "order_id": "TB20260312884512",
        "merchant": "tea-shop-hz",
    }
    ladder = [
        ("contact_recipient", 2),
        ("request_sign_proof", 24),
        ("escalate_platform", 48),
        ("escalate_regulator", 168),
    ]
    await at(
        t,
        waybill_event(
            "signed_not_received",
            SNR_WAYBILL,
            "SF",
            "tea-shop-hz",
            t,
            severity="critical",
            reasons=["not_received_reported"],
            evidence={
                "order_events": [complaint],
                "scans": [arrived, out, signed],
                "complaints": 1,
                "lane": lane_sh_hz,
            },
            actions=[{"step": s, "due_at": t + timedelta(hours=h)} for s, h in ladder],
        ),
    )

    # a second SF signature problem, already being worked
    t = now - timedelta(hours=26)
    s2 = scan(
        "sf-11aa-0003",
        t - timedelta(minutes=3),
        "delivered",
        "杭州滨江江南营业点",
        "杭州市",
        sign_type="recipient",
        signer="陈*",
    )
    await at(
        t,
        waybill_event(
            "suspicious_signature",
            "SF1409876500188",
            "SF",
            "tea-shop-hz",
            t,
            severity="high",
            reasons=["no_delivery_scan"],
            evidence={"scans": [{**s2, "reasons": ["no_delivery_scan"]}], "lane": lane_sh_hz},
        ),
    )
    clock.fixed = t + timedelta(hours=2)
    sus_id = core.case_id_for("waybill:SF1409876500188")
    await service.complete_step(
        sus_id,
        "contact_recipient",
        "done",
        "no_answer",
        "Called 13:10 and 15:40, no answer; SMS sent.",
        Actor("zhang.wei"),
    )
    await service.add_note(
        sus_id, "Buyer replied by SMS: will check with the property office.", Actor("zhang.wei")
    )

    clock.fixed = None  # from here on, the wall clock
    store = service.store
    await store.put_account(Account(USER, hash_password(PASSWORD), "operator"))


# -- the test ----------------------------------------------------------------------------------


def test_operator_works_a_signed_not_received_case(
    app: RunningApp, browser: webdriver.Chrome
) -> None:
    app.run(seed(app))
    base = app.base_url

    browser.get(base + "/")
    assert "/login?next=" in browser.current_url
    screenshot(browser, "01-login")
    browser.find_element(By.ID, "username").send_keys(USER)
    browser.find_element(By.ID, "password").send_keys(PASSWORD)
    browser.find_element(By.CSS_SELECTOR, "form.login button[type=submit]").click()

    assert browser.current_url.rstrip("/") == base
    assert browser.title.startswith("Queue")
    row = browser.find_element(By.XPATH, f"//tr[td/a[@href='/cases/{SNR_ID}']]")
    assert "Check with the buyer" in row.text
    assert "feed" in browser.page_source.lower()
    screenshot(browser, "02-queue")

    row.find_element(By.LINK_TEXT, SNR_ID).click()
    assert browser.current_url == f"{base}/cases/{SNR_ID}"
    step_row = browser.find_element(By.ID, "step-contact_recipient")
    assert "pending" in step_row.text
    screenshot(browser, "03-case-before")

    form = browser.find_element(
        By.CSS_SELECTOR, f"form[action='/cases/{SNR_ID}/steps/contact_recipient']"
    )
    Select(form.find_element(By.ID, "o-contact_recipient")).select_by_value("reached_buyer")
    note = "Buyer checked the guard room and the neighbours: not there. Asked SF for the record."
    form.find_element(By.ID, "n-contact_recipient").send_keys(note)
    form.find_element(By.CSS_SELECTOR, "button[name=state][value=done]").click()

    assert browser.current_url.startswith(f"{base}/cases/{SNR_ID}?ok=step")
    assert "Step saved." in browser.find_element(By.CSS_SELECTOR, ".banner-ok").text
    step_row = browser.find_element(By.ID, "step-contact_recipient")
    assert "done" in step_row.text and USER in step_row.text and note in step_row.text
    assert "Reached the buyer" in step_row.text
    assert not browser.find_elements(
        By.CSS_SELECTOR, f"form[action='/cases/{SNR_ID}/steps/contact_recipient']"
    )
    screenshot(browser, "04-case-after")

    case = app.run(app.service.get(SNR_ID))
    step = next(s for s in case.steps if s.step == "contact_recipient")
    assert (step.state, step.by, step.outcome, step.note) == ("done", USER, "reached_buyer", note)

    browser.find_element(By.LINK_TEXT, "Queue").click()
    row = browser.find_element(By.XPATH, f"//tr[td/a[@href='/cases/{SNR_ID}']]")
    assert "Ask the courier for the signing record" in row.text

    browser.find_element(By.LINK_TEXT, "Review").click()
    assert browser.title.startswith("Review")
    assert browser.find_elements(By.CSS_SELECTOR, "svg.chart")
    screenshot(browser, "05-review")

    browser.get(f"{base}/cases/{SNR_ID}")
    browser.find_element(By.PARTIAL_LINK_TEXT, "Dossier").click()
    assert browser.current_url == f"{base}/cases/{SNR_ID}/dossier"
    text = browser.page_source
    assert "2. Signing" in text and "王*" in text and "TB20260312884512" in text
    screenshot(browser, "06-dossier")

    html = render_dossier_html(build_dossier(case, app.service.playbooks))
    pdf = render_dossier_pdf(html)
    assert pdf is not None and pdf.startswith(b"%PDF"), "headless Chromium printed no PDF"

    # the page route prints the same way, for the signed-in browser session
    cookie = browser.get_cookie(SESSION_COOKIE)
    assert cookie is not None
    request = urllib.request.Request(
        f"{base}/cases/{SNR_ID}/dossier?format=pdf",
        headers={"Cookie": f"{SESSION_COOKIE}={cookie['value']}"},
    )
    with urllib.request.urlopen(request, timeout=90) as response:
        assert response.headers["Content-Type"] == "application/pdf"
        served = response.read()
    assert served.startswith(b"%PDF")
    (SHOTS / "06-dossier.pdf").write_bytes(served)
