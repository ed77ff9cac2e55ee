"""HTTP fuzz of ``POST /callbacks/{feed}`` on one running worker.

Random bytes, random forms, random JSON, mutated valid bodies (bytes flipped, truncated,
duplicated; signature headers dropped or altered) and correctly *signed* random or mutated
documents (so the parsers, not only the signature checks, see them). Whatever arrives: never a
5xx, always the provider's acknowledgement format, every request counted once, every accepted
envelope normalised (bad parts on the DLQ), and the worker still ready afterwards.
"""

from __future__ import annotations

import http.client
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import parse_qs, urlencode
from zoneinfo import ZoneInfo

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from waybill_watch.feeds import encode
from waybill_watch.feeds.signing import (
    OWN_SIGNATURE_HEADER,
    hmac_sha256_base64,
    kdniao_data_sign,
    kuaidi100_sign,
    track17_sign,
)

SHANGHAI = ZoneInfo("Asia/Shanghai")
MAX_BODY = 4096
MAX_EXAMPLES = 150
FEEDS = ("kdniao", "kuaidi100", "17track", "aftership", "canonical", "merchant")
UNKNOWN = "nope"
SECRETS = {
    "kdniao": "fz-kdniao-app-key",
    "kuaidi100": "fz-kuaidi100-salt",
    "17track": "fz-17track-key",
    "aftership": "fz-aftership-secret",
    "canonical": "fz-canonical-secret",
    "merchant": "fz-merchant-secret",
}
ENV = {
    "WAYBILL_WATCH_KDNIAO_APP_KEY": SECRETS["kdniao"],
    "WAYBILL_WATCH_KUAIDI100_SALT": SECRETS["kuaidi100"],
    "WAYBILL_WATCH_17TRACK_KEY": SECRETS["17track"],
    "WAYBILL_WATCH_AFTERSHIP_SECRET": SECRETS["aftership"],
    "WAYBILL_WATCH_CANONICAL_SECRET": SECRETS["canonical"],
    "WAYBILL_WATCH_MERCHANT_SECRET": SECRETS["merchant"],
    "WAYBILL_WATCH_MAX_BODY_BYTES": str(MAX_BODY),
}
#: The header carrying each header-signed feed's signature.
SIGNATURE_HEADER = {
    "17track": "sign",
    "aftership": "aftership-hmac-sha256",
    "canonical": OWN_SIGNATURE_HEADER,
    "merchant": OWN_SIGNATURE_HEADER,
}
T0 = datetime(2024, 5, 6, 9, 15, tzinfo=SHANGHAI)


@pytest.fixture(scope="module")
async def worker(module_worker_factory: Callable[..., Any]) -> Any:
    running = module_worker_factory(**ENV)
    await running.wait_ready()
    return running


# --- valid documents: what each feed's signature covers ---------------------------------------


def _kd_trace(minutes: int, text: str, action: str) -> dict[str, str]:
    at = T0.replace(minute=0).timestamp() + minutes * 60
    when = encode.local_time_text(datetime.fromtimestamp(at, SHANGHAI))
    return {"AcceptTime": when, "AcceptStation": text, "Action": action, "Location": "杭州市"}


def _canonical_event(waybill: str, status: str, minutes: int, **extra: Any) -> dict[str, Any]:
    at = datetime.fromtimestamp(T0.timestamp() + minutes * 60, SHANGHAI)
    return {
        "waybill": waybill,
        "courier": "SF",
        "event_time": at,
        "received_at": at,
        "status": status,
        "description": "到达转运中心",
        "source_feed": "canonical",
        **extra,
    }


def _valid_requests() -> list[tuple[str, encode.Encoded]]:
    """One valid (signed) request per feed, plus a canonical push with one invalid item."""
    kdniao = encode.kdniao_push(
        [
            {
                "ShipperCode": "ZTO",
                "LogisticCode": "FZ0000000001",
                "State": "2",
                "StateEx": "403",
                "Traces": [
                    _kd_trace(0, "【上海青浦】快件已揽收", "1"),
                    _kd_trace(60, "【杭州转运中心】快件已到达", "2"),
                    _kd_trace(120, "【杭州西湖】派件异常，电话13812345678无人接听", "405"),
                ],
            }
        ],
        SECRETS["kdniao"],
    )
    kuaidi100 = encode.kuaidi100_push(
        {
            "com": "zhongtong",
            "nu": "FZ0000000002",
            "state": "0",
            "data": [
                {"context": "【杭州】派件中", "ftime": "2024-05-06 10:15:00", "statusCode": "5"},
                {"context": "【上海】已揽收", "ftime": "2024-05-06 09:15:00", "statusCode": "1"},
            ],
        },
        SECRETS["kuaidi100"],
    )
    track17 = encode.track17_push(
        {
            "number": "FZ0000000003",
            "carrier": 3011,
            "track_info": {
                "tracking": {
                    "providers": [
                        {
                            "provider": {"key": 3011, "name": "China Post"},
                            "events": [
                                {
                                    "time_iso": "2024-05-06T09:15:00+08:00",
                                    "description": "Arrived",
                                    "sub_status": "InTransit_Arrival",
                                }
                            ],
                        }
                    ]
                }
            },
        },
        SECRETS["17track"],
    )
    aftership = encode.aftership_push(
        {
            "tracking_number": "FZ0000000004",
            "slug": "sf-express",
            "tag": "Exception",
            "checkpoints": [
                {
                    "checkpoint_time": "2024-05-06T09:15:00",
                    "message": "Damaged",
                    "subtag": "Exception_004",
                }
            ],
        },
        SECRETS["aftership"],
        ts=1714960500,
    )
    canonical = encode.canonical_push(
        [_canonical_event("FZ0000000005", "in_transit", 0)], SECRETS["canonical"]
    )
    partial = encode.canonical_push(
        [
            _canonical_event("FZ0000000006", "in_transit", 0),
            _canonical_event("FZ0000000006", "teleported", 5),  # one bad item → the DLQ
        ],
        SECRETS["canonical"],
    )
    merchant = encode.merchant_push(
        [
            {
                "type": "shipped",
                "waybill": "FZ0000000007",
                "courier": "YTO",
                "occurred_at": "2024-05-06T09:00:00.000+08:00",
            },
            {"type": "receipt_confirmed", "waybill": "FZ0000000007"},  # no time → the DLQ
        ],
        SECRETS["merchant"],
    )
    return [
        ("kdniao", kdniao),
        ("kuaidi100", kuaidi100),
        ("17track", track17),
        ("aftership", aftership),
        ("canonical", canonical),
        ("canonical", partial),
        ("merchant", merchant),
    ]


VALID = _valid_requests()


def document_of(feed: str, body: bytes) -> str:
    """The text a feed's signature covers: Kdniao's RequestData, Kuaidi100's param, else
    the body."""
    if feed in ("kdniao", "kuaidi100"):
        return parse_qs(body.decode(), keep_blank_values=True)[
            "RequestData" if feed == "kdniao" else "param"
        ][0]
    return body.decode()


def signed(feed: str, document: str, request_type: str = "102") -> encode.Encoded:
    """``document`` sent to ``feed`` with a correct signature (whatever it contains)."""
    secret = SECRETS[feed]
    if feed == "kdniao":
        form = [
            ("RequestData", document),
            ("DataSign", kdniao_data_sign(document, secret)),
            ("RequestType", request_type),
        ]
        return urlencode(form).encode(), {"content-type": encode.FORM_TYPE}
    if feed == "kuaidi100":
        form = [("param", document), ("sign", kuaidi100_sign(document, secret))]
        return urlencode(form).encode(), {"content-type": encode.FORM_TYPE}
    body = document.encode("utf-8", "surrogatepass")
    sign = track17_sign(body, secret) if feed == "17track" else hmac_sha256_base64(secret, body)
    return body, {"content-type": encode.JSON_TYPE, SIGNATURE_HEADER[feed]: sign}


# --- strategies -------------------------------------------------------------------------------

feeds = st.sampled_from(FEEDS)
ascii_text = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=60)
content_types = st.sampled_from(
    [encode.FORM_TYPE, encode.JSON_TYPE, "text/plain", "application/octet-stream", ""]
)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**53), 2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                ["event", "data", "msg", "waybill", "status", "Data", "Traces", "lastResult", "nu"]
            )
            | st.text(max_size=8),
            inner,
            max_size=5,
        )
    ),
    max_leaves=25,
)


@st.composite
def mutated(draw: st.DrawFn, data: bytes) -> bytes:
    """``data`` with a few bytes flipped, cut, duplicated, inserted or deleted."""
    out = bytearray(data)
    for _ in range(draw(st.integers(0, 4))):
        kind = draw(st.sampled_from(["flip", "truncate", "duplicate", "insert", "delete"]))
        at = draw(st.integers(0, max(len(out) - 1, 0)))
        if kind == "flip" and out:
            out[at] ^= draw(st.integers(1, 255))
        elif kind == "truncate":
            del out[at:]
        elif kind == "duplicate":
            out[at:at] = out[at : at + draw(st.integers(1, 3000))]
        elif kind == "insert":
            out[at:at] = draw(st.binary(min_size=1, max_size=8))
        elif kind == "delete":
            del out[at : at + draw(st.integers(1, 40))]
    return bytes(out)


@dataclass
class Request:
    """One fuzz request."""

    feed: str
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


@st.composite
def random_request(draw: st.DrawFn) -> Request:
    """Random bytes, a random form or random JSON, with or without a bogus signature."""
    feed = draw(feeds | st.just(UNKNOWN))
    body = draw(
        st.one_of(
            st.binary(max_size=1500),
            st.lists(
                st.tuples(
                    st.sampled_from(["RequestData", "DataSign", "RequestType", "param", "sign"])
                    | st.text(max_size=8),
                    st.text(max_size=200),
                ),
                max_size=5,
            ).map(lambda pairs: urlencode(pairs).encode()),
            json_values.map(orjson.dumps),
        )
    )
    headers = {"content-type": draw(content_types)}
    if feed in SIGNATURE_HEADER and draw(st.booleans()):
        headers[SIGNATURE_HEADER[feed]] = draw(ascii_text)
    return Request(feed, body, headers)


@st.composite
def mutated_request(draw: st.DrawFn) -> Request:
    """A valid request with its bytes and/or headers damaged."""
    feed, (body, headers) = draw(st.sampled_from(VALID))
    headers = dict(headers)
    body = draw(mutated(body))
    header_fault = draw(st.sampled_from(["keep", "drop", "alter", "content-type"]))
    if feed in SIGNATURE_HEADER and header_fault == "drop":
        headers.pop(SIGNATURE_HEADER[feed])
    elif feed in SIGNATURE_HEADER and header_fault == "alter":
        value = headers[SIGNATURE_HEADER[feed]]
        at = draw(st.integers(0, len(value) - 1))
        headers[SIGNATURE_HEADER[feed]] = value[:at] + draw(ascii_text) + value[at + 1 :]
    elif header_fault == "content-type":
        headers["content-type"] = draw(content_types)
    return Request(feed, body, headers)


@st.composite
def signed_request(draw: st.DrawFn) -> Request:
    """A correctly signed document: random JSON, or a valid document with bytes damaged (so
    the parsers see it, not only the signature check)."""
    if draw(st.booleans()):
        feed = draw(feeds)
        document = orjson.dumps(draw(json_values)).decode()
    else:
        feed, (body, _) = draw(st.sampled_from(VALID))
        damaged = draw(mutated(document_of(feed, body).encode()))
        document = damaged.decode("utf-8", "replace")
    request_type = draw(st.sampled_from(["102", "101", "107", "999"]))
    body, headers = signed(feed, document, request_type)
    return Request(feed, body, headers)


requests = st.one_of(random_request(), mutated_request(), signed_request())


# --- HTTP and accounting ----------------------------------------------------------------------


def post(port: int, request: Request) -> tuple[int, bytes]:
    """One request on a fresh connection (a refused body may leave the old one unusable)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        connection.request(
            "POST", f"/callbacks/{request.feed}", body=request.body, headers=request.headers
        )
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def check_answer(request: Request, status: int, answer: bytes) -> None:
    """Never 5xx; a known feed always answers in its provider's format."""
    assert status < 500, (status, answer, request)
    if request.feed == UNKNOWN:
        assert status == 404
        return
    ack = orjson.loads(answer)
    ok = {"kdniao": "Success", "kuaidi100": "result"}.get(request.feed, "ok")
    assert ack[ok] is (status == 200), (status, ack, request)
    assert status in (200, 400, 401, 403, 413), (status, ack, request)


@dataclass
class Tally:
    """What the fuzz sent and what it was told."""

    sent: int = 0
    by_status: dict[int, int] = field(default_factory=dict)

    def add(self, status: int) -> None:
        self.sent += 1
        self.by_status[status] = self.by_status.get(status, 0) + 1


RECEIVED = "waybill_watch_callbacks_received_total"
ACCEPTED = "waybill_watch_callbacks_accepted_total"
REJECTED = "waybill_watch_callbacks_rejected_total"
NORMALIZED = "waybill_watch_envelopes_normalized_total"
DLQ = "waybill_watch_dlq_records_total"


async def test_random_and_mutated_callbacks_never_break_the_worker(worker: Any) -> None:
    raw_topic = worker.topic("tracking.raw")
    before = {name: await worker.metric(name) for name in (RECEIVED, ACCEPTED, REJECTED)}
    tally = Tally()

    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(requests)
    def fuzz(request: Request) -> None:
        status, answer = post(worker.port, request)
        tally.add(status)
        check_answer(request, status, answer)

    fuzz()

    received = await worker.metric(RECEIVED) - before[RECEIVED]
    accepted = await worker.metric(ACCEPTED) - before[ACCEPTED]
    rejected = await worker.metric(REJECTED) - before[REJECTED]
    assert tally.sent >= MAX_EXAMPLES
    assert received == tally.sent
    assert accepted + rejected == received
    assert accepted == tally.by_status.get(200, 0)
    assert accepted >= 7, f"too few valid requests to exercise the normaliser: {tally}"
    assert 400 in tally.by_status and 403 in tally.by_status and 413 in tally.by_status

    # Every accepted envelope is normalised; what ingest accepted the normaliser can read.
    normalized = await worker.wait_metric(NORMALIZED, lambda v: v >= accepted)
    assert normalized == accepted
    assert await worker.metric(NORMALIZED, outcome="rejected") == 0
    partial = await worker.metric(NORMALIZED, outcome="partial")
    assert partial >= 1, "the pushes with invalid items were accepted, their items rejected"
    # ... and their rejected parts are on the DLQ, as counted.
    dead = await worker.metric(DLQ, source=raw_topic)
    assert dead >= partial
    letters = await worker.read_topic(
        "tracking.dlq",
        until=lambda rs: len([r for r in rs if r["source_topic"] == raw_topic]) >= dead,
    )
    assert len([r for r in letters if r["source_topic"] == raw_topic]) == dead
    assert {r["reason"] for r in letters} <= {
        "invalid_event",
        "invalid_order",
        "bad_time",
        "bad_shape",
        "missing_field",
        "bad_waybill",
    }, letters

    status, body = await worker.get("/readyz")
    assert status == 200, body
    assert worker.proc.poll() is None


def post_raw_header(port: int, request: Request, name: str, value: bytes) -> tuple[int, bytes]:
    """``request`` with header ``name`` set to raw bytes (http.client sends them as they are)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        connection.putrequest("POST", f"/callbacks/{request.feed}")
        for key, text in request.headers.items():
            if key != name:
                connection.putheader(key, text)
        connection.putheader(name, value)
        connection.putheader("content-length", str(len(request.body)))
        connection.endheaders(request.body)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


@pytest.mark.parametrize(
    ("feed", "header", "value"),
    [
        ("kdniao", "sign", b"\xe9\x80"),  # a header Kdniao does not use, kept for replay
        ("canonical", "content-type", b"application/json; x=\xe9"),
    ],
)
async def test_a_header_that_is_not_utf8_never_gets_a_5xx(
    worker: Any, feed: str, header: str, value: bytes
) -> None:
    _, (body, headers) = next(v for v in VALID if v[0] == feed)

    status, answer = post_raw_header(worker.port, Request(feed, body, headers), header, value)

    # Kafka is fine: this request can be stored (header cleaned) or refused, never retried.
    assert status in (200, 400), (status, answer)
