"""The case pages: queue, case, review and dossier, server-rendered (contract §9).

People work cases here all day, on laptops, behind a company network with no internet: so
no CDN, no JS framework, no script at all (Content-Security-Policy forbids it). Every change
goes through ``CaseService`` with an ``Actor`` naming the person and their merchant scope, so
a merchant-bound account reads and changes only its merchant's cases whichever page it uses
(another merchant's case is a 404, exactly like a case that does not exist).

Sessions are signed cookies (``auth``); every form carries the session's CSRF token and every
POST checks it; viewers get the pages without forms and a 403 for any POST. A successful POST
redirects (303) back to the case page; a refused one re-renders the page with the reason and
the status that says why (404 unknown step, 409 conflict, 422 bad outcome or form).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any, Literal, get_args
from urllib.parse import quote, urlencode

from aiohttp import web
from markupsafe import Markup
from pydantic import ValidationError

from waybill_watch.cases import core
from waybill_watch.cases.model import (
    Case,
    CloseRequest,
    NoteRequest,
    StepUpdate,
)
from waybill_watch.cases.review import DIMENSIONS
from waybill_watch.cases.services import Actor, CaseNotFound, CaseService
from waybill_watch.cases.store import Account, CaseQuery, Review, ReviewRow
from waybill_watch.cases.web import STATIC, environment, hours, percent
from waybill_watch.cases.web.auth import (
    DEFAULT_SESSION_TTL,
    LOGIN_COOKIE,
    SESSION_COOKIE,
    Session,
    SessionSigner,
    burn_password_check,
    verify_password,
)
from waybill_watch.cases.web.charts import Bar, Series, bar_chart
from waybill_watch.cases.web.dossier import (
    CHROMIUM,
    build_dossier,
    evidence_summary,
    in_time_order,
    order_events_in,
    render_dossier_html,
    render_dossier_pdf,
    scans_in,
)
from waybill_watch.models.anomaly import AnomalyType
from waybill_watch.timefmt import DEFAULT_ZONE, zone

log = logging.getLogger(__name__)

PAGE_SIZE = 50
REVIEW_DAYS = 30
MAX_USERNAME = 128
MAX_PASSWORD = 1024
LOGIN_FORM_TTL = timedelta(hours=1)
DIMENSION_LABELS = {"courier": "Courier", "lane": "Lane", "site": "Site", "type": "Type"}
_EDITORS = ("operator", "admin")
_OK_MESSAGES = {
    "step": "Step saved.",
    "closed": "Case closed.",
    "note": "Note added.",
}
_BASE_CSP = (
    "default-src 'none'; img-src 'self' data:; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class Viewer:
    """The signed-in person behind a request."""

    account: Account
    session: Session
    csrf: str

    @property
    def can_edit(self) -> bool:
        """Operators and admins work cases; viewers only read."""
        return self.account.role in _EDITORS

    @property
    def actor(self) -> Actor:
        """Who the service records, with the merchant scope it enforces."""
        return Actor(name=self.account.username, merchant=self.account.merchant)


def safe_next(value: str | None) -> str:
    """A local path to return to after sign-in; anything else (another host, a scheme,
    control characters) becomes ``/`` so the login page is no open redirect."""
    if (
        not value
        or len(value) > 2000
        or not value.startswith("/")
        or value.startswith("//")
        or "\\" in value
        or any(ord(c) < 0x20 or ord(c) == 0x7F for c in value)
        or value.startswith("/login")
    ):
        return "/"
    return value


def _field(form: Mapping[str, Any], name: str) -> str:
    value = form.get(name)
    return value if isinstance(value, str) else ""


def _first_error(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"])
    return f"{where}: {first['msg']}" if where else str(first["msg"])


def _redirect(location: str) -> web.Response:
    return web.Response(status=303, headers={"Location": location})


class CasePages:
    """The handlers, bound to one service, secret and time zone."""

    def __init__(
        self,
        service: CaseService,
        *,
        secret: bytes,
        secure_cookies: bool = False,
        tz: str = DEFAULT_ZONE,
        session_ttl: timedelta = DEFAULT_SESSION_TTL,
    ) -> None:
        self.service = service
        self.playbooks = service.playbooks
        self.signer = SessionSigner(secret, session_ttl)
        self.secure_cookies = secure_cookies
        self.tz = tz
        self.env = environment(tz)
        self.css = (STATIC / "cases.css").read_bytes()
        self.css_version = hashlib.sha256(self.css).hexdigest()[:10]
        self.type_options = [(t, self.playbooks.for_type(t).title) for t in get_args(AnomalyType)]

    # -- plumbing --------------------------------------------------------------------

    def now(self) -> datetime:
        """The service clock: overdue marks, sessions and defaults agree with the service."""
        return self.service.clock()

    def render(
        self,
        template: str,
        viewer: Viewer | None,
        *,
        status: int = 200,
        csp_inline_style: bool = False,
        **context: Any,
    ) -> web.Response:
        """A page with the common context and the security headers."""
        html = self.env.get_template(template).render(
            viewer=viewer,
            csrf=viewer.csrf if viewer else "",
            now=self.now(),
            css_version=self.css_version,
            step_title=self.step_title,
            type_title=self.type_title,
            **context,
        )
        response = web.Response(text=html, status=status, content_type="text/html")
        self._secure(response, csp_inline_style)
        return response

    @staticmethod
    def _secure(response: web.StreamResponse, inline_style: bool = False) -> None:
        style = "style-src 'self' 'unsafe-inline'" if inline_style else "style-src 'self'"
        response.headers["Content-Security-Policy"] = f"{_BASE_CSP}; {style}"
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["X-Frame-Options"] = "DENY"
        response.headers["Referrer-Policy"] = "same-origin"
        response.headers["Cache-Control"] = "no-store"

    def error(self, viewer: Viewer | None, status: int, title: str, message: str) -> web.Response:
        """A plain error page (never a stack trace)."""
        return self.render("error.html", viewer, status=status, title=title, message=message)

    def step_title(self, anomaly_type: str, step: str | None) -> str:
        """The playbook's title of a step (another type's title for the same code if the
        type has none; the code itself as the last resort)."""
        if not step:
            return ""
        spec = self.playbooks.step_spec(anomaly_type, step)
        if spec is None:
            spec = next(
                (s for p in self.playbooks.playbooks.values() for s in p.steps if s.step == step),
                None,
            )
        return spec.title if spec else step

    def type_title(self, anomaly_type: str) -> str:
        """What the playbook calls an anomaly type."""
        try:
            return self.playbooks.for_type(anomaly_type).title
        except KeyError:
            return anomaly_type

    async def viewer(self, request: web.Request) -> Viewer | None:
        """The signed-in person, if the cookie holds and the account still exists."""
        session = self.signer.read(request.cookies.get(SESSION_COOKIE), self.now())
        if session is None:
            return None
        account = await self.service.store.account(session.username)
        if account is None:
            return None
        return Viewer(account, session, self.signer.csrf_token(session))

    def signed_in(
        self, handler: Callable[[web.Request, Viewer], Awaitable[web.StreamResponse]]
    ) -> Handler:
        """Pages: signed-out people go to the login page and come back here afterwards."""

        async def wrapped(request: web.Request) -> web.StreamResponse:
            viewer = await self.viewer(request)
            if viewer is None:
                return _redirect("/login?" + urlencode({"next": request.path_qs}))
            return await handler(request, viewer)

        return wrapped

    def writes(
        self,
        handler: Callable[[web.Request, Viewer, Mapping[str, Any]], Awaitable[web.StreamResponse]],
    ) -> Handler:
        """Form posts: a session, its CSRF token and an operator or admin role, or no change."""

        async def wrapped(request: web.Request) -> web.StreamResponse:
            viewer = await self.viewer(request)
            if viewer is None:
                case_id = request.match_info.get("case_id")
                back = f"/cases/{quote(case_id)}" if case_id else "/"
                return _redirect("/login?" + urlencode({"next": back}))
            form = await request.post()
            if not self.signer.check_csrf(viewer.session, _field(form, "csrf")):
                return self.error(
                    viewer,
                    403,
                    "Form expired",
                    "This form was not issued for your current sign-in. Reload the page and "
                    "try again.",
                )
            if not viewer.can_edit:
                return self.error(
                    viewer,
                    403,
                    "Read-only account",
                    "Your account can view cases, not change them.",
                )
            return await handler(request, viewer, form)

        return wrapped

    # -- sign-in ---------------------------------------------------------------------

    def _login_page(
        self, next_path: str, message: str = "", status: int = 200, username: str = ""
    ) -> web.Response:
        nonce = self.signer.login_nonce()
        response = self.render(
            "login.html",
            None,
            status=status,
            next_path=next_path,
            message=message,
            username=username,
            login_token=self.signer.login_token(nonce),
        )
        response.set_cookie(
            LOGIN_COOKIE,
            nonce,
            max_age=int(LOGIN_FORM_TTL.total_seconds()),
            path="/login",
            httponly=True,
            samesite="Lax",
            secure=self.secure_cookies,
        )
        return response

    async def login_form(self, request: web.Request) -> web.StreamResponse:
        """GET /login (straight on when already signed in)."""
        next_path = safe_next(request.query.get("next"))
        if await self.viewer(request) is not None:
            return _redirect(next_path)
        return self._login_page(next_path)

    async def login(self, request: web.Request) -> web.StreamResponse:
        """POST /login: one message for a wrong name or password (no user enumeration), and
        the same scrypt work either way (no timing oracle)."""
        form = await request.post()
        next_path = safe_next(_field(form, "next"))
        username = _field(form, "username").strip()[:MAX_USERNAME]
        password = _field(form, "password")[:MAX_PASSWORD]
        if not self.signer.check_login(request.cookies.get(LOGIN_COOKIE), _field(form, "csrf")):
            return self._login_page(
                next_path, "The sign-in form expired. Please try again.", 403, username
            )
        account = await self.service.store.account(username) if username else None
        if account is not None:
            ok = await asyncio.to_thread(verify_password, password, account.password_hash)
        else:
            await asyncio.to_thread(burn_password_check, password)
            ok = False
        if not ok or account is None:
            log.info("case pages: failed sign-in for %r", username)
            return self._login_page(next_path, "Wrong username or password.", 200, username)
        cookie, _ = self.signer.issue(account.username, self.now())
        response = _redirect(next_path)
        response.set_cookie(
            SESSION_COOKIE,
            cookie,
            max_age=int(self.signer.ttl.total_seconds()),
            path="/",
            httponly=True,
            samesite="Lax",
            secure=self.secure_cookies,
        )
        response.del_cookie(LOGIN_COOKIE, path="/login")
        return response

    async def logout(self, request: web.Request) -> web.StreamResponse:
        """POST /logout (CSRF-checked, so another site cannot sign people out)."""
        viewer = await self.viewer(request)
        form = await request.post()
        if viewer is not None and not self.signer.check_csrf(viewer.session, _field(form, "csrf")):
            return self.error(viewer, 403, "Form expired", "Reload the page and sign out again.")
        response = _redirect("/login")
        response.del_cookie(SESSION_COOKIE, path="/")
        return response

    # -- queue -----------------------------------------------------------------------

    async def queue(self, request: web.Request, viewer: Viewer) -> web.StreamResponse:
        """GET /: open cases, next due first; filters and the cursor in the query string."""
        q = request.query
        status = q.get("status", "open")
        if status not in ("open", "closed", "all"):
            status = "open"
        case_type = q.get("type") or ""
        if case_type not in get_args(AnomalyType):
            case_type = ""
        courier = q.get("courier", "").strip()[:64]
        merchant = "" if viewer.account.merchant else q.get("merchant", "").strip()[:64]
        overdue = q.get("overdue") == "1"
        filters = {
            k: v
            for k, v in {
                "status": status,
                "type": case_type,
                "courier": courier,
                "merchant": merchant,
                "overdue": "1" if overdue else "",
            }.items()
            if v
        }
        wanted: Literal["open", "closed"] | None = (
            None if status == "all" else "closed" if status == "closed" else "open"
        )
        query = CaseQuery(
            status=wanted,
            type=case_type or None,
            courier=courier or None,
            merchant=merchant or None,
            overdue=overdue,
            limit=PAGE_SIZE,
            cursor=q.get("cursor") or None,
            scope_merchant=viewer.account.merchant,
        )
        error, http_status = "", 200
        try:
            page = await self.service.list(query)
            items, next_cursor = page.items, page.next_cursor
        except ValueError:
            items, next_cursor = [], None
            error, http_status = "That page link is no longer valid; showing nothing.", 400
        return self.render(
            "queue.html",
            viewer,
            status=http_status,
            nav="queue",
            items=items,
            filters=filters,
            status_filter=status,
            type_filter=case_type,
            courier_filter=courier,
            merchant_filter=merchant,
            overdue_filter=overdue,
            type_options=self.type_options,
            paged="cursor" in q,
            next_url="/?" + urlencode({**filters, "cursor": next_cursor}) if next_cursor else "",
            first_url="/?" + urlencode(filters),
            overdue_count=sum(1 for i in items if i.overdue),
            error=error,
        )

    # -- case ------------------------------------------------------------------------

    def _case_page(
        self,
        viewer: Viewer,
        case: Case,
        *,
        status: int = 200,
        error: str = "",
        ok: str = "",
    ) -> web.Response:
        now = self.now()
        steps = []
        first_pending = True
        for step in sorted(case.steps, key=lambda s: (s.due_at, s.step)):
            spec = self.playbooks.step_spec(step.anomaly_type, step.step)
            opened = first_pending and step.state == "pending"
            first_pending = first_pending and not opened
            steps.append(
                {
                    "s": step,
                    "first_pending": opened,
                    "title": (spec.title if spec else "") or step.title or step.step,
                    "help": spec.help if spec else "",
                    "overdue": step.overdue(now),
                    "outcome_label": self.playbooks.step_outcomes.get(step.outcome or "", ""),
                }
            )
        episodes = []
        for ref in case.anomalies:
            by = ref.resolved_by if isinstance(ref.resolved_by, dict) else {}
            waybills = ref.evidence.get("waybills")
            episodes.append(
                {
                    "a": ref,
                    "title": self.type_title(ref.type),
                    "summary": evidence_summary(ref.evidence, pointers=False),
                    "scans": in_time_order(scans_in(ref.evidence), "event_time"),
                    "orders": in_time_order(order_events_in(ref.evidence), "occurred_at"),
                    "resolved_by": evidence_summary(by) if by else {},
                    "resolved_scans": scans_in(by) if by else [],
                    "waybills": [str(w) for w in waybills] if isinstance(waybills, list) else [],
                }
            )
        return self.render(
            "case.html",
            viewer,
            status=status,
            nav="queue",
            case=case,
            steps=steps,
            episodes=episodes,
            log_entries=list(reversed(case.log)),
            outcomes=list(self.playbooks.outcomes.items()),
            step_outcomes=list(self.playbooks.step_outcomes.items()),
            outcome_label=self.playbooks.outcomes.get(case.outcome or "", case.outcome or ""),
            overdue=case.overdue(now),
            pdf_available=CHROMIUM.exists(),
            error=error,
            ok=_OK_MESSAGES.get(ok, ""),
        )

    async def _load(self, viewer: Viewer, case_id: str) -> Case | web.Response:
        try:
            return await self.service.get(case_id, viewer.actor)
        except CaseNotFound:
            return self.not_found(viewer, case_id)

    def not_found(self, viewer: Viewer, case_id: str) -> web.Response:
        """404 for a missing case and for another merchant's (indistinguishable on purpose)."""
        return self.error(viewer, 404, "Case not found", f"There is no case {case_id} you can see.")

    async def case(self, request: web.Request, viewer: Viewer) -> web.StreamResponse:
        """GET /cases/{case_id}."""
        loaded = await self._load(viewer, request.match_info["case_id"])
        if isinstance(loaded, web.Response):
            return loaded
        return self._case_page(viewer, loaded, ok=request.query.get("ok", ""))

    async def _change(
        self,
        viewer: Viewer,
        case_id: str,
        change: Callable[[], Awaitable[Case]],
        ok: str,
    ) -> web.StreamResponse:
        """Run a change; 303 back to the case, or the case page with the refusal."""
        try:
            await change()
        except CaseNotFound:
            return self.not_found(viewer, case_id)
        except (core.UnknownStep, core.Conflict, core.BadOutcome) as exc:
            http_status = {core.UnknownStep: 404, core.Conflict: 409, core.BadOutcome: 422}[
                type(exc)
            ]
            return await self._refused(viewer, case_id, http_status, str(exc))
        # back to the top of the case page, where the confirmation banner shows
        return _redirect(f"/cases/{quote(case_id)}?ok={ok}")

    async def _refused(
        self, viewer: Viewer, case_id: str, status: int, message: str
    ) -> web.StreamResponse:
        loaded = await self._load(viewer, case_id)
        if isinstance(loaded, web.Response):
            return loaded
        return self._case_page(viewer, loaded, status=status, error=message)

    async def step(
        self, request: web.Request, viewer: Viewer, form: Mapping[str, Any]
    ) -> web.StreamResponse:
        """POST /cases/{case_id}/steps/{step}: done or skipped, with an outcome and a note."""
        case_id, step = request.match_info["case_id"], request.match_info["step"]
        try:
            body = StepUpdate.model_validate(
                {
                    "state": _field(form, "state"),
                    "outcome": _field(form, "outcome"),
                    "note": _field(form, "note").strip(),
                }
            )
        except ValidationError as exc:
            return await self._refused(viewer, case_id, 422, _first_error(exc))
        return await self._change(
            viewer,
            case_id,
            lambda: self.service.complete_step(
                case_id, step, body.state, body.outcome, body.note, viewer.actor
            ),
            "step",
        )

    async def close(
        self, request: web.Request, viewer: Viewer, form: Mapping[str, Any]
    ) -> web.StreamResponse:
        """POST /cases/{case_id}/close with an outcome and an optional note."""
        case_id = request.match_info["case_id"]
        try:
            body = CloseRequest(outcome=_field(form, "outcome"), note=_field(form, "note").strip())
        except ValidationError as exc:
            return await self._refused(viewer, case_id, 422, _first_error(exc))
        return await self._change(
            viewer,
            case_id,
            lambda: self.service.close(case_id, body.outcome, body.note, viewer.actor),
            "closed",
        )

    async def note(
        self, request: web.Request, viewer: Viewer, form: Mapping[str, Any]
    ) -> web.StreamResponse:
        """POST /cases/{case_id}/notes."""
        case_id = request.match_info["case_id"]
        try:
            body = NoteRequest(text=_field(form, "text").strip())
        except ValidationError:
            return await self._refused(
                viewer, case_id, 422, "Write the note first (at most 4,000 characters)."
            )
        return await self._change(
            viewer,
            case_id,
            lambda: self.service.add_note(case_id, body.text, viewer.actor),
            "note",
        )

    # -- dossier ---------------------------------------------------------------------

    async def dossier(self, request: web.Request, viewer: Viewer) -> web.StreamResponse:
        """GET /cases/{case_id}/dossier: the printable evidence chain (``?format=pdf``)."""
        loaded = await self._load(viewer, request.match_info["case_id"])
        if isinstance(loaded, web.Response):
            return loaded
        html = render_dossier_html(
            build_dossier(loaded, self.playbooks, now=self.now()), tz=self.tz
        )
        if request.query.get("format") == "pdf":
            pdf = await asyncio.to_thread(render_dossier_pdf, html)
            if pdf is None:
                return self.error(
                    viewer,
                    404,
                    "PDF unavailable",
                    "This server cannot print PDFs (no Chromium). Print the HTML dossier instead.",
                )
            response = web.Response(body=pdf, content_type="application/pdf")
            response.headers["Content-Disposition"] = (
                f'attachment; filename="dossier-{loaded.case_id}.pdf"'
            )
            self._secure(response)
            return response
        response = web.Response(text=html, content_type="text/html")
        self._secure(response, inline_style=True)
        return response

    # -- review ----------------------------------------------------------------------

    def _period(self, q: Mapping[str, str]) -> tuple[date, date, str]:
        """``since`` and ``until`` as calendar days in the app's zone (both inclusive);
        default: the last 30 days including today."""
        today = self.now().astimezone(zone(self.tz)).date()
        since, until = today - timedelta(days=REVIEW_DAYS - 1), today
        error = ""
        try:
            if q.get("since"):
                since = date.fromisoformat(q["since"][:10])
            if q.get("until"):
                until = date.fromisoformat(q["until"][:10])
        except ValueError:
            error = "Dates are written YYYY-MM-DD; showing the last 30 days."
            since, until = today - timedelta(days=REVIEW_DAYS - 1), today
        if since > until:
            error = "The period starts after it ends; showing the last 30 days."
            since, until = today - timedelta(days=REVIEW_DAYS - 1), today
        return since, until, error

    def _charts(self, dimension: str, rows: list[ReviewRow]) -> list[tuple[str, Markup]]:
        label = DIMENSION_LABELS[dimension].lower()
        titles = (lambda r: self.type_title(r.key)) if dimension == "type" else (lambda r: r.key)
        charts = [
            (
                "Cases, open and closed",
                bar_chart(
                    [Bar(titles(r), (float(r.open), float(r.closed))) for r in rows],
                    [Series("open", "s-open"), Series("closed", "s-closed")],
                    title=f"Cases by {label}, open and closed",
                ),
            )
        ]
        timed = [r for r in rows if r.on_time_share is not None]
        if timed:
            charts.append(
                (
                    "Steps done on time",
                    bar_chart(
                        [Bar(titles(r), (r.on_time_share or 0.0,)) for r in timed],
                        [Series("steps on time", "s-ontime")],
                        title=f"Share of steps done on time by {label}",
                        max_value=1.0,
                        value_format=lambda v: f"{v * 100:.0f}%",
                    ),
                )
            )
        return charts

    @staticmethod
    def _kpis(result: Review) -> list[tuple[str, str]]:
        """The period at a glance, from the type rows (every case has exactly one type)."""
        rows = [r for r in result.rows if r.dimension == "type"]
        opened = sum(r.open for r in rows)
        closed = sum(r.closed for r in rows)
        weighted = [(r.mean_hours_to_close, r.closed) for r in rows if r.mean_hours_to_close]
        timed = sum(c for _, c in weighted)
        mean = sum((h or 0.0) * c for h, c in weighted) / timed if timed else None
        finished = sum(r.steps_finished for r in rows)
        on_time = sum(r.steps_on_time for r in rows)
        return [
            ("Cases opened", str(result.total)),
            ("Still open", str(opened)),
            ("Closed", str(closed)),
            ("Mean hours to close", hours(mean)),
            ("Steps on time", percent(on_time / finished if finished else None)),
        ]

    async def review(self, request: web.Request, viewer: Viewer) -> web.StreamResponse:
        """GET /review?since=&until=: where the cases come from, and how fast they close."""
        since, until, error = self._period(request.query)
        start = datetime.combine(since, time(0), tzinfo=zone(self.tz))
        end = datetime.combine(until + timedelta(days=1), time(0), tzinfo=zone(self.tz))
        result: Review = await self.service.review(start, end, viewer.actor)
        groups = []
        for dimension in DIMENSIONS:
            rows = [r for r in result.rows if r.dimension == dimension]
            groups.append(
                {
                    "dimension": dimension,
                    "label": DIMENSION_LABELS[dimension],
                    "rows": rows,
                    "charts": self._charts(dimension, rows),
                }
            )
        return self.render(
            "review.html",
            viewer,
            kpis=self._kpis(result),
            status=400 if error else 200,
            nav="review",
            review=result,
            since=since.isoformat(),
            until=until.isoformat(),
            groups=groups,
            error=error,
        )

    # -- static ----------------------------------------------------------------------

    async def stylesheet(self, request: web.Request) -> web.StreamResponse:
        """GET /static/cases.css (versioned link, so it may be cached)."""
        response = web.Response(body=self.css, content_type="text/css", charset="utf-8")
        response.headers["Cache-Control"] = "public, max-age=86400"
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response


PAGES_KEY = web.AppKey("waybill_watch.case_pages", CasePages)


def add_page_routes(
    app: web.Application,
    service: CaseService,
    *,
    secret: bytes,
    secure_cookies: bool = False,
    tz: str = DEFAULT_ZONE,
    session_ttl: timedelta = DEFAULT_SESSION_TTL,
) -> CasePages:
    """Mount the case pages on ``app`` (the REST API may share it: no middleware is added).

    ``secret`` signs the session cookies (at least 16 random bytes; changing it signs
    everyone out); ``secure_cookies`` marks them HTTPS-only (set it behind TLS); ``tz`` is
    the zone the pages show times in.
    """
    pages = CasePages(
        service, secret=secret, secure_cookies=secure_cookies, tz=tz, session_ttl=session_ttl
    )
    app[PAGES_KEY] = pages
    r = app.router
    r.add_get("/login", pages.login_form)
    r.add_post("/login", pages.login)
    r.add_post("/logout", pages.logout)
    r.add_get("/", pages.signed_in(pages.queue))
    r.add_get("/cases/{case_id}", pages.signed_in(pages.case))
    r.add_get("/cases/{case_id}/dossier", pages.signed_in(pages.dossier))
    r.add_post("/cases/{case_id}/steps/{step}", pages.writes(pages.step))
    r.add_post("/cases/{case_id}/close", pages.writes(pages.close))
    r.add_post("/cases/{case_id}/notes", pages.writes(pages.note))
    r.add_get("/review", pages.signed_in(pages.review))
    r.add_get("/static/cases.css", pages.stylesheet)
    return pages


__all__ = ["PAGES_KEY", "CasePages", "Viewer", "add_page_routes", "safe_next"]
