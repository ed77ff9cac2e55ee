"""docs/feeds.md documents every row of every mapping table (it must not drift from the data)."""

from __future__ import annotations

from pathlib import Path

import pytest

from waybill_watch.feeds import (
    aftership_codes,
    couriers,
    kdniao_codes,
    kuaidi100_codes,
    track17_codes,
)
from waybill_watch.feeds.text_rules import SIGN_TYPE_WORDS

DOC = (Path(__file__).resolve().parents[3] / "docs" / "feeds.md").read_text(encoding="utf-8")

CODE_TABLES = {
    "kdniao actions": kdniao_codes.ACTIONS,
    "kdniao alerts": kdniao_codes.ALERTS,
    "kdniao states": kdniao_codes.STATE_CHECK,
    "kuaidi100 states": kuaidi100_codes.STATES,
    "kuaidi100 alerts": kuaidi100_codes.ALERTS,
    "17track sub": track17_codes.SUB_STATUSES,
    "17track main": track17_codes.MAIN_STATUSES,
    "17track stages": track17_codes.STAGES,
    "17track alerts": track17_codes.ALERTS,
    "aftership subtags": aftership_codes.SUBTAGS,
    "aftership tags": aftership_codes.TAGS,
    "aftership tag alerts": aftership_codes.TAG_ALERTS,
    "aftership event alerts": aftership_codes.EVENT_ALERTS,
}


@pytest.mark.parametrize("table", sorted(CODE_TABLES))
def test_every_code_is_documented(table: str) -> None:
    missing = [code for code in CODE_TABLES[table] if f"`{code}`" not in DOC]
    assert not missing, f"{table}: {missing}"


def test_names_messages_couriers_and_words_are_documented() -> None:
    texts = [*kuaidi100_codes.STATUS_NAMES, *(m for m, _ in kuaidi100_codes.ABORT_MESSAGES)]
    texts += [w for _, words in SIGN_TYPE_WORDS for w in words]
    for table in (
        couriers.KUAIDI100,
        couriers.AFTERSHIP,
        couriers.TRACK17_KEYS,
        couriers.TRACK17_NAMES,
    ):
        texts += [f"`{code}` → {courier}" for code, courier in table.items()]
    missing = [t for t in texts if t not in DOC]
    assert not missing, missing
