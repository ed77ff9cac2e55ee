"""Courier traffic for the harness: signed Kdniao pushes over HTTP, retried like a courier.

The pushes are built so that what the detectors decide does not depend on *when* the worker
processes them (the live worker runs on the ``wall`` clock, replay on ``received_at``):

* ``normal``: picked up and arrived at a hub (push 1), then out for delivery and signed by day
  (push 2, the whole trace again, a few seconds later). Scan times lie 1–20 h in the past, so
  the 24/48 h stall deadlines are hours ahead of any run: nothing fires, ever, in either.
* ``exception``: a failed delivery attempt: ``delivery_exception`` opens on the scan itself.
* ``deadline``: the last scan is an arrival at a hub exactly ``transit_stall_hours`` before
  ``due`` (a few seconds after the push): ``transit_stall`` opens once the clock passes ``due``.
  Replay fires it as soon as its clock (the next envelope, or ``--until``) passes ``due``; the
  worker when its watermark does. The nemesis pushes a batch of them just before a kill, so
  their deadline falls while the worker is down.

Every waybill signs/stalls at its own site (no two share a courier:site), so the
site/courier detectors (bulk signing, site stall spikes) never see enough to fire, and feed
silence needs 30 quiet minutes of a busy courier: no anomaly depends on arrival timing.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import aiohttp

from waybill_watch.feeds import encode

CST = ZoneInfo("Asia/Shanghai")
APP_KEY = "faults-app-key"
COURIERS = ("ZTO", "YTO", "STO", "YD")
STALL_HOURS = 48.0
H = timedelta(hours=1)


def recent_daytime(now: datetime | None = None) -> datetime:
    """A base time ``t0`` (Shanghai) with ``t0 - 1 h`` … ``t0 + 3 h`` all in 08:00–21:00, at
    least an hour past and less than 20 h ago (as the integration tests' helper)."""
    now = now if now is not None else datetime.now(CST)
    t0 = (now - timedelta(hours=4)).replace(minute=0, second=0, microsecond=0)
    if t0.hour < 9:
        t0 = (t0 - timedelta(days=1)).replace(hour=18)
    elif t0.hour > 18:
        t0 = t0.replace(hour=18)
    return t0


@dataclass
class Push:
    """One callback request (one waybill)."""

    id: int
    waybill: str
    kind: str
    body: bytes
    headers: dict[str, str]
    traces: int
    due: float | None = None  # deadline waybills: epoch seconds of the stall deadline


@dataclass
class Attempt:
    started: float  # epoch seconds
    finished: float
    status: str  # HTTP status, or the exception's name
    replica: int


@dataclass
class Result:
    push: Push
    attempts: list[Attempt] = field(default_factory=list)
    accepted: bool = False
    gave_up: bool = False


class Traffic:
    """Makes the pushes: new waybills at random kinds, plus scheduled follow-up pushes."""

    def __init__(self, run: str, seed: int, *, exception_share: float = 0.1) -> None:
        self.run = run
        self.rng = random.Random(seed)  # noqa: S311 - reproducible traffic, not secret
        self.t0 = recent_daytime()
        self.serial = itertools.count(1)
        self.ids = itertools.count(1)
        self.exception_share = exception_share
        self.followups: deque[tuple[float, Push]] = deque()
        self.kinds: dict[str, str] = {}
        self.due: dict[str, float] = {}

    def _waybill(self, kind: str) -> tuple[str, str, int]:
        n = next(self.serial)
        courier = COURIERS[n % len(COURIERS)]
        waybill = f"{courier[:2]}{self.run}{n:08d}"
        self.kinds[waybill] = kind
        return waybill, courier, n

    def _push(
        self,
        waybill: str,
        courier: str,
        kind: str,
        traces: list[tuple[datetime, str, str]],
        due: float | None = None,
    ) -> Push:
        item = {
            "ShipperCode": courier,
            "LogisticCode": waybill,
            "State": "3" if traces[-1][2] == "301" else "2",
            "Traces": [
                {"AcceptTime": encode.local_time_text(at), "AcceptStation": text, "Action": act}
                for at, text, act in traces
            ],
        }
        body, headers = encode.kdniao_push([item], APP_KEY)
        return Push(next(self.ids), waybill, kind, body, dict(headers), len(traces), due)

    def next_push(self) -> Push:
        """A follow-up push that is due, else a new waybill's first push."""
        now = time.time()
        if self.followups and self.followups[0][0] <= now:
            return self.followups.popleft()[1]
        if self.rng.random() < self.exception_share:
            return self.exception()
        return self.normal()

    def normal(self) -> Push:
        waybill, courier, n = self._waybill("normal")
        t0 = self.t0 + timedelta(minutes=n % 50)
        traces = [
            (t0 - H, f"【上海青浦{n}部】快件已揽收", "1"),
            (t0, f"【杭州转运中心{n}】快件已到达", "2"),
        ]
        first = self._push(waybill, courier, "normal", traces)
        traces += [
            (t0 + 2 * H, f"【杭州西湖{n}部】快件正在派送中", "202"),
            (t0 + 2.5 * H, f"【杭州西湖{n}部】已签收，签收人：本人", "301"),
        ]
        second = self._push(waybill, courier, "normal", traces)
        self.followups.append((time.time() + self.rng.uniform(2, 6), second))
        if self.rng.random() < 0.05:  # a courier re-sends the same snapshot
            self.followups.append((time.time() + 7, self._push(waybill, courier, "normal", traces)))
        return first

    def exception(self) -> Push:
        waybill, courier, n = self._waybill("exception")
        t0 = self.t0 + timedelta(minutes=n % 50)
        traces = [
            (t0 - H, f"【上海青浦{n}部】快件已揽收", "1"),
            (t0 + H, f"【杭州西湖{n}部】快件正在派送中", "202"),
            (t0 + 2 * H, f"【杭州西湖{n}部】派件异常，收件人不在", "405"),
        ]
        return self._push(waybill, courier, "exception", traces)

    def deadline(self, in_seconds: float) -> Push:
        """A waybill whose ``transit_stall`` deadline is ``in_seconds`` from now."""
        waybill, courier, n = self._waybill("deadline")
        due = time.time() + in_seconds
        last = datetime.fromtimestamp(int(due), CST) - timedelta(hours=STALL_HOURS)
        traces = [
            (last - 2 * H, f"【广州白云{n}部】快件已揽收", "1"),
            (last, f"【长沙转运中心{n}】快件已到达", "2"),
        ]
        self.due[waybill] = float(int(due))
        return self._push(waybill, courier, "deadline", traces, due=float(int(due)))


class LoadGen:
    """Pushes at ``rate`` per second, round-robin over ``urls``; each push retried with
    exponential backoff (0.5 s doubling, at most 10 s) up to ``attempts`` times."""

    def __init__(
        self, urls: list[str], traffic: Traffic, rate: float, *, attempts: int = 12
    ) -> None:
        self.urls = urls
        self.traffic = traffic
        self.rate = rate
        self.attempts = attempts
        self.results: list[Result] = []
        self.extra: asyncio.Queue[Push] = asyncio.Queue()
        self._rr = itertools.count()
        self._tasks: set[asyncio.Task[None]] = set()
        self._stop = asyncio.Event()
        self.session: aiohttp.ClientSession | None = None

    def inject(self, push: Push) -> None:
        """Send ``push`` at the next tick, before the regular traffic."""
        self.extra.put_nowait(push)

    async def run(self) -> None:
        connector = aiohttp.TCPConnector(limit=256)
        timeout = aiohttp.ClientTimeout(total=30)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
            self.session = session
            began = time.monotonic()
            sent = 0
            while not self._stop.is_set():
                target = began + sent / self.rate
                delay = target - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                while not self.extra.empty():
                    self._send(self.extra.get_nowait())
                self._send(self.traffic.next_push())
                sent += 1
            while not self.extra.empty():
                self._send(self.extra.get_nowait())
            if self._tasks:
                await asyncio.gather(*self._tasks)

    def stop(self) -> None:
        self._stop.set()

    def _send(self, push: Push) -> None:
        result = Result(push)
        self.results.append(result)
        task = asyncio.create_task(self._deliver(result))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _deliver(self, result: Result) -> None:
        assert self.session is not None
        push = result.push
        for attempt in range(self.attempts):
            replica = next(self._rr) % len(self.urls)
            started = time.time()
            try:
                async with self.session.post(
                    f"{self.urls[replica]}/callbacks/kdniao", data=push.body, headers=push.headers
                ) as response:
                    await response.read()
                    status = str(response.status)
            except (aiohttp.ClientError, TimeoutError) as exc:
                status = type(exc).__name__
            result.attempts.append(Attempt(started, time.time(), status, replica))
            if status == "200":
                result.accepted = True
                return
            await asyncio.sleep(min(10.0, 0.5 * 2**attempt) * self.traffic.rng.uniform(0.8, 1.2))
        result.gave_up = True

    def in_flight(self) -> int:
        return len(self._tasks)
