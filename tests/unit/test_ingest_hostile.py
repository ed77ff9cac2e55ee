"""Hostile input at the callback edge, against the real routes and the real feed modules: every
refusal has its status and its reason counted, nothing answers 5xx, a good push still gets in.

Replay-proof signatures of our own feeds, bodies that are too large, too slow or compressed,
header floods, a per-source rate limit (429 + ``Retry-After``), JSON nested past the parser's
depth and bytes that are not UTF-8, for every feed.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import gzip
import ipaddress
import time
import zlib
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from urllib.parse import quote

import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import CollectorRegistry

from waybill_watch.feeds import build_feed
from waybill_watch.feeds.base import FeedConfig
from waybill_watch.feeds.signing import (
    OWN_SIGNATURE_HEADER,
    OWN_SIGNATURE_V2_HEADER,
    OWN_TIMESTAMP_HEADER,
    ReplayGuard,
    hmac_sha256_base64,
    kdniao_data_sign,
    kuaidi100_sign,
    timestamped_signature,
    track17_sign,
)
from waybill_watch.ingest import IngestService
from waybill_watch.metrics import Metrics
from waybill_watch.ratelimit import RateLimiter, client_address, parse_networks
from waybill_watch.web import EDGE_LIMITS, EdgeLimits, add_routes

SECRETS = {
    "kdniao": "k-app-key",
    "kuaidi100": "k100-salt",
    "17track": "t17-key",
    "aftership": "as-secret",
    "canonical": "canon-secret",
    "merchant": "merchant-secret",
}
LIMIT = 256 * 1024
GOOD_EVENT = {
    "waybill": "ZT0000000001",
    "courier": "ZTO",
    "event_time": "2026-11-26T10:00:00+08:00",
    "received_at": "2026-11-26T10:00:01+08:00",
    "status": "in_transit",
    "description": "快件已揽收",
    "source_feed": "canonical",
    "event_id": "e-hostile-1",
}


class Sink:
    def __init__(self) -> None:
        self.fail = False
        self.written: list[bytes] = []

    async def __call__(self, payload: bytes) -> None:
        if self.fail:
            raise ConnectionError("broker down")
        self.written.append(payload)


@dataclass
class Edge:
    client: TestClient
    metrics: Metrics
    sink: Sink
    feeds: dict[str, object] = field(default_factory=dict)

    def count(self, name: str, **labels: str) -> float:
        return self.metrics.registry.get_sample_value(name, labels) or 0.0

    def rejected(self, feed: str, reason: str) -> float:
        return self.count("waybill_watch_callbacks_rejected_total", feed=feed, reason=reason)

    def answered(self, feed: str, code: int) -> float:
        return self.count("waybill_watch_callback_responses_total", feed=feed, code=str(code))

    def five_xx(self) -> float:
        total = 0.0
        for family in self.metrics.registry.collect():
            for sample in family.samples:
                if sample.name == "waybill_watch_callback_responses_total" and sample.labels[
                    "code"
                ].startswith("5"):
                    total += sample.value
        return total

    async def post(
        self, feed: str, body: bytes, headers: dict[str, str] | None = None
    ) -> tuple[int, bytes, dict[str, str]]:
        response = await self.client.post(f"/callbacks/{feed}", data=body, headers=headers or {})
        return response.status, await response.read(), dict(response.headers)

    async def good(self) -> None:
        """A valid signed canonical push is still accepted."""
        status, answer, _ = await self.post("canonical", *signed("canonical", canonical_body()))
        assert status == 200, answer


@asynccontextmanager
async def edge(
    limits: EdgeLimits | None = None,
    clock: Callable[[], float] | None = None,
    **config: object,
) -> AsyncIterator[Edge]:
    limits = limits or EdgeLimits(body_timeout_seconds=1.0, header_timeout_seconds=1.0)
    metrics = Metrics(CollectorRegistry())
    feeds = {
        name: build_feed(name, FeedConfig(secret=secret, **config))  # type: ignore[arg-type]
        for name, secret in SECRETS.items()
    }
    if clock is not None:
        for name in ("canonical", "merchant"):
            guard: ReplayGuard = feeds[name].replay_guard  # type: ignore[attr-defined]
            guard.clock = clock
    sink = Sink()
    service = IngestService(feeds, sink, metrics, max_body_bytes=LIMIT, timezone="Asia/Shanghai")
    app = web.Application(client_max_size=LIMIT + 1)
    app[EDGE_LIMITS] = limits

    async def ready() -> tuple[bool, str]:
        return True, "ok"

    add_routes(app.router, service, metrics.registry, ready)
    server = TestServer(app)
    await server.start_server(**limits.runner_args())  # TestServer(...) drops runner arguments
    async with TestClient(server) as client:
        yield Edge(client, metrics, sink, dict(feeds))


def canonical_body() -> bytes:
    return orjson.dumps([GOOD_EVENT])


def signed(feed: str, payload: bytes) -> tuple[bytes, dict[str, str]]:
    """``payload`` signed as ``feed`` signs: the body itself for the JSON feeds, the form's
    document field for the form feeds (``payload`` becomes ``RequestData`` / ``param``)."""
    secret = SECRETS[feed]
    if feed == "kdniao":
        text = payload.decode("utf-8", "surrogateescape")
        sign = kdniao_data_sign(text, secret)
        body = f"RequestData={quote(payload)}&DataSign={quote(sign)}&RequestType=102"
        return body.encode("ascii"), {"Content-Type": "application/x-www-form-urlencoded"}
    if feed == "kuaidi100":
        text = payload.decode("utf-8", "surrogateescape")
        body = f"param={quote(payload)}&sign={kuaidi100_sign(text, secret)}"
        return body.encode("ascii"), {"Content-Type": "application/x-www-form-urlencoded"}
    headers = {"Content-Type": "application/json"}
    if feed == "17track":
        headers["sign"] = track17_sign(payload, secret)
    elif feed == "aftership":
        headers["aftership-hmac-sha256"] = hmac_sha256_base64(secret, payload)
    else:
        headers[OWN_SIGNATURE_HEADER] = hmac_sha256_base64(secret, payload)
    return payload, headers


def stamped(feed: str, body: bytes, at: float | None = None) -> dict[str, str]:
    stamp = str(int(time.time() if at is None else at))
    return {
        "Content-Type": "application/json",
        OWN_TIMESTAMP_HEADER: stamp,
        OWN_SIGNATURE_V2_HEADER: timestamped_signature(SECRETS[feed], stamp, body),
    }


async def raw_exchange(
    client: TestClient, head: bytes, body_parts: list[bytes], pause: float, read_for: float
) -> tuple[bytes, float]:
    """Send ``head`` then each body part ``pause`` s apart over a bare socket; everything the
    server sent within ``read_for`` s (until it closed) and when it closed (or ``inf``)."""
    assert client.port is not None
    reader, writer = await asyncio.open_connection("127.0.0.1", client.port)
    started = time.monotonic()
    writer.write(head)
    await writer.drain()

    async def trickle() -> None:
        for part in body_parts:
            await asyncio.sleep(pause)
            try:
                writer.write(part)
                await writer.drain()
            except (ConnectionError, RuntimeError):
                return

    sender = asyncio.create_task(trickle())
    received = b""
    closed_at = float("inf")
    try:
        async with asyncio.timeout(read_for):
            while chunk := await reader.read(65536):
                received += chunk
            closed_at = time.monotonic() - started
    except (TimeoutError, ConnectionError):
        pass
    sender.cancel()
    writer.close()
    return received, closed_at


# --- 1. replay protection of our own HMAC feeds ------------------------------------------------


@pytest.mark.parametrize("feed", ["canonical", "merchant"])
async def test_timestamped_signature_is_accepted_once_and_a_replay_is_refused(feed: str) -> None:
    body = canonical_body() if feed == "canonical" else b"[]"
    async with edge() as e:
        headers = stamped(feed, body)
        assert (await e.post(feed, body, headers))[0] == 200
        status, answer, _ = await e.post(feed, body, headers)
        assert status == 403 and orjson.loads(answer)["reason"] == "replayed"
        assert e.rejected(feed, "replayed") == 1
        # the same body re-signed at another second is a new request
        assert (await e.post(feed, body, stamped(feed, body, time.time() - 2)))[0] == 200
        assert len(e.sink.written) == 2


async def test_stale_and_future_timestamps_are_refused_401() -> None:
    body = canonical_body()
    async with edge() as e:
        for at in (time.time() - 301, time.time() + 301):
            status, answer, _ = await e.post("canonical", body, stamped("canonical", body, at))
            assert status == 401 and orjson.loads(answer)["reason"] == "stale_timestamp"
        for junk in ("", "12.5", "１２３", "9" * 40, "-5"):
            headers = {**stamped("canonical", body), OWN_TIMESTAMP_HEADER: junk}
            assert (await e.post("canonical", body, headers))[0] == 401
        assert e.rejected("canonical", "stale_timestamp") == 7
        await e.good()


async def test_tolerance_is_a_setting() -> None:
    body = canonical_body()
    async with edge(signature_tolerance_seconds=30.0) as e:
        assert (await e.post("canonical", body, stamped("canonical", body, time.time() - 60)))[
            0
        ] == 401
        assert (await e.post("canonical", body, stamped("canonical", body, time.time() - 20)))[
            0
        ] == 200


async def test_a_v2_signature_over_another_timestamp_or_body_is_refused() -> None:
    body = canonical_body()
    async with edge() as e:
        headers = stamped("canonical", body)
        moved = {**headers, OWN_TIMESTAMP_HEADER: str(int(headers[OWN_TIMESTAMP_HEADER]) - 1)}
        assert (await e.post("canonical", body, moved))[0] == 403
        assert (await e.post("canonical", body + b" ", headers))[0] == 403
        only_stamp = {OWN_TIMESTAMP_HEADER: headers[OWN_TIMESTAMP_HEADER]}
        assert (await e.post("canonical", body, only_stamp))[0] == 401  # v2 signature missing
        assert e.rejected("canonical", "bad_signature") == 2
        assert e.rejected("canonical", "missing_signature") == 1


async def test_contract_signature_still_works_unless_the_timestamp_is_required() -> None:
    body = canonical_body()
    async with edge() as e:
        assert (await e.post("canonical", *signed("canonical", body)))[0] == 200
    async with edge(require_signed_timestamp=True) as e:
        status, answer, _ = await e.post("canonical", *signed("canonical", body))
        assert status == 401 and orjson.loads(answer)["reason"] == "missing_timestamp"
        assert (await e.post("canonical", body, stamped("canonical", body)))[0] == 200
        # courier feeds are not ours: their own schemes are unchanged
        assert (await e.post("17track", *signed("17track", b"{}")))[0] == 400  # bad_shape


async def test_a_request_not_accepted_may_be_sent_again_unchanged() -> None:
    """A 503 (Kafka down) must not turn the sender's retry into a 'replay'."""
    body = canonical_body()
    async with edge() as e:
        headers = stamped("canonical", body)
        e.sink.fail = True
        assert (await e.post("canonical", body, headers))[0] == 503
        e.sink.fail = False
        assert (await e.post("canonical", body, headers))[0] == 200
        assert (await e.post("canonical", body, headers))[0] == 403


def test_the_replay_cache_is_bounded_and_forgets_expired_signatures() -> None:
    now = [1_000_000.0]
    guard = ReplayGuard(tolerance=300, capacity=1000, clock=lambda: now[0])
    for i in range(5000):
        assert guard.reserve(f"sig{i}", now[0])
    assert len(guard) == 1000
    assert not guard.reserve("sig4999", now[0])
    now[0] += 301
    for i in range(50):
        guard.reserve(f"new{i}", now[0])
    assert len(guard) < 1000  # expired ones went first


# --- 2. oversized and slow bodies, slow heads --------------------------------------------------


async def test_declared_oversized_body_is_refused_413_without_reading_it() -> None:
    async with edge() as e:
        head = (
            b"POST /callbacks/canonical HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 1000000000\r\n\r\n"
        )
        received, _ = await raw_exchange(e.client, head, [b"[" * 1000], 0.05, 0.8)
        assert received.startswith(b"HTTP/1.1 413"), received[:200]
        assert e.rejected("canonical", "body_too_large") == 1
        await e.good()


async def test_chunked_oversized_body_is_refused_413_after_the_limit() -> None:
    async with edge() as e:

        async def chunks() -> AsyncIterator[bytes]:
            for _ in range(100):  # 6.4 MB, 25 times the limit
                yield b"x" * 65536

        status, _, _ = await e.post("canonical", chunks(), signed("canonical", b"")[1])  # type: ignore[arg-type]
        assert status == 413
        assert e.rejected("canonical", "body_too_large") == 1


async def test_slow_body_is_refused_408_and_the_connection_closed() -> None:
    async with edge() as e:
        head = (
            b"POST /callbacks/merchant HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 100\r\n\r\n"
        )
        received, closed_at = await raw_exchange(e.client, head, [b"["] * 50, 0.2, 5.0)
        assert received.startswith(b"HTTP/1.1 408"), received[:200]
        assert b'"slow_body"' in received
        assert closed_at < 3.0
        assert e.rejected("merchant", "slow_body") == 1
        assert e.answered("merchant", 408) == 1
        await e.good()


async def test_a_connection_that_never_finishes_its_head_is_closed() -> None:
    async with edge() as e:
        head = b"POST /callbacks/canonical HTTP/1.1\r\nHost: x\r\n"
        received, closed_at = await raw_exchange(e.client, head, [b"X-Slow: 1\r\n"] * 40, 0.1, 6.0)
        assert received == b""
        assert closed_at < 3.5  # header timeout 1 s (aiohttp's timer may round up)
        await e.good()


# --- 3. compressed bodies ----------------------------------------------------------------------


@functools.cache
def _gzip_zeros(size: int) -> bytes:
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    block = bytes(1 << 20)
    parts = [packer.compress(block) for _ in range(size >> 20)]
    return b"".join(parts) + packer.flush()


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "br", "zstd", "x-gzip", "GZIP"])
async def test_compressed_body_is_refused_415_and_never_inflated(encoding: str) -> None:
    bomb = _gzip_zeros(128 << 20)  # 128 MiB of zeros in ~128 KB
    assert len(bomb) < 150_000
    async with edge() as e:
        headers = {**signed("canonical", bomb)[1], "Content-Encoding": encoding}
        started = time.monotonic()
        status, answer, _ = await e.post("canonical", bomb, headers)
        assert status == 415 and orjson.loads(answer)["reason"] == "unsupported_encoding"
        assert time.monotonic() - started < 2.0
        assert e.rejected("canonical", "unsupported_encoding") == 1
        await e.good()


async def test_identity_encoding_is_fine() -> None:
    async with edge() as e:
        body, headers = signed("canonical", canonical_body())
        assert (await e.post("canonical", body, {**headers, "Content-Encoding": "identity"}))[
            0
        ] == 200
        # a gzip body without the header is just bytes that are not JSON
        zipped = gzip.compress(canonical_body())
        status, answer, _ = await e.post("canonical", *signed("canonical", zipped))
        assert status == 400 and orjson.loads(answer)["reason"] == "bad_encoding"


# --- 4. header floods --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {f"X-Flood-{i}": "x" for i in range(500)},  # more than aiohttp's 128
        {"X-Huge": "x" * 20_000},  # one field above 8190 bytes
    ],
)
async def test_header_flood_is_refused_by_aiohttp_and_the_server_keeps_serving(
    headers: dict[str, str],
) -> None:
    async with edge() as e:
        status, _, _ = await e.post("canonical", canonical_body(), headers)
        assert 400 <= status < 500
        # aiohttp's parser answers before any handler: nothing of ours saw it
        assert e.count("waybill_watch_callbacks_received_total", feed="canonical") == 0
        await e.good()


async def test_huge_request_line_is_refused() -> None:
    async with edge() as e:
        response = await e.client.post("/callbacks/canonical?" + "a" * 20_000, data=b"[]")
        assert response.status in (400, 414)
        await e.good()


# --- 5. rate limit -----------------------------------------------------------------------------


async def test_a_source_over_its_rate_gets_429_with_retry_after() -> None:
    limits = EdgeLimits(rate_limit_per_second=0.5, rate_limit_burst=3)
    async with edge(limits) as e:
        body, headers = signed("canonical", canonical_body())
        statuses = [(await e.post("canonical", body, headers))[0] for _ in range(3)]
        assert statuses == [200, 200, 200]
        status, answer, response_headers = await e.post("canonical", body, headers)
        assert status == 429 and orjson.loads(answer)["reason"] == "rate_limited"
        assert int(response_headers["Retry-After"]) in (1, 2)
        assert e.rejected("canonical", "rate_limited") == 1
        assert e.answered("canonical", 429) == 1
        # buckets are per feed: another feed of the same source is not affected
        assert (await e.post("merchant", *signed("merchant", b"[]")))[0] == 200
        # unknown feeds share one bucket and one label
        await e.post("nope", b"[]")
        await e.post("nope2", b"[]")
        await e.post("nope3", b"[]")
        assert (await e.post("nope4", b"[]"))[0] == 429
        assert e.rejected("_unknown", "rate_limited") == 1


async def test_forwarded_for_counts_only_behind_a_trusted_proxy() -> None:
    body, headers = signed("canonical", canonical_body())
    untrusted = EdgeLimits(rate_limit_per_second=0.1, rate_limit_burst=1)
    async with edge(untrusted) as e:
        assert (await e.post("canonical", body, {**headers, "X-Forwarded-For": "10.0.0.1"}))[
            0
        ] == 200
        assert (await e.post("canonical", body, {**headers, "X-Forwarded-For": "10.0.0.2"}))[
            0
        ] == 429  # the peer (127.0.0.1) is the client: the header is ignored
    trusted = EdgeLimits(
        rate_limit_per_second=0.1,
        rate_limit_burst=1,
        trusted_proxies=parse_networks("127.0.0.1, ::1"),
    )
    async with edge(trusted) as e:
        for hop in ("10.0.0.1", "10.0.0.2", "10.0.0.3"):
            assert (await e.post("canonical", body, {**headers, "X-Forwarded-For": hop}))[0] == 200
        assert (await e.post("canonical", body, {**headers, "X-Forwarded-For": "10.0.0.1"}))[
            0
        ] == 429


def test_client_address_walks_forwarded_for_from_the_right() -> None:
    proxies = parse_networks("10.0.0.0/8")
    assert client_address("10.1.1.1", ["1.2.3.4, 10.2.2.2"], proxies) == "1.2.3.4"
    assert client_address("10.1.1.1", ["6.6.6.6, 1.2.3.4"], proxies) == "1.2.3.4"  # forged left
    assert client_address("10.1.1.1", ["1.2.3.4", "10.3.3.3"], proxies) == "1.2.3.4"
    assert client_address("10.1.1.1", [], proxies) == "10.1.1.1"
    assert client_address("8.8.8.8", ["1.2.3.4"], proxies) == "8.8.8.8"
    assert client_address("10.1.1.1", ["junk" * 40], proxies) == ("junk" * 40)[:64]
    assert isinstance(proxies[0], ipaddress.IPv4Network)


def test_rate_limiter_memory_is_bounded_and_buckets_refill() -> None:
    now = [0.0]
    limiter = RateLimiter(2.0, 2, max_keys=100, clock=lambda: now[0])
    for i in range(10_000):
        limiter.acquire(("canonical", f"10.0.{i // 256}.{i % 256}"))
    assert len(limiter) == 100
    key = ("canonical", "1.1.1.1")
    assert limiter.acquire(key) == 0 and limiter.acquire(key) == 0
    assert limiter.acquire(key) == pytest.approx(0.5)
    now[0] += 0.5
    assert limiter.acquire(key) == 0


@pytest.mark.parametrize("feed", ["canonical", "merchant"])
async def test_huge_arrays_of_junk_are_bounded(feed: str) -> None:
    """Rejecting an item costs tens of microseconds on the event loop: bodies of more than
    10,000 items are refused whole (``too_many_items``), and 10,000 junk items answer fast."""
    many = b"[" + b"0," * 99_999 + b"0]"  # 100,000 items in 200 KB
    few = b"[" + b"{}," * 9_999 + b"{}]"
    async with edge() as e:
        status, answer, _ = await e.post(feed, *signed(feed, many))
        assert status == 400 and orjson.loads(answer)["reason"] == "too_many_items"
        started = time.monotonic()
        status, _, _ = await e.post(feed, *signed(feed, few))
        assert status == 200  # a readable push: its bad items go to the DLQ
        assert time.monotonic() - started < 5.0
        await e.good()


# --- 6. deep JSON and bytes that are not UTF-8, every feed -------------------------------------

FEEDS = list(SECRETS)


@pytest.mark.parametrize("feed", FEEDS)
@pytest.mark.parametrize("depth", [1_100, 30_000])
async def test_json_nested_past_the_parser_depth_is_400_bad_json(feed: str, depth: int) -> None:
    payload = b"[" * depth + b"]" * depth
    async with edge() as e:
        status, answer, _ = await e.post(feed, *signed(feed, payload))
        assert status == 400, answer
        assert e.rejected(feed, "bad_json") == 1
        assert e.five_xx() == 0
        await e.good()


@pytest.mark.parametrize("feed", FEEDS)
async def test_json_nested_within_the_depth_is_answered_without_5xx(feed: str) -> None:
    payload = b'{"a":' * 1000 + b"1" + b"}" * 1000
    async with edge() as e:
        status, _, _ = await e.post(feed, *signed(feed, payload))
        assert status in (200, 400)
        assert e.five_xx() == 0
        assert (
            e.count("waybill_watch_callbacks_rejected_total", feed=feed, reason="parser_error") == 0
        )


@pytest.mark.parametrize("feed", FEEDS)
async def test_invalid_utf8_is_400_bad_encoding(feed: str) -> None:
    payload = b'[{"waybill": "ZT\xff\xfe1"}]'
    async with edge() as e:
        if feed in ("kdniao", "kuaidi100"):
            # raw bytes in the form body: not UTF-8 before anything else
            body = (b"RequestData=" if feed == "kdniao" else b"param=") + payload
            headers = {"Content-Type": "application/x-www-form-urlencoded"}
        else:
            body, headers = signed(feed, payload)
        status, _, _ = await e.post(feed, body, headers)
        assert status == 400
        assert e.rejected(feed, "bad_encoding") == 1
        await e.good()


@pytest.mark.parametrize("feed", ["kdniao", "kuaidi100"])
async def test_percent_encoded_invalid_utf8_in_a_form_is_400_bad_form(feed: str) -> None:
    field = "RequestData" if feed == "kdniao" else "param"
    body = f"{field}=%7B%22x%22%3A%22%FF%FE%22%7D&DataSign=x&sign=x&RequestType=102".encode()
    async with edge() as e:
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        status, _, _ = await e.post(feed, body, headers)
        assert status == 400
        assert e.rejected(feed, "bad_form") == 1


async def test_invalid_utf8_in_signature_headers_is_a_4xx() -> None:
    async with edge() as e:
        body = canonical_body()
        headers = {OWN_TIMESTAMP_HEADER: "1\udcff", OWN_SIGNATURE_V2_HEADER: "x"}
        response = await e.client.post(
            "/callbacks/canonical",
            data=body,
            headers={
                k: v.encode("utf-8", "surrogateescape").decode("latin-1")
                for k, v in headers.items()
            },
        )
        assert 400 <= response.status < 500
        assert e.five_xx() == 0


def test_signature_helpers_agree_with_the_documented_sender() -> None:
    """docs/feeds.md's sender example: base64(HMAC-SHA256(secret, "<ts>." + body))."""
    import hashlib
    import hmac

    body, stamp = b'[{"waybill":"ZT1"}]', "1764000000"
    mac = hmac.new(b"canon-secret", stamp.encode() + b"." + body, hashlib.sha256).digest()
    assert timestamped_signature("canon-secret", stamp, body) == base64.b64encode(mac).decode()
