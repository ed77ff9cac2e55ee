"""Signatures of outgoing messages: our webhook's, DingTalk's signed URL and Feishu's body
signature (reference notify-and-cases.md §1.2, §1.4, §2). The verifiers are what receivers
run; the tests and docs/notify.md use them.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from urllib.parse import quote_plus

#: A webhook delivery older (or further in the future) than this is refused as a replay.
REPLAY_WINDOW_S = 300

TIMESTAMP_HEADER = "X-Waybill-Watch-Timestamp"
SIGNATURE_HEADER = "X-Waybill-Watch-Signature"
DELIVERY_HEADER = "X-Waybill-Watch-Delivery"


def webhook_signature(secret: str, timestamp: int, body: bytes) -> str:
    """Base64 HMAC-SHA256 with key ``secret`` over ``f"{timestamp}.".encode() + body``.

    The timestamp is signed with the body, so a captured request cannot be replayed later
    with a fresh timestamp; the receiver refuses timestamps outside ``REPLAY_WINDOW_S``."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return base64.b64encode(mac.digest()).decode("ascii")


def verify_webhook(
    secret: str,
    timestamp: str,
    signature: str,
    body: bytes,
    *,
    now: float | None = None,
    window_s: int = REPLAY_WINDOW_S,
) -> bool:
    """What a merchant's receiver does: the timestamp within the window, and the signature of
    the exact received bytes equal (constant time) to the header's."""
    try:
        ts = int(timestamp)
    except ValueError:
        return False
    current = time.time() if now is None else now
    if abs(current - ts) > window_s:
        return False
    expected = webhook_signature(secret, ts, body)
    return hmac.compare_digest(expected, signature)


def dingtalk_sign(secret: str, timestamp_ms: int) -> str:
    """DingTalk 加签: ``urlEncode(Base64(HmacSHA256(key=secret, msg=f"{ts}\\n{secret}")))``
    (``quote_plus``, as in DingTalk's Python sample)."""
    to_sign = f"{timestamp_ms}\n{secret}".encode()
    mac = hmac.new(secret.encode(), to_sign, hashlib.sha256).digest()
    return quote_plus(base64.b64encode(mac))


def dingtalk_url(url: str, secret: str | None, timestamp_ms: int) -> str:
    """The robot URL with ``&timestamp=<ms>&sign=<sign>`` when the robot signs."""
    if not secret:
        return url
    sep = "&" if "?" in url else "?"
    return f"{url}{sep}timestamp={timestamp_ms}&sign={dingtalk_sign(secret, timestamp_ms)}"


def feishu_sign(secret: str, timestamp_s: int) -> str:
    """Feishu/Lark 签名校验: ``f"{ts}\\n{secret}"`` is the HMAC-SHA256 *key* over an empty
    message; Base64, not URL-encoded; sent in the body with ``timestamp`` (seconds)."""
    key = f"{timestamp_s}\n{secret}".encode()
    return base64.b64encode(hmac.new(key, b"", hashlib.sha256).digest()).decode("ascii")
