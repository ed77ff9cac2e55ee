"""Fuzzing: no input makes a parser raise anything but MalformedBody, or verify anything but a
FeedError. ``parser_error`` is the safety net's reason: reaching it means a parser bug."""

from __future__ import annotations

import itertools
from typing import Any
from urllib.parse import quote_plus, unquote_plus

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from waybill_watch.feeds import FEEDS, build_feed
from waybill_watch.feeds.base import FeedConfig, FeedError, MalformedBody, ParseResult
from waybill_watch.feeds.common import form_unquote
from waybill_watch.feeds.encode import (
    canonical_push,
    kdniao_push,
    kuaidi100_push,
    merchant_push,
)

from .helpers import raw_env, trace, waybill
from .vectors import AFTERSHIP_BODY, KDNIAO_REQUEST_DATA, KUAIDI100_PARAM, TRACK17_BODY

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
NAMES = sorted(FEEDS)

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30)
    | st.sampled_from(["2024-05-06 09:15:00", "2024-02-30 10:00:00", "3", "202", "401", "签收"]),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=20,
)

VALID_BODIES: dict[str, str] = {
    "kdniao": kdniao_push(
        [
            waybill(
                "ZT1",
                [
                    trace("2024-05-05 18:01:00", "快件已揽收", "1"),
                    trace("2024-05-06 09:15:00", "已签收"),
                ],
                State="3",
                StateEx="412",
            )
        ],
        "k",
    )[0].decode(),
    "kuaidi100": kuaidi100_push(
        {
            "com": "yunda",
            "nu": "Y1",
            "state": "3",
            "data": [{"context": "签收", "ftime": "2024-05-06 09:15:00"}],
        },
        "s",
        status="abort",
        message="60天无变化",
    )[0].decode(),
    "17track": TRACK17_BODY,
    "aftership": AFTERSHIP_BODY,
    "canonical": canonical_push(
        [
            {
                "waybill": "Y1",
                "courier": "YTO",
                "event_time": "2024-05-06T09:15:00+08:00",
                "received_at": "2024-05-06T09:15:00+08:00",
                "status": "delivered",
                "source_feed": "canonical",
            }
        ],
        None,
    )[0].decode(),
    "merchant": merchant_push(
        {"type": "shipped", "waybill": "Y1", "occurred_at": "2024-05-06T09:15:00+08:00"}, None
    )[0].decode(),
}
# Same structure of the provider documents, for structural mutation.
DOCUMENTS: dict[str, Any] = {
    "kdniao": orjson.loads(KDNIAO_REQUEST_DATA),
    "kuaidi100": orjson.loads(KUAIDI100_PARAM),
    "17track": orjson.loads(TRACK17_BODY),
    "aftership": orjson.loads(AFTERSHIP_BODY),
    "canonical": orjson.loads(VALID_BODIES["canonical"]),
    "merchant": orjson.loads(VALID_BODIES["merchant"]),
}


def _body(feed: str, document: Any) -> str:
    text = orjson.dumps(document).decode()
    if feed == "kdniao":
        return f"RequestData={quote_plus(text)}&DataSign=x&RequestType=101"
    if feed == "kuaidi100":
        return f"param={quote_plus(text)}&sign=x"
    return text


def _parse_only_malformed(feed: str, body: str) -> ParseResult | None:
    try:
        result = build_feed(feed).parse(raw_env(feed, body))
    except MalformedBody as exc:
        assert exc.reason != "parser_error", exc.__cause__
        assert exc.reason and exc.message
        return None
    assert isinstance(result, ParseResult)
    return result


def _mutate(value: Any, data: st.DataObject, depth: int = 0) -> Any:
    if depth > 6 or data.draw(st.integers(0, 9)) == 0:
        return data.draw(json_values)
    if isinstance(value, dict):
        return {
            k: _mutate(v, data, depth + 1)
            for k, v in value.items()
            if data.draw(st.integers(0, 12))
        }
    if isinstance(value, list):
        return [_mutate(v, data, depth + 1) for v in value]
    return value


@pytest.mark.parametrize("feed", NAMES)
def test_all_feeds_parse_their_valid_body(feed: str) -> None:
    result = _parse_only_malformed(feed, VALID_BODIES[feed])
    assert result is not None and (result.updates or result.orders)


@pytest.mark.parametrize("feed", NAMES)
@FUZZ
@given(body=st.text(max_size=300))
def test_random_text(feed: str, body: str) -> None:
    _parse_only_malformed(feed, body)


@pytest.mark.parametrize("feed", NAMES)
@FUZZ
@given(value=json_values)
def test_random_json_documents(feed: str, value: Any) -> None:
    _parse_only_malformed(feed, _body(feed, value))


@pytest.mark.parametrize("feed", NAMES)
@FUZZ
@given(data=st.data())
def test_structurally_mutated_documents(feed: str, data: st.DataObject) -> None:
    _parse_only_malformed(feed, _body(feed, _mutate(DOCUMENTS[feed], data)))


@pytest.mark.parametrize("feed", NAMES)
@FUZZ
@given(data=st.data())
def test_character_mutations_of_valid_bodies(feed: str, data: st.DataObject) -> None:
    body = VALID_BODIES[feed]
    for _ in range(data.draw(st.integers(1, 4))):
        at = data.draw(st.integers(0, len(body)))
        cut = data.draw(st.integers(0, 3))
        body = body[:at] + data.draw(st.text(max_size=3)) + body[at + cut :]
    _parse_only_malformed(feed, body)


@pytest.mark.parametrize("feed", NAMES)
@FUZZ
@given(
    body=st.binary(max_size=300),
    headers=st.dictionaries(st.text(max_size=30), st.text(max_size=60)),
)
def test_verify_raises_only_feed_errors(feed: str, body: bytes, headers: dict[str, str]) -> None:
    for config in (FeedConfig(secret="k"), FeedConfig(), FeedConfig(allow_unsigned=True)):
        try:
            build_feed(feed, config).verify(headers, body)
        except FeedError as exc:
            assert exc.reason and exc.message


@FUZZ
@given(
    value=st.text(max_size=60)
    | st.text(max_size=60).map(lambda t: quote_plus(t))
    | st.lists(
        st.sampled_from(
            [
                *("%E5", "%BF", "%AB", "%", "%2", "+", "\\", "a", "é", "%C3%A9"),
                *("=", "=41", "%3D", "%4g", "%g4", "%%", "\n", "\r", "%0A", "%e5%90%88", "F"),
            ]
        )
    ).map("".join)
)
def test_form_unquote_equals_the_standard_library(value: str) -> None:
    try:
        expected: str | None = unquote_plus(value, errors="strict")
    except UnicodeDecodeError:
        expected = None
    try:
        got: str | None = form_unquote(value)
    except UnicodeDecodeError:
        got = None
    assert got == expected


def _stdlib_or_none(value: str) -> str | None:
    try:
        return unquote_plus(value, errors="strict")
    except UnicodeDecodeError:
        return None


def test_form_unquote_agrees_on_every_short_combination_of_escape_syntax() -> None:
    """Exhaustive over the characters the C-speed path treats specially (``%``, ``=``, CR, LF,
    hex digits, non-hex letters, ``+``), so no corner of quoted-printable syntax leaks out."""
    tokens = ["%", "=", "4", "1", "g", "\n", "\r", "+", "%C3", "%A9", "é", "\\", "%e5%90%88"]
    for size in range(1, 5):
        for combo in itertools.product(tokens, repeat=size):
            value = "".join(combo)
            try:
                got: str | None = form_unquote(value)
            except UnicodeDecodeError:
                got = None
            assert got == _stdlib_or_none(value), value
