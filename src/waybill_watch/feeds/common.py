"""Small helpers every feed parser shares: form and JSON reading, field coercion, times.

These sit on the replay hot path, so they avoid pydantic and cache what repeats across
re-pushed traces (time strings).
"""

from __future__ import annotations

from binascii import a2b_qp
from collections.abc import Callable
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, NamedTuple, TypeVar
from urllib.parse import unquote

import orjson

from waybill_watch.feeds.base import FeedError, MalformedBody
from waybill_watch.masking import mask_text
from waybill_watch.models.envelope import CaptureEnvelope
from waybill_watch.timefmt import TimeParseError, parse_local, zone

#: Limits of the canonical wire model (TrackingEvent); longer values are rejected at the edge.
MAX_WAYBILL = 64
MAX_COURIER = 32

R = TypeVar("R")


class FormField(NamedTuple):
    """A form value as it was on the wire (``raw``) and decoded exactly once (``value``)."""

    raw: str
    value: str


def body_text(body: bytes) -> str:
    """The request body as UTF-8 text (what a capture envelope stores)."""
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MalformedBody("bad_encoding", "request body is not UTF-8") from exc


def form_unquote(value: str) -> str:
    """Decode one form value once (``+`` → space, ``%XX`` → byte, UTF-8), strictly.

    The result is ``urllib.parse.unquote_plus(value, errors="strict")``. Percent-decoding of
    Chinese text dominated the Kdniao parse time, so well-formed values take a C-speed path:
    ``%XX`` → ``=XX`` and ``binascii.a2b_qp`` (quoted-printable decoding is the same byte
    mapping). It is taken only where both agree: ASCII text with no ``=``, CR or LF of its own
    (those are QP syntax), and every ``%`` followed by two hex digits (a broken escape leaves an
    ``=`` in the output, a trailing ``%`` is excluded up front). Anything else, and any value
    that is not UTF-8, goes through the standard function.
    """
    value = value.replace("+", " ")
    if "%" not in value:
        return value
    if (
        value.isascii()
        and "=" not in value
        and "\n" not in value
        and "\r" not in value
        and value[-1] != "%"
    ):
        raw = a2b_qp(value.replace("%", "="))
        if b"=" not in raw:
            try:
                return raw.decode("utf-8")
            except UnicodeDecodeError:
                pass
    return unquote(value, errors="strict")


def read_form(body: str) -> dict[str, FormField]:
    """Decode an ``application/x-www-form-urlencoded`` body, each value exactly once.

    Never unescape a value twice: a literal ``+`` in Kdniao's JSON would become a space and
    break the signature. Repeated field names are refused (the signed value must be the one
    parsed).
    """
    fields: dict[str, FormField] = {}
    for part in body.strip().split("&"):
        if not part:
            continue
        raw_name, sep, raw_value = part.partition("=")
        try:
            name = form_unquote(raw_name)
            value = form_unquote(raw_value)
        except UnicodeDecodeError as exc:
            raise MalformedBody("bad_form", "form field is not UTF-8 once decoded") from exc
        if not sep or not name:
            raise MalformedBody("bad_form", "body is not a form (name=value&...)")
        if name in fields:
            raise MalformedBody("bad_form", f"form field {show(name)} appears twice")
        fields[name] = FormField(raw_value, value)
    if not fields:
        raise MalformedBody("bad_form", "empty form body")
    return fields


def form_value(fields: dict[str, FormField], name: str) -> str:
    """A required form field's decoded value."""
    found = fields.get(name)
    if found is None:
        raise MalformedBody("missing_field", f"form field {name} is missing")
    return found.value


def load_json(text: str | bytes, what: str) -> Any:
    """Parse JSON, turning every failure into ``MalformedBody('bad_json')``."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise MalformedBody("bad_json", f"{what} is not valid JSON: {exc.msg}") from exc


def load_object(text: str | bytes, what: str) -> dict[str, Any]:
    """Parse a JSON object."""
    value = load_json(text, what)
    if not isinstance(value, dict):
        raise MalformedBody("bad_shape", f"{what} is not a JSON object")
    return value


def as_text(value: object) -> str:
    """A provider string field: strings as is, numbers as their text, anything else empty."""
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return ""


def as_dict(value: object) -> dict[str, Any]:
    """A provider object field, or an empty dict when absent or of the wrong type."""
    return value if isinstance(value, dict) else {}


def as_list(value: object) -> list[Any]:
    """A provider array field, or an empty list when absent or of the wrong type."""
    return value if isinstance(value, list) else []


def show(value: str, limit: int = 40) -> str:
    """Provider text quoted for an error message: shortened and masked."""
    short = value if len(value) <= limit else value[:limit] + "…"
    return repr(mask_text(short))


class EventTime(NamedTuple):
    """An aware event time and its UTC ISO text (the instant's identity in scan ids)."""

    at: datetime
    key: str


_event_time = EventTime._make  # C-level tuple construction (NamedTuple() is Python-level)


@lru_cache(maxsize=65536)
def event_time(text: str, tz: str) -> EventTime:
    """Read a provider time; naive times are in ``tz``. Raises TimeParseError, never guesses.

    Cached: every push re-sends the whole trace, so the same strings come back constantly.
    The cache cannot hold every instant of a long capture, so a miss is kept cheap too: the
    usual ``yyyy-MM-dd HH:mm:ss`` skips ``parse_local``'s clean-up and ``datetime.replace``
    (slow in CPython) and derives the UTC text from the offset; same values as the slow path.
    """
    if text[:1].isdigit() and text[-1:].isdigit() and "/" not in text:
        # Nothing for parse_local to strip or rewrite: fromisoformat sees the same string.
        try:
            naive = datetime.fromisoformat(text)
        except ValueError:
            naive = None
        if naive is not None and naive.tzinfo is None:
            at = datetime.combine(naive.date(), naive.time(), zone(tz))
            offset = at.utcoffset()
            if offset is not None:
                return _event_time((at, (naive - offset).isoformat() + "+00:00"))
    at = parse_local(text, tz)
    return EventTime(at, at.astimezone(UTC).isoformat())


def try_event_time(text: str, tz: str) -> EventTime | str:
    """``event_time`` or, when the text is not a real instant, an error message."""
    if not text.strip():
        return "time is empty"
    try:
        return event_time(text, tz)
    except TimeParseError:
        return f"impossible or unreadable time {show(text)}"
    except (OverflowError, ValueError):  # e.g. year 9999 pushed out of range by the offset
        return f"time out of range {show(text)}"


class WaybillProblem(NamedTuple):
    """Why a waybill/courier pair is unusable: a reject reason code and a message."""

    reason: str  # ``missing_field`` or ``bad_waybill``
    message: str


def waybill_problem(waybill: str, courier: str) -> WaybillProblem | None:
    """Why a waybill/courier pair cannot become canonical events, if it cannot."""
    if not waybill:
        return WaybillProblem("missing_field", "waybill number is missing")
    if not courier:
        return WaybillProblem("missing_field", "courier code is missing")
    if len(waybill) > MAX_WAYBILL:
        return WaybillProblem("bad_waybill", f"waybill number longer than {MAX_WAYBILL} characters")
    if len(courier) > MAX_COURIER:
        return WaybillProblem("bad_waybill", f"courier code longer than {MAX_COURIER} characters")
    return None


def run_guarded(feed: str, parse: Callable[[CaptureEnvelope], R], envelope: CaptureEnvelope) -> R:
    """Run a parser so that no input can make it raise anything but ``MalformedBody``.

    The explicit checks in each parser are the real contract; this net only keeps a parser bug
    from crashing a consumer. Its reason ``parser_error`` is never expected (the fuzz tests
    assert that) and the message names the exception type, not the input.
    """
    try:
        return parse(envelope)
    except MalformedBody:
        raise
    except FeedError as exc:
        raise MalformedBody(exc.reason, exc.message) from exc
    except Exception as exc:
        raise MalformedBody(
            "parser_error", f"{feed} parser failed on this body ({type(exc).__name__})"
        ) from exc
