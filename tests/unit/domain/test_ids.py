"""Identifiers never change: they name facts across runs, versions and machines."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from waybill_watch.domain.ids import scan_event_id, scan_ids, stable_id


def test_scan_event_id_is_pinned() -> None:
    """Values computed by the first release; a change here breaks every stored state."""
    text = "  【杭州】已签收 "
    assert (
        scan_event_id("SF123", "SF", "2024-05-06T01:15:00+00:00", "", text)
        == "3242fd4f7687d1e5dea22d5ecdaedc54"
    )
    assert (
        scan_event_id("SF123", "SF", "2024-05-06T01:15:00+00:00", "301", "x")
        == "7c44296f3e51a7e6b62b39630ebbf9f5"
    )
    assert stable_id("seen", "abc", size=8) == "06a5fa32e5642d1c"


@settings(max_examples=300, deadline=None)
@given(parts=st.lists(st.text(max_size=20), min_size=5, max_size=5))
def test_scan_event_id_is_the_stable_id_of_its_parts(parts: list[str]) -> None:
    waybill, courier, when, code, text = parts
    assert scan_event_id(waybill, courier, when, code, text) == stable_id(
        "scan", waybill, courier, when, code, text.strip()
    )


@settings(max_examples=300, deadline=None)
@given(parts=st.lists(st.text(max_size=20), min_size=4, max_size=4))
def test_scan_ids_gives_scan_event_id_with_no_status_code(parts: list[str]) -> None:
    waybill, courier, when, text = parts
    assert scan_ids(waybill, courier)(when, text) == scan_event_id(waybill, courier, when, "", text)
