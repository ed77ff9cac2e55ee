"""The hot-path shortcuts give exactly what the plain code gives, for any input."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from waybill_watch.feeds.common import EventTime, event_time
from waybill_watch.timefmt import parse_local

ZONES = ["Asia/Shanghai", "UTC", "America/New_York", "Europe/London", "Australia/Lord_Howe"]


def _reference(text: str, tz: str) -> EventTime | type[Exception]:
    try:
        at = parse_local(text, tz)
        return EventTime(at, at.astimezone(UTC).isoformat())
    except Exception as exc:  # the exception type is part of the behaviour
        return type(exc)


def _fast(text: str, tz: str) -> EventTime | type[Exception]:
    try:
        return event_time.__wrapped__(text, tz)
    except Exception as exc:
        return type(exc)


def _same(text: str, tz: str) -> None:
    want, got = _reference(text, tz), _fast(text, tz)
    if isinstance(want, EventTime) and isinstance(got, EventTime):
        assert got.key == want.key, text
        assert got.at == want.at and got.at.tzinfo == want.at.tzinfo, text
        assert (got.at.fold, got.at.isoformat()) == (want.at.fold, want.at.isoformat()), text
    else:
        assert got == want, text


naive_times = st.datetimes(
    min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=st.none()
)
# Around the transitions of the zones above (gaps and folds), where offsets are tricky.
transitions = st.sampled_from(
    [
        *(datetime(2024, 3, 10, 2), datetime(2024, 11, 3, 1), datetime(2024, 3, 31, 1)),
        *(datetime(2024, 10, 27, 1), datetime(2024, 4, 7, 1, 30), datetime(1988, 4, 17, 2)),
    ]
).flatmap(lambda t: st.integers(-7200, 7200).map(lambda s: t + timedelta(seconds=s)))


@settings(max_examples=400, deadline=None)
@given(
    when=naive_times | transitions,
    tz=st.sampled_from(ZONES),
    sep=st.sampled_from([" ", "T"]),
    spec=st.sampled_from(["seconds", "milliseconds", "microseconds", "minutes"]),
)
def test_event_time_of_local_times_matches_parse_local(
    when: datetime, tz: str, sep: str, spec: str
) -> None:
    _same(when.isoformat(sep=sep, timespec=spec), tz)


@settings(max_examples=300, deadline=None)
@given(
    when=naive_times,
    offset=st.integers(-14 * 60, 14 * 60).map(lambda m: timedelta(minutes=m)),
    tz=st.sampled_from(ZONES),
)
def test_event_time_with_an_explicit_offset_matches_parse_local(
    when: datetime, offset: timedelta, tz: str
) -> None:
    from datetime import timezone

    _same(when.replace(tzinfo=timezone(offset)).isoformat(sep=" "), tz)


@settings(max_examples=300, deadline=None)
@given(text=st.text(alphabet="0123456789-: T/.+Z\t", max_size=26), tz=st.sampled_from(ZONES))
def test_event_time_of_odd_text_matches_parse_local(text: str, tz: str) -> None:
    _same(text, tz)


def test_event_time_edge_cases_match_parse_local() -> None:
    for text in [
        "2024-05-06 09:15:00",
        " 2024-05-06 09:15:00",
        "2024-05-06 09:15:00 ",
        "2024/05/06 09:15:00",
        "2024-02-30 09:15:00",
        "0001-01-01 00:00:00",
        "9999-12-31 23:59:59",
        "2024-05-06 24:00:00",
        "2024-05-06",
        "20240506T091500",
        "2024-05-06 09:15:00Z",
        "2024-05-06 09:15:00+08:00",
        "2024-11-03 01:30:00",
        "2024-03-10 02:30:00",
    ]:
        for tz in ZONES:
            _same(text, tz)
