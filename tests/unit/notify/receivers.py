"""Local HTTP receivers that check each platform's documented signature scheme and answer as
the platform would: success, 429 with Retry-After, 500, a platform error code, or no answer
(a timeout). They count what they acknowledged by delivery id."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

from waybill_watch.notify.signing import (
    DELIVERY_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    dingtalk_sign,
    feishu_sign,
    verify_webhook,
)

OK = {
    "wecom": {"errcode": 0, "errmsg": "ok"},
    "dingtalk": {"errcode": 0, "errmsg": "ok"},
    "feishu": {"code": 0, "msg": "success", "data": {}},
}
BAD_SIGN = {
    "wecom": {"errcode": 93000, "errmsg": "invalid webhook url"},
    "dingtalk": {"errcode": 310000, "errmsg": "sign not match"},
    "feishu": {"code": 19021, "msg": "sign match fail or timestamp is not within one hour"},
}
THROTTLE = {
    "wecom": {"errcode": 45009, "errmsg": "api freq out of limit"},
    "dingtalk": {"errcode": 130101, "errmsg": "send too fast, exceed 20 times per minute"},
    "feishu": {"code": 11232, "msg": "frequency limited"},
}


@dataclass
class Attempt:
    delivery_id: str
    at: float
    answer: str


@dataclass
class Receiver:
    """One platform's endpoint. ``script``: answers for the next requests, in order (``ok``,
    ``500``, ``429:<retry-after s>``, ``timeout``, ``throttle``); then ``default``."""

    kind: str
    secret: str = "receiver-secret"
    key: str = "robot-key"
    script: list[str] = field(default_factory=list)
    default: str = "ok"
    delay: float = 0.0
    port: int = 0
    attempts: list[Attempt] = field(default_factory=list)
    acknowledged: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    bad_signatures: int = 0
    _runner: web.AppRunner | None = None
    _timeout_s: float = 30.0

    @property
    def url(self) -> str:
        base = f"http://127.0.0.1:{self.port}/{self.kind}"
        return f"{base}?key={self.key}" if self.kind in ("wecom", "dingtalk") else base

    def counts(self) -> Counter[str]:
        """Acknowledged deliveries per delivery id (a count above 1 is a resend)."""
        return Counter(d for d, _ in self.acknowledged)

    async def start(self) -> Receiver:
        app = web.Application()
        app.router.add_post(f"/{self.kind}", self.handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port)
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def _signed(self, request: web.Request, raw: bytes, data: Any) -> bool:
        now = time.time()
        if self.kind == "webhook":
            return verify_webhook(
                self.secret,
                request.headers.get(TIMESTAMP_HEADER, ""),
                request.headers.get(SIGNATURE_HEADER, ""),
                raw,
            )
        if self.kind == "wecom":
            return request.query.get("key") == self.key
        if self.kind == "dingtalk":
            ts = request.query.get("timestamp", "")
            if request.query.get("key") != self.key or not ts.isdigit():
                return False
            if abs(now * 1000 - int(ts)) > 3600_000:
                return False
            from urllib.parse import unquote_plus

            return request.query.get("sign") == unquote_plus(dingtalk_sign(self.secret, int(ts)))
        if self.kind == "feishu":
            ts = str(data.get("timestamp", ""))
            if not ts.isdigit() or abs(now - int(ts)) > 3600:
                return False
            return data.get("sign") == feishu_sign(self.secret, int(ts))
        raise AssertionError(self.kind)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        delivery = request.headers.get(DELIVERY_HEADER, "")
        answer = self.script.pop(0) if self.script else self.default
        self.attempts.append(Attempt(delivery, time.monotonic(), answer))
        if self.delay:
            await asyncio.sleep(self.delay)
        data = orjson.loads(raw)
        if not self._signed(request, raw, data):
            self.bad_signatures += 1
            if self.kind == "webhook":
                return web.Response(status=401, text="bad signature")
            return web.json_response(BAD_SIGN[self.kind])
        if answer == "timeout":
            await asyncio.sleep(self._timeout_s)
            return web.Response(status=504)
        if answer == "500":
            return web.Response(status=500, text="boom")
        if answer.startswith("429"):
            retry_after = answer.partition(":")[2] or "1"
            return web.Response(status=429, headers={"Retry-After": retry_after})
        if answer == "throttle" and self.kind in THROTTLE:
            return web.json_response(THROTTLE[self.kind])
        self.acknowledged.append((delivery, data))
        if self.kind == "webhook":
            return web.Response(text="ok")
        return web.json_response(OK[self.kind])


async def start_receivers(*kinds: str, **options: Any) -> dict[str, Receiver]:
    """One started receiver per kind."""
    return {k: await Receiver(k, **options).start() for k in kinds}


def channel_entry(receiver: Receiver, **extra: Any) -> dict[str, Any]:
    """The rules-file entry of a channel pointing at ``receiver``."""
    entry: dict[str, Any] = {"type": receiver.kind, "url": receiver.url}
    if receiver.kind in ("webhook", "dingtalk", "feishu"):
        entry["secret"] = receiver.secret
    entry.update(extra)
    return entry
