"""Signature schemes of the feeds, and the one rule every ``verify`` follows.

Each scheme is a pure function of (signed text, secret) so tests and the simulator's encoders
use the same code path as verification. Comparisons are constant-time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping

from waybill_watch.feeds.base import (
    FeedConfig,
    SignatureInvalid,
    SignatureMissing,
    UnsignedNotAllowed,
)

#: Header carrying base64(HMAC-SHA256(secret, body)) on our own feeds (contract §8).
OWN_SIGNATURE_HEADER = "x-waybill-watch-signature"


def constant_time_equal(expected: str, given: str) -> bool:
    """Compare two signatures without leaking where they first differ."""
    return hmac.compare_digest(expected.encode("utf-8"), given.encode("utf-8"))


def kdniao_data_sign(request_data: str, app_key: str) -> str:
    """Kdniao ``DataSign``: base64 of the lower-case MD5 *hex text* of RequestData + AppKey."""
    digest = hashlib.md5((request_data + app_key).encode("utf-8")).hexdigest()
    return base64.b64encode(digest.encode("ascii")).decode("ascii")


def kuaidi100_sign(param: str, salt: str) -> str:
    """Kuaidi100 ``sign``: upper-case MD5 hex of param + salt."""
    return hashlib.md5((param + salt).encode("utf-8")).hexdigest().upper()


def track17_sign(body: bytes, key: str) -> str:
    """17TRACK ``sign`` header: lower-case SHA-256 hex of raw body + "/" + key (not an HMAC)."""
    return hashlib.sha256(body + b"/" + key.encode("utf-8")).hexdigest()


def hmac_sha256_base64(secret: str, body: bytes) -> str:
    """base64(HMAC-SHA256(secret, body)): AfterShip and our canonical/merchant feeds."""
    mac = hmac.new(secret.encode("utf-8"), body, hashlib.sha256).digest()
    return base64.b64encode(mac).decode("ascii")


def required_secret(config: FeedConfig, feed: str) -> str | None:
    """The secret to verify with, or None when unsigned input is explicitly allowed.

    An empty secret counts as not configured (Kuaidi100 sends ``sign`` even for an empty salt).
    """
    if config.secret:
        return config.secret
    if config.allow_unsigned:
        return None
    raise UnsignedNotAllowed(
        "unsigned_not_allowed",
        f"feed {feed} has no secret configured and unsigned input is not allowed",
    )


def header(headers: Mapping[str, str], name: str) -> str | None:
    """A header by lower-case name; tolerates callers that kept the original casing."""
    value = headers.get(name)
    if value is not None:
        return value
    for key, candidate in headers.items():
        if key.lower() == name:
            return candidate
    return None


def check_signature(expected: str, given: str | None, feed: str, where: str) -> None:
    """Raise SignatureMissing / SignatureInvalid unless ``given`` equals ``expected``."""
    if given is None or not given.strip():
        raise SignatureMissing("missing_signature", f"{feed}: no signature in {where}")
    if not constant_time_equal(expected, given.strip()):
        raise SignatureInvalid("bad_signature", f"{feed}: signature in {where} does not match")


def verify_hmac_header(
    config: FeedConfig, feed: str, headers: Mapping[str, str], body: bytes, header_name: str
) -> None:
    """Verify a base64 HMAC-SHA256 header over the raw body (AfterShip, canonical, merchant)."""
    secret = required_secret(config, feed)
    if secret is None:
        return
    given = header(headers, header_name)
    check_signature(hmac_sha256_base64(secret, body), given, feed, f"header {header_name}")
