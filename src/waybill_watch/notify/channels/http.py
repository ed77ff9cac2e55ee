"""One HTTP POST and what its answer means, shared by the webhook and the chat robots
(reference notify-and-cases.md §1.6, §2): 2xx is for the channel to read; 429 throttles the
channel (honouring ``Retry-After``); 408, 5xx, timeouts and lost connections are retried;
any other status (a bad URL, a refused signature, 410 Gone) will not get better by trying."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import aiohttp

from waybill_watch.notify.channels.base import Outcome
from waybill_watch.notify.retry import parse_retry_after


@dataclass(frozen=True)
class Reply:
    """A 2xx answer."""

    status: int
    body: bytes


async def post(
    session: aiohttp.ClientSession,
    url: str,
    body: bytes,
    headers: Mapping[str, str],
    timeout: float,
) -> Reply | Outcome:
    """POST ``body``; a ``Reply`` for 2xx, else the ``Outcome`` the answer means."""
    try:
        async with session.post(
            url,
            data=body,
            headers=dict(headers),
            timeout=aiohttp.ClientTimeout(total=timeout),
            allow_redirects=False,
        ) as response:
            data = await response.read()
            status = response.status
            retry_after = parse_retry_after(response.headers.get("Retry-After"))
    except TimeoutError:
        return Outcome("retry", "timeout", f"no answer within {timeout:g} s")
    except aiohttp.ClientError as exc:
        return Outcome("retry", "connection", f"{type(exc).__name__}: {exc}"[:300])
    if 200 <= status < 300:
        return Reply(status, data)
    detail = data[:300].decode("utf-8", errors="replace")
    if status == 429:
        return Outcome("throttled", "http_429", detail, retry_after)
    if status == 408 or status >= 500:
        return Outcome("retry", f"http_{status}", detail, retry_after)
    return Outcome("failed", f"http_{status}", detail)


def robot_reply(
    reply: Reply, *, ok: set[int], throttle: dict[int, float], retry: set[int]
) -> Outcome:
    """A chat robot's JSON answer (``errcode``/``code``/``StatusCode``): 0 is delivered;
    documented throttling codes park the channel; ``retry`` codes (system busy) retry."""
    import orjson

    try:
        data = orjson.loads(reply.body)
    except orjson.JSONDecodeError:
        return Outcome("retry", "bad_reply", reply.body[:200].decode("utf-8", errors="replace"))
    if not isinstance(data, dict):
        return Outcome("retry", "bad_reply", str(data)[:200])
    code = data.get("errcode", data.get("code", data.get("StatusCode")))
    message = str(data.get("errmsg", data.get("msg", data.get("StatusMessage", ""))))[:300]
    if not isinstance(code, int):
        return Outcome("retry", "bad_reply", message or str(data)[:200])
    if code in ok:
        return Outcome("delivered", "ok")
    if code in throttle:
        return Outcome("throttled", f"code_{code}", message, throttle[code])
    if code in retry:
        return Outcome("retry", f"code_{code}", message)
    return Outcome("failed", f"code_{code}", message)
