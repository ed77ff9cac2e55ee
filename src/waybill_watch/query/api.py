"""``GET /api/waybills/{waybill}`` and ``POST /api/waybills/query`` on the worker's port.

Any worker answers: it reads the waybills whose partitions it owns from its own RocksDB
(``worker.local_states``) and forwards the rest, grouped by owner, to the workers that own
them (``owners.OwnerDirectory``). A forwarded request is answered from local state only; what
its receiver no longer owns (a rebalance in between) comes back as ``not_here`` and is asked
again after the directory is re-read. Bearer tokens as for the cases API (same tokens file);
a merchant-scoped token sees only its merchant's waybills (others read as unknown).
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import aiohttp
from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Histogram

from waybill_watch import jsonio
from waybill_watch.domain.state import WaybillState
from waybill_watch.query.owners import partition_of
from waybill_watch.query.view import WaybillView
from waybill_watch.tokens import CHALLENGE, Grant, TokenRegistry, bearer_grant

MAX_BATCH = 1000
MAX_WAYBILL_CHARS = 64
FORWARDED = "X-Waybill-Watch-Forwarded"
FORWARD_TIMEOUT_S = 5.0


class StateSource(Protocol):
    """This worker's states: a state, ``None`` (never seen) or anything else (not here)."""

    def read(self, partition: int, waybill: str) -> WaybillState | object | None: ...


class OwnerLookup(Protocol):
    """Partition → owner URL."""

    def owner(self, partition: int, *, refresh: bool = False) -> str | None: ...


class QueryMetrics:
    """Query latency and forwarding."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.latency = Histogram(
            "waybill_watch_query_latency_seconds",
            "Waybill query latency, by route and whether any waybill was forwarded.",
            ["route", "forwarded"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
            registry=registry,
        )
        self.forwards = Counter(
            "waybill_watch_query_forwards",
            "Sub-queries forwarded to the owning worker, by outcome.",
            ["outcome"],
            registry=registry,
        )


class Unavailable(Exception):
    """Some waybills' partitions have no reachable owner right now (503, retry)."""


class WaybillQueries:
    """Answers queries from local state, forwarding what other workers own."""

    def __init__(
        self,
        local: StateSource,
        owners: OwnerLookup,
        view: WaybillView,
        *,
        partitions: int,
        self_url: str,
        metrics: QueryMetrics,
    ) -> None:
        self.local = local
        self.owners = owners
        self.view = view
        self.partitions = partitions
        self.self_url = self_url.rstrip("/")
        self.metrics = metrics
        self._http: aiohttp.ClientSession | None = None

    def local_answers(
        self, waybills: list[str], grant: Grant
    ) -> tuple[dict[str, dict[str, Any] | None], list[str]]:
        """What this worker knows, and the waybills it does not own."""
        found: dict[str, dict[str, Any] | None] = {}
        elsewhere: list[str] = []
        for waybill in waybills:
            state = self.local.read(partition_of(waybill, self.partitions), waybill)
            if state is None:
                found[waybill] = None
            elif isinstance(state, WaybillState):
                visible = grant.merchant is None or state.merchant == grant.merchant
                found[waybill] = self.view.render(state) if visible else None
            else:
                elsewhere.append(waybill)
        return found, elsewhere

    async def answer(
        self, waybills: list[str], grant: Grant, authorization: str
    ) -> tuple[dict[str, dict[str, Any] | None], bool]:
        """Every waybill's entry (``None``: unknown); and whether any was forwarded."""
        found, elsewhere = self.local_answers(waybills, grant)
        forwarded = bool(elsewhere)
        for attempt in range(3):
            if not elsewhere:
                break
            refresh = attempt > 0
            by_partition: dict[int, list[str]] = defaultdict(list)
            for waybill in elsewhere:
                by_partition[partition_of(waybill, self.partitions)].append(waybill)
            groups: dict[str, list[str]] = defaultdict(list)
            unowned: list[str] = []
            for partition, members in by_partition.items():  # one lookup per partition
                url = await asyncio.to_thread(self.owners.owner, partition, refresh=refresh)
                if url is None or url.rstrip("/") == self.self_url:
                    unowned.extend(members)
                else:
                    groups[url].extend(members)
            results = await asyncio.gather(
                *(self._forward(url, batch, authorization) for url, batch in groups.items())
            )
            elsewhere = unowned
            for answered, not_here in results:
                found.update(answered)
                elsewhere.extend(not_here)
            if elsewhere:
                # our own view may have changed too (the partition moved here)
                more, elsewhere = self.local_answers(elsewhere, grant)
                found.update(more)
                if elsewhere:
                    await asyncio.sleep(0.2 * (attempt + 1))
        if elsewhere:
            raise Unavailable(f"{len(elsewhere)} waybills have no reachable owner right now")
        return {w: found.get(w) for w in waybills}, forwarded

    async def _forward(
        self, url: str, waybills: list[str], authorization: str
    ) -> tuple[dict[str, dict[str, Any] | None], list[str]]:
        if self._http is None:
            self._http = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=FORWARD_TIMEOUT_S)
            )
        try:
            async with self._http.post(
                url.rstrip("/") + "/api/waybills/query",
                data=jsonio.dumps({"waybills": waybills}),
                headers={
                    "Authorization": authorization,
                    FORWARDED: "1",
                    "Content-Type": "application/json",
                },
            ) as response:
                body = jsonio.loads(await response.read())
                if response.status != 200:
                    self.metrics.forwards.labels(f"http_{response.status}").inc()
                    return {}, waybills
        except (aiohttp.ClientError, TimeoutError, ValueError):
            self.metrics.forwards.labels("unreachable").inc()
            return {}, waybills
        self.metrics.forwards.labels("ok").inc()
        return dict(body.get("results", {})), list(body.get("not_here", []))

    async def close(self) -> None:
        """Close the forwarding client."""
        if self._http is not None:
            await self._http.close()


def _problem(status: int, error: str, **extra: Any) -> web.Response:
    return web.Response(
        body=jsonio.dumps({"error": error, **extra}),
        status=status,
        content_type="application/json",
    )


def _valid(waybill: Any) -> bool:
    return (
        isinstance(waybill, str) and 0 < len(waybill) <= MAX_WAYBILL_CHARS and waybill.isprintable()
    )


def add_query_routes(
    router: web.UrlDispatcher, queries: WaybillQueries, tokens: TokenRegistry
) -> None:
    """Register the two query routes (contract §9) with bearer-token auth."""

    def authorised(request: web.Request) -> Grant | web.Response:
        grant = bearer_grant(tokens, request.headers.get("Authorization", ""))
        if grant is None:
            response = _problem(401, "missing or invalid bearer token")
            response.headers["WWW-Authenticate"] = CHALLENGE
            return response
        return grant

    def timed(route: str) -> Callable[[Callable[..., Awaitable[tuple[web.Response, bool]]]], Any]:
        def wrap(fn: Callable[..., Awaitable[tuple[web.Response, bool]]]) -> Any:
            async def handler(request: web.Request) -> web.Response:
                started = time.perf_counter()
                grant = authorised(request)
                if isinstance(grant, web.Response):
                    return grant
                try:
                    response, forwarded = await fn(request, grant)
                except Unavailable as exc:
                    response, forwarded = _problem(503, str(exc)), True
                    response.headers["Retry-After"] = "1"
                queries.metrics.latency.labels(route, str(forwarded).lower()).observe(
                    time.perf_counter() - started
                )
                return response

            return handler

        return wrap

    @timed("get")
    async def get_one(request: web.Request, grant: Grant) -> tuple[web.Response, bool]:
        waybill = request.match_info["waybill"]
        if not _valid(waybill):
            return _problem(422, "invalid waybill", field="waybill"), False
        answers, forwarded = await queries.answer(
            [waybill], grant, request.headers.get("Authorization", "")
        )
        entry = answers[waybill]
        if entry is None:
            return _problem(404, f"unknown waybill {waybill}"), forwarded
        return web.Response(body=jsonio.dumps(entry), content_type="application/json"), forwarded

    @timed("query")
    async def query(request: web.Request, grant: Grant) -> tuple[web.Response, bool]:
        try:
            body = jsonio.loads(await request.read())
        except ValueError:
            return _problem(422, "the body is not JSON", field="body"), False
        waybills = body.get("waybills") if isinstance(body, dict) else None
        if not isinstance(waybills, list) or not waybills:
            return _problem(422, "waybills: a non-empty list", field="waybills"), False
        if len(waybills) > MAX_BATCH:
            return _problem(
                422,
                f"at most {MAX_BATCH} waybills per query, got {len(waybills)}",
                field="waybills",
            ), False
        bad = [i for i, w in enumerate(waybills) if not _valid(w)]
        if bad:
            return _problem(422, "invalid waybill", field=f"waybills.{bad[0]}"), False
        unique = list(dict.fromkeys(waybills))
        if request.headers.get(FORWARDED):
            found, not_here = queries.local_answers(unique, grant)
            payload: dict[str, Any] = {"results": found, "not_here": not_here}
            return web.Response(body=jsonio.dumps(payload), content_type="application/json"), False
        answers, forwarded = await queries.answer(
            unique, grant, request.headers.get("Authorization", "")
        )
        return web.Response(
            body=jsonio.dumps({"results": answers}), content_type="application/json"
        ), forwarded

    router.add_get("/api/waybills/{waybill}", get_one)
    router.add_post("/api/waybills/query", query)
