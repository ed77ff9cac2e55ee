"""Messages in both languages, and each channel's body format and size limit."""

from __future__ import annotations

from datetime import timedelta
from email import message_from_bytes

import orjson
import pytest

from waybill_watch.notify import core
from waybill_watch.notify.channels import dingtalk, email, feishu, webhook, wecom
from waybill_watch.notify.render import plain_text, render, render_batch
from waybill_watch.notify.rules import EmailChannel
from waybill_watch.notify.signing import feishu_sign

from .helpers import T0, case_event, event

URL = "http://cases.example:6067"
TZ = "Asia/Shanghai"


def notice():  # type: ignore[no-untyped-def]
    return core.notice_for(event(), URL)


def test_chinese_message_says_what_where_evidence_next_step_and_link() -> None:
    m = render(notice(), "zh", TZ)
    assert m.title == "【严重】签收未收到 · 新发现"
    assert m.summary == "JDVA00353556371：签收未收到新发现（买家报告未收到）"
    assert ("运单", "JDVA00353556371") in m.fields
    assert ("快递", "JD") in m.fields
    assert ("网点", "石家庄长安区建设路营业部") in m.fields
    assert ("商家", "shop-03") in m.fields
    assert m.evidence[0].startswith("2026-11-04 08:57 已签收 【石家庄长安区建设路营业部】 本人签收")
    assert m.evidence[1].endswith("买家报告未收到")
    assert m.next_step == "联系收件人（核实代签、快递柜、门卫、邻居）（截止 2026-11-05 10:49）"
    assert m.link.startswith(URL + "/cases/C") and m.link_label == "打开工单"


def test_english_message() -> None:
    m = render(notice(), "en", TZ)
    assert m.title == "[CRITICAL] Signed, not received — opened"
    assert m.summary == "JDVA00353556371: Signed, not received opened (buyer reported not received)"
    assert ("Waybill", "JDVA00353556371") in m.fields
    assert m.evidence[0].startswith("2026-11-04 08:57 delivered at 石家庄长安区建设路营业部")
    assert m.next_step == "Contact the recipient (due 2026-11-05 10:49)"
    assert m.link_label == "Open the case"


@pytest.mark.parametrize(
    ("language", "title", "summary"),
    [
        (
            "zh",
            "【严重】签收未收到 · 步骤已超时",
            "JDVA00353556371 的工单（签收未收到）：步骤已超时",
        ),
        (
            "en",
            "[CRITICAL] Signed, not received — step overdue",
            "Case for JDVA00353556371 (Signed, not received): step overdue",
        ),
    ],
)
def test_case_events_in_both_languages(language: str, title: str, summary: str) -> None:
    m = render(core.notice_for(case_event(), URL), language, TZ)  # type: ignore[arg-type]
    assert (m.title, m.summary) == (title, summary)
    assert m.next_step is not None and "2026-11-05 10:49" in m.next_step


def digest_of(n: int):  # type: ignore[no-untyped-def]
    notices = [
        core.notice_for(
            event(
                "transit_stall",
                waybill=f"YT{i:013d}",
                severity="warning",
                at=T0 + timedelta(minutes=i),
                actions=False,
            ),
            URL,
        )
        for i in range(n)
    ]
    return notices, render_batch(notices, "zh", TZ, "d-test")


def test_digest_title_counts_and_lists_every_notice() -> None:
    _, batch = digest_of(3)
    assert batch.is_digest
    assert batch.title == "【预警】3 条通知汇总（2026-11-05 08:49 至 2026-11-05 08:51）"
    text = plain_text(batch)
    assert all(f"YT{i:013d}" in text for i in range(3))
    assert text.endswith("消息编号: d-test")


def test_wecom_markdown_fits_4096_bytes_and_says_what_was_left_out() -> None:
    _, batch = digest_of(60)
    data = orjson.loads(wecom.body(batch))
    content = data["markdown"]["content"]
    assert data["msgtype"] == "markdown"
    assert len(content.encode()) <= wecom.LIMIT_BYTES
    assert "条未显示" in content and content.endswith("消息编号: d-test")


def test_dingtalk_markdown_with_keyword() -> None:
    batch = render_batch([notice()], "zh", TZ, "d1")
    data = orjson.loads(dingtalk.body(batch, keyword="包裹"))
    assert data["msgtype"] == "markdown"
    assert data["markdown"]["title"].startswith("包裹 【严重】")
    assert data["markdown"]["text"].startswith("### 包裹 【严重】签收未收到")
    assert "[打开工单](http://cases.example:6067/cases/C" in data["markdown"]["text"]


def test_feishu_card_is_signed_and_coloured() -> None:
    batch = render_batch([notice()], "en", TZ, "d1")
    data = orjson.loads(feishu.body(batch, "demo", 1599360473))
    assert data["timestamp"] == "1599360473"
    assert data["sign"] == feishu_sign("demo", 1599360473)
    assert data["msg_type"] == "interactive"
    assert data["card"]["header"]["template"] == "red"
    assert data["card"]["header"]["title"]["content"] == batch.title
    assert "[Open the case](" in data["card"]["elements"][0]["content"]
    unsigned = orjson.loads(feishu.body(batch, None, 1))
    assert "sign" not in unsigned and "timestamp" not in unsigned


def test_webhook_body_carries_the_original_events() -> None:
    n = notice()
    batch = render_batch([n], "en", TZ, "d1")
    data = orjson.loads(webhook.body(batch, [n]))
    assert data["delivery_id"] == "d1" and data["digest"] is False
    assert data["events"][0]["event"]["anomaly_id"] == n.event["anomaly_id"]
    assert data["events"][0]["case_url"] == n.case_url
    assert webhook.body(batch, [n]) == webhook.body(batch, [n])  # same bytes on every try


def test_email_has_text_and_escaped_html_and_the_delivery_id() -> None:
    n = core.notice_for(event(merchant="<b>shop</b>"), URL)
    batch = render_batch([n], "zh", TZ, "d42")
    config = EmailChannel.model_validate(
        {"type": "email", "host": "h", "from": "a@example.com", "to": ["b@example.com"]}
    )
    msg = message_from_bytes(email.message(config, batch).as_bytes())
    assert msg["Message-ID"] == "<d42@waybill-watch>"
    assert msg["X-Waybill-Watch-Delivery"] == "d42"
    parts = {
        p.get_content_type(): p.get_payload(decode=True).decode()
        for p in msg.walk()
        if not p.is_multipart()
    }
    assert "运单: JDVA00353556371" in parts["text/plain"]
    assert "&lt;b&gt;shop&lt;/b&gt;" in parts["text/html"]
    assert "<b>shop</b>" not in parts["text/html"]
