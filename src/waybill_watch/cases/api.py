"""The cases REST API (contract §9): JSON over aiohttp, bearer tokens with roles.

401 without a valid token, 403 for a role that may not do it, 404 for an unknown case (and
for a case outside a merchant-scoped token's merchant: it cannot probe other merchants' ids),
409 for a step or case in the wrong state, 422 with the field for invalid input.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any, Literal, cast

from aiohttp import web
from pydantic import BaseModel, ValidationError

from waybill_watch import jsonio
from waybill_watch.cases import core
from waybill_watch.cases.metrics import CaseMetrics
from waybill_watch.cases.model import CloseRequest, NoteRequest, StepUpdate
from waybill_watch.cases.services import Actor, CaseNotFound, CaseService
from waybill_watch.cases.store import CaseQuery, Review
from waybill_watch.timefmt import format_rfc3339, parse_rfc3339
from waybill_watch.tokens import CHALLENGE, Grant, Role, TokenRegistry, bearer_grant

GRANT_KEY = web.RequestKey("grant", Grant)
MAX_LIMIT = 500
REVIEW_DAYS = 30
_RANK: dict[Role, int] = {"viewer": 0, "operator": 1, "admin": 2}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def problem(status: int, title: str, **extra: Any) -> web.Response:
    """An error body ``{"error", ...}`` with the status."""
    return web.json_response({"error": title, **extra}, status=status, dumps=_dumps)


def _dumps(value: Any) -> str:
    return jsonio.dumps(value).decode()


def _json(model: BaseModel | dict[str, Any] | list[Any], status: int = 200) -> web.Response:
    body = model.model_dump_json() if isinstance(model, BaseModel) else _dumps(model)
    return web.Response(text=body, status=status, content_type="application/json")


def _validation(exc: ValidationError) -> web.Response:
    errors = [
        {"field": ".".join(str(p) for p in e["loc"]) or "body", "message": e["msg"]}
        for e in exc.errors()
    ]
    return problem(422, "invalid input", field=errors[0]["field"], errors=errors)


def bearer_middleware(tokens: TokenRegistry, open_paths: set[str]) -> Any:
    """Authenticate ``/api/…`` requests; other paths pass (pages have their own sign-in)."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        path = request.path
        if not path.startswith("/api/") or path in open_paths:
            return await handler(request)
        grant = bearer_grant(tokens, request.headers.get("Authorization", ""))
        if grant is None:
            response = problem(401, "missing or invalid bearer token")
            response.headers["WWW-Authenticate"] = CHALLENGE
            return response
        request[GRANT_KEY] = grant
        return await handler(request)

    return middleware


def _grant(request: web.Request, need: Role) -> Grant:
    grant: Grant = request[GRANT_KEY]
    if _RANK[grant.role] < _RANK[need]:
        raise web.HTTPForbidden(
            text=_dumps({"error": f"role {grant.role} may not do this; needs {need}"}),
            content_type="application/json",
        )
    return grant


def _actor(grant: Grant, request: web.Request) -> Actor:
    who = request.headers.get("X-Actor", "").strip()[:64]
    label = f"token:{grant.role}" + (f":{grant.merchant}" if grant.merchant else "")
    return Actor(name=f"{who} ({label})" if who else label, merchant=grant.merchant)


def _time(value: str | None, field: str) -> datetime | None:
    if not value:
        return None
    try:
        return parse_rfc3339(value)
    except ValueError as exc:
        raise web.HTTPUnprocessableEntity(
            text=_dumps({"error": "invalid input", "field": field, "message": str(exc)}),
            content_type="application/json",
        ) from exc


def _query(request: web.Request, grant: Grant) -> CaseQuery:
    q = request.query
    errors: list[dict[str, str]] = []
    status = q.get("status") or None
    if status not in (None, "open", "closed"):
        errors.append({"field": "status", "message": "open or closed"})
    try:
        limit = int(q.get("limit", "50"))
        if not 1 <= limit <= MAX_LIMIT:
            raise ValueError
    except ValueError:
        errors.append({"field": "limit", "message": f"an integer from 1 to {MAX_LIMIT}"})
        limit = 50
    overdue = q.get("overdue", "false").lower()
    if overdue not in ("true", "false", "1", "0"):
        errors.append({"field": "overdue", "message": "true or false"})
    if errors:
        raise web.HTTPUnprocessableEntity(
            text=_dumps({"error": "invalid input", "field": errors[0]["field"], "errors": errors}),
            content_type="application/json",
        )
    return CaseQuery(
        status=cast(Literal["open", "closed"] | None, status),
        type=q.get("type") or None,
        courier=q.get("courier") or None,
        merchant=q.get("merchant") or None,
        overdue=overdue in ("true", "1"),
        limit=limit,
        cursor=q.get("cursor") or None,
        scope_merchant=grant.merchant,
    )


def review_json(review: Review) -> dict[str, Any]:
    """``GET /api/review``'s body."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for row in review.rows:
        groups.setdefault(row.dimension, []).append(
            {
                "key": row.key,
                "cases": row.cases,
                "open": row.open,
                "closed": row.closed,
                "share": round(row.share, 4),
                "mean_hours_to_close": (
                    round(row.mean_hours_to_close, 2)
                    if row.mean_hours_to_close is not None
                    else None
                ),
                "steps_finished": row.steps_finished,
                "steps_on_time": row.steps_on_time,
                "on_time_share": (
                    round(row.on_time_share, 4) if row.on_time_share is not None else None
                ),
            }
        )
    return {
        "since": format_rfc3339(review.since),
        "until": format_rfc3339(review.until),
        "total": review.total,
        "by": {d: groups.get(d, []) for d in ("courier", "lane", "site", "type")},
    }


async def _body(request: web.Request, model: type[BaseModel]) -> BaseModel:
    raw = await request.read()
    try:
        return model.model_validate_json(raw or b"{}")
    except ValidationError as exc:
        raise _Invalid(exc) from exc


class _Invalid(Exception):
    def __init__(self, error: ValidationError) -> None:
        self.error = error


def add_api_routes(
    app: web.Application,
    service: CaseService,
    metrics: CaseMetrics,
    dossier: Callable[[Any, str | None], Awaitable[web.StreamResponse]] | None = None,
) -> None:
    """Register ``/api/cases…`` and ``/api/review`` (auth: ``bearer_middleware``)."""

    def route(name: str, need: Role) -> Callable[[Any], Handler]:
        def wrap(fn: Callable[[web.Request, Grant], Awaitable[web.StreamResponse]]) -> Handler:
            async def handler(request: web.Request) -> web.StreamResponse:
                try:
                    response = await fn(request, _grant(request, need))
                except web.HTTPException as exc:
                    metrics.api_requests.labels(name, str(exc.status)).inc()
                    raise
                except _Invalid as exc:
                    response = _validation(exc.error)
                except CaseNotFound as exc:
                    response = problem(404, str(exc))
                except core.UnknownStep as exc:
                    response = problem(404, str(exc))
                except core.Conflict as exc:
                    response = problem(409, str(exc))
                except core.BadOutcome as exc:
                    response = problem(422, str(exc), field="outcome")
                except ValueError as exc:  # a cursor we did not write
                    response = problem(422, str(exc), field="cursor")
                metrics.api_requests.labels(name, str(response.status)).inc()
                return response

            return handler

        return wrap

    @route("list", "viewer")
    async def list_cases(request: web.Request, grant: Grant) -> web.StreamResponse:
        return _json(await service.list(_query(request, grant)))

    @route("get", "viewer")
    async def get_case(request: web.Request, grant: Grant) -> web.StreamResponse:
        case = await service.get(request.match_info["case_id"], Actor("api", grant.merchant))
        return _json(case)

    @route("step", "operator")
    async def post_step(request: web.Request, grant: Grant) -> web.StreamResponse:
        body = cast(StepUpdate, await _body(request, StepUpdate))
        case = await service.complete_step(
            request.match_info["case_id"],
            request.match_info["step"],
            body.state,
            body.outcome,
            body.note,
            _actor(grant, request),
        )
        return _json(case)

    @route("close", "operator")
    async def post_close(request: web.Request, grant: Grant) -> web.StreamResponse:
        body = cast(CloseRequest, await _body(request, CloseRequest))
        case = await service.close(
            request.match_info["case_id"], body.outcome, body.note, _actor(grant, request)
        )
        return _json(case)

    @route("note", "operator")
    async def post_note(request: web.Request, grant: Grant) -> web.StreamResponse:
        body = cast(NoteRequest, await _body(request, NoteRequest))
        case = await service.add_note(
            request.match_info["case_id"], body.text, _actor(grant, request)
        )
        return _json(case, status=201)

    @route("dossier", "viewer")
    async def get_dossier(request: web.Request, grant: Grant) -> web.StreamResponse:
        case = await service.get(request.match_info["case_id"], Actor("api", grant.merchant))
        if dossier is None:
            return problem(501, "dossier not available")
        return await dossier(case, request.headers.get("Accept"))

    @route("review", "viewer")
    async def get_review(request: web.Request, grant: Grant) -> web.StreamResponse:
        now = service.clock()
        until = _time(request.query.get("until"), "until") or now + timedelta(seconds=1)
        since = _time(request.query.get("since"), "since") or until - timedelta(days=REVIEW_DAYS)
        if since >= until:
            return problem(422, "since must be before until", field="since")
        review = await service.review(since, until, Actor("api", grant.merchant))
        return _json(review_json(review))

    app.router.add_get("/api/cases", list_cases)
    app.router.add_get("/api/cases/{case_id}", get_case)
    app.router.add_post("/api/cases/{case_id}/steps/{step}", post_step)
    app.router.add_post("/api/cases/{case_id}/close", post_close)
    app.router.add_post("/api/cases/{case_id}/notes", post_note)
    app.router.add_get("/api/cases/{case_id}/dossier", get_dossier)
    app.router.add_get("/api/review", get_review)
