"""IngestService: verify → parse → durable write → acknowledge; every outcome counted."""

from collections.abc import Mapping
from datetime import datetime

import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import CollectorRegistry

from waybill_watch.feeds.base import (
    Acknowledgement,
    FeedConfig,
    FeedError,
    MalformedBody,
    ParseResult,
    SignatureInvalid,
)
from waybill_watch.ingest import IngestResult, IngestService
from waybill_watch.metrics import Metrics
from waybill_watch.models.envelope import CaptureEnvelope
from waybill_watch.web import add_routes


class FakeFeed:
    name = "canonical"
    config = FeedConfig()

    def verify(self, headers: Mapping[str, str], body: bytes) -> None:
        if headers.get("x-waybill-watch-signature") != "good":
            raise SignatureInvalid("bad_signature", "signature mismatch")

    def parse(self, envelope: CaptureEnvelope) -> ParseResult:
        if envelope.body == "garbage":
            raise MalformedBody("bad_json", "not JSON")
        return ParseResult()

    def acknowledge(self, error: FeedError | None, now: datetime) -> Acknowledgement:
        status = 200 if error is None else error.http_status
        reason = "" if error is None else error.reason
        return Acknowledgement(status, orjson.dumps({"ok": error is None, "reason": reason}))


class Sink:
    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.written: list[CaptureEnvelope] = []

    async def __call__(self, payload: bytes) -> None:
        if self.fail:
            raise ConnectionError("broker down")
        self.written.append(CaptureEnvelope.model_validate_json(payload))


def _service(sink: Sink, limit: int = 1024) -> tuple[IngestService, Metrics]:
    metrics = Metrics(CollectorRegistry())
    service = IngestService(
        {"canonical": FakeFeed()}, sink, metrics, max_body_bytes=limit, timezone="Asia/Shanghai"
    )
    return service, metrics


def _count(metrics: Metrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


GOOD = {"X-Waybill-Watch-Signature": "good", "Content-Type": "application/json"}


async def test_accepted_request_is_written_then_acknowledged() -> None:
    sink = Sink()
    service, metrics = _service(sink)
    result = await service.handle("canonical", GOOD, b"[]", "application/json")
    assert result.status == 200
    assert orjson.loads(result.body) == {"ok": True, "reason": ""}
    [envelope] = sink.written
    assert envelope.feed == "canonical" and envelope.body == "[]"
    assert envelope.headers == {
        "x-waybill-watch-signature": "good",
        "content-type": "application/json",
    }
    assert envelope.received_at.utcoffset() is not None
    assert _count(metrics, "waybill_watch_callbacks_accepted_total", feed="canonical") == 1


@pytest.mark.parametrize(
    ("feed", "headers", "body", "status", "reason"),
    [
        ("canonical", {}, b"[]", 403, "bad_signature"),
        ("canonical", GOOD, b"garbage", 400, "bad_json"),
        ("canonical", GOOD, b"\xff\xfe", 400, "bad_encoding"),
        ("canonical", GOOD, b"x" * 2000, 413, "body_too_large"),
        ("nope", GOOD, b"[]", 404, "unknown_feed"),
    ],
)
async def test_refusals_are_answered_counted_and_not_written(
    feed: str, headers: dict[str, str], body: bytes, status: int, reason: str
) -> None:
    sink = Sink()
    service, metrics = _service(sink)
    result = await service.handle(feed, headers, body, "application/json")
    assert result.status == status
    assert sink.written == []
    label = feed if feed == "canonical" else "_unknown"
    assert _count(metrics, "waybill_watch_callbacks_rejected_total", feed=label, reason=reason) == 1
    assert _count(metrics, "waybill_watch_callbacks_received_total", feed=label) == 1


async def test_broker_failure_answers_503_so_the_courier_retries() -> None:
    service, metrics = _service(Sink(fail=True))
    result = await service.handle("canonical", GOOD, b"[]", "application/json")
    assert result.status == 503
    assert orjson.loads(result.body)["reason"] == "kafka_unavailable"
    assert (
        _count(
            metrics,
            "waybill_watch_callbacks_rejected_total",
            feed="canonical",
            reason="kafka_unavailable",
        )
        == 1
    )


async def test_undecodable_header_bytes_are_replaced_not_blamed_on_kafka() -> None:
    sink = Sink()
    service, _ = _service(sink)
    headers = {**GOOD, "Content-Type": "application/json\udcff"}
    result = await service.handle("canonical", headers, b"[]", "application/json\udcff")
    assert result.status == 200
    assert sink.written[0].content_type == "application/json\ufffd"


async def test_every_answer_of_the_http_endpoint_is_counted_by_feed_and_code() -> None:
    """``waybill_watch_callback_responses_total`` (worker and ``ingest`` share the routes)."""
    sink = Sink()
    service, metrics = _service(sink)
    app = web.Application()

    async def ready() -> tuple[bool, str]:
        return True, "ok"

    add_routes(app.router, service, metrics.registry, ready)
    async with TestClient(TestServer(app)) as client:
        for feed, headers, body in [
            ("canonical", GOOD, b"[]"),
            ("canonical", GOOD, b"[]"),
            ("canonical", {}, b"[]"),
            ("canonical", GOOD, b"garbage"),
            ("canonical", GOOD, b"x" * 2000),
            ("nope", GOOD, b"[]"),
        ]:
            await (await client.post(f"/callbacks/{feed}", data=body, headers=headers)).read()
        sink.fail = True
        await (await client.post("/callbacks/canonical", data=b"[]", headers=GOOD)).read()

    def answered(feed: str, code: str) -> float:
        return _count(metrics, "waybill_watch_callback_responses_total", feed=feed, code=code)

    assert answered("canonical", "200") == 2
    assert answered("canonical", "403") == 1
    assert answered("canonical", "400") == 1
    assert answered("canonical", "413") == 1
    assert answered("canonical", "503") == 1
    assert answered("_unknown", "404") == 1
    assert answered("nope", "404") == 0  # unknown feeds share one label


async def test_an_answer_the_web_layer_makes_itself_is_counted_too() -> None:
    class Broken(IngestService):
        async def handle(self, *_: object) -> IngestResult:
            raise RuntimeError("a bug")

    metrics = Metrics(CollectorRegistry())
    service = Broken(
        {"canonical": FakeFeed()}, Sink(), metrics, max_body_bytes=1024, timezone="UTC"
    )
    app = web.Application()

    async def ready() -> tuple[bool, str]:
        return True, "ok"

    add_routes(app.router, service, metrics.registry, ready)
    async with TestClient(TestServer(app)) as client:
        response = await client.post("/callbacks/canonical", data=b"[]", headers=GOOD)
        assert response.status == 500
    assert (
        _count(metrics, "waybill_watch_callback_responses_total", feed="canonical", code="500") == 1
    )
