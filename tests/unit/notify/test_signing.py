"""Signatures against the reference's test vectors and algorithms."""

from __future__ import annotations

import base64
import hashlib
import hmac
from urllib.parse import parse_qs, urlsplit

from waybill_watch.notify.signing import (
    dingtalk_sign,
    dingtalk_url,
    feishu_sign,
    verify_webhook,
    webhook_signature,
)


def test_dingtalk_vector() -> None:
    # reference notify-and-cases.md §1.2
    assert (
        dingtalk_sign("SECtest0123456789abcdef", 1700000000000)
        == "%2FlfnxUUu80FwVTsIlv2F1cMGBb%2BPxEKAwYh%2FbsRxXcc%3D"
    )


def test_dingtalk_url_appends_timestamp_and_sign() -> None:
    url = dingtalk_url("https://oapi.dingtalk.com/robot/send?access_token=T", "SECx", 1700000000000)
    query = parse_qs(urlsplit(url).query)
    assert query["access_token"] == ["T"] and query["timestamp"] == ["1700000000000"]
    mac = hmac.new(b"SECx", b"1700000000000\nSECx", hashlib.sha256).digest()
    assert query["sign"] == [base64.b64encode(mac).decode()]  # parse_qs undid quote_plus
    assert dingtalk_url("https://x/send?access_token=T", None, 1) == "https://x/send?access_token=T"


def test_feishu_vector() -> None:
    # reference notify-and-cases.md §1.4: the string is the key, the message is empty
    assert feishu_sign("demo", 1599360473) == "l1N0gAcBjdwBvGm1xMjOF0XSyaLRpR7tuO5dHfhAYc8="


def test_webhook_signature_is_hmac_of_timestamp_dot_body() -> None:
    body = b'{"test": 2432232314}'
    sig = webhook_signature("whsec", 1614265330, body)
    expected = hmac.new(b"whsec", b"1614265330." + body, hashlib.sha256).digest()
    assert sig == base64.b64encode(expected).decode()
    assert verify_webhook("whsec", "1614265330", sig, body, now=1614265330 + 299)
    assert not verify_webhook("whsec", "1614265330", sig, body, now=1614265330 + 301)  # replay
    assert not verify_webhook("whsec", "1614265330", sig, body + b" ", now=1614265330)
    assert not verify_webhook("other", "1614265330", sig, body, now=1614265330)
    assert not verify_webhook("whsec", "yesterday", sig, body, now=1614265330)
