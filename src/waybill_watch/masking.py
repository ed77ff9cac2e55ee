"""Masking of recipients' personal data (phone numbers, names) in anomalies and logs.

Couriers put phone numbers and signer names into free text ("已签收，签收人：张三，电话
13812345678"). Everything that leaves the core as evidence or a log line goes through here.
"""

from __future__ import annotations

import re

# Mainland mobile numbers (optionally +86), landlines with area code, and long digit runs
# that look like phone numbers. Waybill numbers are letters+digits or >= 12 digits and are
# left alone by requiring a non-digit boundary and the mobile prefix 1[3-9].
_MOBILE = re.compile(r"(?<!\d)(?:\+?86[- ]?)?(1[3-9]\d)[- ]?(\d{4})[- ]?(\d{4})(?!\d)")
_LANDLINE = re.compile(r"(?<!\d)(0\d{2,3})[- ](\d{3,4})(\d{4})(?!\d)")
_SIGNER = re.compile(
    r"(签收人|收件人|代收人|取件人|联系人)(\s*[:：]\s*)([^\s,，。;；)）\]】]{1,16}(?: [A-Za-z]+)*)"
)


def mask_phone_numbers(text: str) -> str:
    """Replace the middle digits of phone numbers: 13812345678 → 138****5678."""
    text = _MOBILE.sub(lambda m: f"{m.group(1)}****{m.group(3)}", text)
    return _LANDLINE.sub(lambda m: f"{m.group(1)}-****{m.group(3)}", text)


def mask_name(name: str | None) -> str | None:
    """Keep the first character of a personal name: 张三丰 → 张**, Alice → A****."""
    if name is None:
        return None
    stripped = name.strip()
    if not stripped:
        return stripped
    if _MOBILE.fullmatch(stripped):
        return mask_phone_numbers(stripped)
    return stripped[0] + "*" * max(1, len(stripped) - 1)


def mask_text(text: str) -> str:
    """Mask phone numbers and the names after 签收人/收件人/… labels in free text."""
    text = mask_phone_numbers(text)
    return _SIGNER.sub(lambda m: f"{m.group(1)}{m.group(2)}{mask_name(m.group(3))}", text)
