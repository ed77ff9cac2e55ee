"""Notices into words, in Chinese or English: the title, what happened, to which waybill,
site and courier, the evidence in a few lines, the next SOP step with its due time, and the
case page. Channels lay these out in their own markup; the words are decided once, here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from waybill_watch.notify.model import Fact, Notice
from waybill_watch.notify.rules import Language
from waybill_watch.timefmt import TimeParseError, parse_rfc3339, zone

TYPES: dict[str, tuple[str, str]] = {
    "delivery_exception": ("派送异常", "Delivery exception"),
    "suspicious_signature": ("可疑签收", "Suspicious signature"),
    "signed_not_received": ("签收未收到", "Signed, not received"),
    "status_regression": ("状态回退", "Status regression"),
    "locker_uncollected": ("快递柜/驿站超时未取", "Uncollected from locker"),
    "transit_stall": ("运输停滞", "Stalled in transit"),
    "no_first_scan": ("发货后无揽收", "No first scan"),
    "delivery_overdue": ("超时未送达", "Delivery overdue"),
    "bulk_signing": ("批量签收", "Bulk signing"),
    "feed_silence": ("轨迹推送中断", "Courier feed silent"),
    "site_stall_spike": ("网点大面积停滞", "Site stall spike"),
}
STATUSES = {
    "open": ("新发现", "opened"),
    "updated": ("有更新", "updated"),
    "resolved": ("已解决", "resolved"),
}
SEVERITIES = {
    "info": ("提示", "INFO"),
    "warning": ("预警", "WARNING"),
    "high": ("高", "HIGH"),
    "critical": ("严重", "CRITICAL"),
}
CASE_EVENTS = {
    "opened": ("工单已创建", "case opened"),
    "step_due": ("步骤即将到期", "step due soon"),
    "step_overdue": ("步骤已超时", "step overdue"),
    "step_done": ("步骤已完成", "step done"),
    "closed": ("工单已关闭", "case closed"),
}
STEPS = {
    "contact_recipient": ("联系收件人（核实代签、快递柜、门卫、邻居）", "Contact the recipient"),
    "request_sign_proof": (
        "向快递客服索取签收记录并要求调查",
        "Ask the courier for the signing record",
    ),
    "escalate_platform": ("携证据向电商平台申报", "Report to the platform with the evidence"),
    "escalate_regulator": ("向邮政管理部门申诉", "Complain to the postal regulator"),
}
REASONS = {
    "failed_attempt": ("投递失败", "failed attempt"),
    "exception": ("异常件", "exception scan"),
    "rejected": ("拒收", "rejected"),
    "returning": ("退回中", "returning"),
    "no_delivery_scan": ("签收前无派送扫描", "no delivery scan before signing"),
    "city_mismatch": ("签收城市与收货城市不符", "signed in another city"),
    "odd_hours": ("深夜签收", "signed at night"),
    "not_received_reported": ("买家报告未收到", "buyer reported not received"),
    "after_delivery": ("签收后又有运输扫描", "scans after delivery"),
    "site_loop": ("网点回环", "site loop"),
    "uncollected": ("超时未取", "not collected"),
    "courier_reported": ("快递公司报告", "reported by the courier"),
    "transit": ("运输中长时间无更新", "no update in transit"),
    "last_mile": ("派送中长时间无更新", "no update out for delivery"),
    "no_scan": ("发货后无扫描", "no scan after shipping"),
    "promise_passed": ("已过承诺送达时间", "promised date passed"),
    "recipient_signatures": ("短时间内大量本人签收", "many recipient signatures at once"),
    "no_updates": ("长时间无轨迹推送", "no updates"),
    "stalls_open": ("停滞件过多", "many stalled parcels"),
}
SCAN_STATUSES = {
    "info_received": ("已下单", "info received"),
    "picked_up": ("已揽收", "picked up"),
    "in_transit": ("运输中", "in transit"),
    "out_for_delivery": ("派送中", "out for delivery"),
    "available_for_pickup": ("待取件", "available for pickup"),
    "delivered": ("已签收", "delivered"),
    "failed_attempt": ("投递失败", "failed attempt"),
    "exception": ("异常", "exception"),
    "rejected": ("拒收", "rejected"),
    "returning": ("退回中", "returning"),
    "returned": ("已退回", "returned"),
    "customs": ("清关", "customs"),
}
SIGN_TYPES = {
    "recipient": ("本人签收", "signed by recipient"),
    "proxy": ("代签", "signed by proxy"),
    "locker": ("快递柜", "locker"),
    "station": ("驿站", "pickup station"),
    "unknown": ("签收方式未知", "sign type unknown"),
}
ORDER_TYPES = {
    "shipped": ("已发货", "shipped"),
    "receipt_confirmed": ("买家确认收货", "receipt confirmed"),
    "not_received_reported": ("买家报告未收到", "reported not received"),
}
LABELS = {
    "waybill": ("运单", "Waybill"),
    "courier": ("快递", "Courier"),
    "site": ("网点", "Site"),
    "merchant": ("商家", "Merchant"),
    "subject": ("对象", "Subject"),
    "detected": ("时间", "When"),
    "evidence": ("证据", "Evidence"),
    "next_step": ("下一步", "Next step"),
    "due": ("截止", "due"),
    "open_case": ("打开工单", "Open the case"),
    "delivery": ("消息编号", "Delivery id"),
    "outcome": ("结果", "Outcome"),
    "by": ("处理人", "by"),
    "note": ("备注", "Note"),
    "resolved_by": ("解决依据", "Resolved by"),
    "order": ("订单", "Order"),
    "alert": ("快递公司预警", "Courier alert"),
    "waybills": ("涉及运单", "Waybills"),
    "threshold": ("阈值", "threshold"),
    "silence": ("最后一次推送", "Last update"),
    "updates": ("此前推送数", "updates before"),
    "promised": ("承诺送达", "promised"),
    "last_update": ("收到更新", "update received"),
}
FONT = "Helvetica, Arial, 'PingFang SC', 'Microsoft YaHei', sans-serif"


def _pick(table: dict[str, tuple[str, str]], key: str | None, language: Language) -> str:
    if key is None:
        return ""
    pair = table.get(key)
    if pair is None:
        return key.replace("_", " ")
    return pair[0] if language == "zh" else pair[1]


def label(key: str, language: Language) -> str:
    """A field label."""
    return _pick(LABELS, key, language)


def step_title(step: str, language: Language) -> str:
    """The SOP step in words (unknown codes as they are)."""
    return _pick(STEPS, step, language)


def format_time(value: datetime | str | None, tz: str) -> str:
    """``2026-11-05 10:49`` in ``tz`` (a text that is not a timestamp is kept)."""
    if value is None:
        return ""
    if isinstance(value, str):
        try:
            when = parse_rfc3339(value)
        except TimeParseError:
            return value
    else:
        when = value
    return when.astimezone(zone(tz)).strftime("%Y-%m-%d %H:%M")


@dataclass(frozen=True)
class Message:
    """One notice in words."""

    severity: str
    title: str
    summary: str
    fields: list[tuple[str, str]]
    evidence: list[str]
    next_step: str | None
    link_label: str
    link: str


@dataclass(frozen=True)
class Batch:
    """What one delivery says: one message, or a digest of several."""

    title: str
    messages: list[Message]
    delivery_id: str
    language: Language
    footer: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def is_digest(self) -> bool:
        """More than one notice in one delivery."""
        return len(self.messages) > 1

    @property
    def severity(self) -> str:
        """The highest severity in the batch."""
        order = ["info", "warning", "high", "critical"]
        return max((m.severity for m in self.messages), key=order.index, default="info")


def title_of(notice: Notice, language: Language) -> str:
    """``【严重】签收未收到 · 新发现`` / ``[CRITICAL] Signed, not received — opened``."""
    severity = _pick(SEVERITIES, notice.severity, language)
    kind = _pick(TYPES, notice.type, language)
    what = (
        _pick(STATUSES, notice.status, language)
        if notice.kind == "anomaly"
        else _pick(CASE_EVENTS, notice.case_event, language)
    )
    if language == "zh":
        return f"【{severity}】{kind} · {what}"
    return f"[{severity}] {kind} — {what}"


def _summary(notice: Notice, language: Language) -> str:
    kind = _pick(TYPES, notice.type, language)
    reasons = [_pick(REASONS, r, language) for r in notice.reasons]
    target = notice.waybill or notice.subject
    if notice.kind == "case":
        event = _pick(CASE_EVENTS, notice.case_event, language)
        if language == "zh":
            return f"{target} 的工单（{kind}）：{event}"
        return f"Case for {target} ({kind}): {event}"
    status = _pick(STATUSES, notice.status, language)
    sep = "、" if language == "zh" else ", "
    because = sep.join(reasons)
    if language == "zh":
        return f"{target}：{kind}{status}" + (f"（{because}）" if because else "")
    return f"{target}: {kind} {status}" + (f" ({because})" if because else "")


def _fields(notice: Notice, language: Language, tz: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    if notice.waybill:
        out.append((label("waybill", language), notice.waybill))
    elif notice.subject:
        out.append((label("subject", language), notice.subject))
    if notice.courier:
        out.append((label("courier", language), notice.courier))
    if notice.site:
        out.append((label("site", language), notice.site))
    if notice.merchant:
        out.append((label("merchant", language), notice.merchant))
    out.append((label("detected", language), format_time(notice.at, tz)))
    return out


def fact_text(fact: Fact, language: Language, tz: str) -> str:
    """One evidence line in words."""
    v = fact.values
    zh = language == "zh"
    if fact.kind in ("scan", "resolved_scan"):
        parts = [format_time(v.get("time"), tz), _pick(SCAN_STATUSES, v.get("status"), language)]
        if v.get("place"):
            parts.append(f"【{v['place']}】" if zh else f"at {v['place']}")
        if v.get("sign_type"):
            parts.append(_pick(SIGN_TYPES, v["sign_type"], language))
        if v.get("reasons"):
            parts.append("/".join(_pick(REASONS, r, language) for r in v["reasons"]))
        text = " ".join(p for p in parts if p)
        if v.get("text"):
            text += f"：{v['text']}" if zh else f": {v['text']}"
        return (
            (label("resolved_by", language) + (": " if not zh else "：") + text)
            if (fact.kind == "resolved_scan")
            else text
        )
    if fact.kind in ("order", "resolved_order"):
        text = f"{format_time(v.get('time'), tz)} {_pick(ORDER_TYPES, v.get('type'), language)}"
        if v.get("order_id"):
            text += f" ({label('order', language)} {v['order_id']})"
        if v.get("promised"):
            text += f", {label('promised', language)} {format_time(v['promised'], tz)}"
        if fact.kind == "resolved_order":
            return label("resolved_by", language) + ("：" if zh else ": ") + text
        return text
    if fact.kind == "resolved_update":
        return f"{label('resolved_by', language)}{'：' if zh else ': '}" + (
            f"{label('last_update', language)} {format_time(v.get('time'), tz)}"
        )
    if fact.kind == "alert":
        return f"{label('alert', language)} {v.get('code', '')} {v.get('text', '')}".strip()
    if fact.kind == "waybills":
        sample = ", ".join(v.get("sample") or [])
        count = v.get("count")
        text = f"{label('waybills', language)} {count}: {sample}"
        if v.get("threshold") is not None:
            text += f" ({label('threshold', language)} {v['threshold']})"
        return text
    if fact.kind == "silence":
        return (
            f"{label('silence', language)} {format_time(v.get('last'), tz)}, "
            f"{label('updates', language)} {v.get('updates')} / {v.get('lookback')} min"
        )
    if fact.kind == "outcome":
        parts = [f"{label('outcome', language)} {v.get('outcome') or '-'}"]
        if v.get("by"):
            parts.append(f"{label('by', language)} {v['by']}")
        return ", ".join(parts)
    if fact.kind == "note":
        return f"{label('note', language)}: {v.get('text', '')}"
    return ", ".join(f"{k}={val}" for k, val in v.items())


def render(notice: Notice, language: Language, tz: str) -> Message:
    """One notice in ``language``, times in ``tz``."""
    next_step = None
    if notice.next_step:
        next_step = step_title(notice.next_step, language)
        if notice.next_due_at is not None:
            due = format_time(notice.next_due_at, tz)
            next_step += (
                f"（{label('due', language)} {due}）"
                if language == "zh"
                else (f" ({label('due', language)} {due})")
            )
    return Message(
        severity=notice.severity,
        title=title_of(notice, language),
        summary=_summary(notice, language),
        fields=_fields(notice, language, tz),
        evidence=[fact_text(f, language, tz) for f in notice.facts],
        next_step=next_step,
        link_label=label("open_case", language),
        link=notice.case_url,
    )


def render_batch(notices: Sequence[Notice], language: Language, tz: str, delivery_id: str) -> Batch:
    """What one delivery says; several notices make a digest with a counting title."""
    messages = [render(n, language, tz) for n in notices]
    if len(messages) == 1:
        title = messages[0].title
    else:
        severity = _pick(SEVERITIES, Batch("", messages, "", language).severity, language)
        first = format_time(min(n.at for n in notices), tz)
        last = format_time(max(n.at for n in notices), tz)
        title = (
            f"【{severity}】{len(messages)} 条通知汇总（{first} 至 {last}）"
            if language == "zh"
            else f"[{severity}] Digest: {len(messages)} notifications ({first} to {last})"
        )
    footer = f"{label('delivery', language)}: {delivery_id}"
    return Batch(title, messages, delivery_id, language, footer)


def plain_text(batch: Batch) -> str:
    """The batch as plain text (e-mail, log)."""
    lines = [batch.title, ""]
    for i, m in enumerate(batch.messages):
        if batch.is_digest:
            lines.append(f"{i + 1}. {m.title}")
        lines.append(m.summary)
        lines.extend(f"  {k}: {v}" for k, v in m.fields)
        if m.evidence:
            lines.append(f"  {label('evidence', batch.language)}:")
            lines.extend(f"    - {e}" for e in m.evidence)
        if m.next_step:
            lines.append(f"  {label('next_step', batch.language)}: {m.next_step}")
        lines.append(f"  {m.link_label}: {m.link}")
        lines.append("")
    lines.append(batch.footer)
    return "\n".join(lines)


def markdown(
    batch: Batch,
    *,
    limit_bytes: int,
    quote: str = "> ",
    keyword: str | None = None,
    heading: bool = True,
) -> str:
    """The batch as chat markdown (WeCom, DingTalk, Feishu card), cut to ``limit_bytes``
    (UTF-8) by dropping whole notices of a digest and saying how many were left out.
    ``heading``: start with the title (a card shows it in its header instead)."""
    title = f"{keyword} {batch.title}" if keyword else batch.title
    head = [f"### {title}"] if heading else []
    blocks: list[str] = []
    for m in batch.messages:
        lines = [f"**{m.title}**" if batch.is_digest else f"**{m.summary}**"]
        if batch.is_digest:
            lines.append(m.summary)
        lines.extend(f"{quote}{k}: {v}" for k, v in m.fields)
        lines.extend(f"{quote}{label('evidence', batch.language)}: {e}" for e in m.evidence)
        if m.next_step:
            lines.append(f"{quote}**{label('next_step', batch.language)}**: {m.next_step}")
        lines.append(f"[{m.link_label}]({m.link})")
        blocks.append("\n".join(lines))
    footer = f"\n\n{batch.footer}"
    lead = "\n".join(head) + "\n\n" if head else ""
    text = lead + "\n\n".join(blocks) + footer
    if len(text.encode()) <= limit_bytes:
        return text
    kept: list[str] = []
    for block in blocks:
        more = len(blocks) - len(kept) - 1
        note = (
            f"\n\n… {more} 条未显示" if batch.language == "zh" else f"\n\n… {more} more not shown"
        )
        candidate = lead + "\n\n".join([*kept, block]) + note + footer
        if len(candidate.encode()) > limit_bytes:
            break
        kept.append(block)
    left = len(blocks) - len(kept)
    note = f"\n\n… {left} 条未显示" if batch.language == "zh" else f"\n\n… {left} more not shown"
    text = lead + "\n\n".join(kept) + (note if left else "") + footer
    return _cut(text, limit_bytes)


def _cut(text: str, limit_bytes: int) -> str:
    data = text.encode()
    if len(data) <= limit_bytes:
        return text
    return data[: limit_bytes - 3].decode("utf-8", errors="ignore") + "…"
