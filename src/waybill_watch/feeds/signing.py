"""Signature schemes of the feeds, and the one rule every ``verify`` follows.

Each scheme is a pure function of (signed text, secret) so tests and the simulator's encoders
use the same code path as verification. Comparisons are constant-time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping

from waybill_watch.feeds.base import (
    FeedConfig,
    FeedError,
    SignatureInvalid,
    SignatureMissing,
    UnsignedNotAllowed,
)

#: Header carrying base64(HMAC-SHA256(secret, body)) on our own feeds (contract §8).
OWN_SIGNATURE_HEADER = "x-waybill-watch-signature"
#: Optional replay protection of our own feeds (an addition; the contract's header still works):
#: the sender's Unix time in seconds and base64(HMAC-SHA256(secret, "<timestamp>." + body)).
OWN_TIMESTAMP_HEADER = "x-waybill-watch-timestamp"
OWN_SIGNATURE_V2_HEADER = "x-waybill-watch-signature-v2"
#: Signatures remembered against replays (per feed); the oldest are forgotten first.
REPLAY_CACHE_SIZE = 100_000


class StaleTimestamp(FeedError):
    """The signed timestamp is unreadable or outside the tolerance window (HTTP 401)."""

    http_status = 401


class Replayed(FeedError):
    """This exact timestamped signature was already accepted within the window (HTTP 403)."""

    http_status = 403


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


def timestamped_signature(secret: str, timestamp: str, body: bytes) -> str:
    """base64(HMAC-SHA256(secret, "<timestamp>." + body)): ``X-Waybill-Watch-Signature-V2``."""
    return hmac_sha256_base64(secret, timestamp.encode("ascii") + b"." + body)


class ReplayGuard:
    """The timestamped signatures seen within the tolerance window, in bounded memory.

    ``reserve`` refuses a signature already held and holds it until its timestamp leaves the
    window; ``release`` gives it back (the ingest calls it when the request was not accepted
    after all, so a sender may retry the very same request after a 503). At most ``capacity``
    entries: expired ones are dropped first, then the oldest, so a flood of distinct valid
    signatures (which needs the secret) can only shorten the memory, never grow it."""

    def __init__(
        self,
        tolerance: float,
        capacity: int = REPLAY_CACHE_SIZE,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.tolerance = tolerance
        self.capacity = capacity
        self.clock = clock
        self._seen: OrderedDict[str, float] = OrderedDict()  # signature -> forget after

    def __len__(self) -> int:
        return len(self._seen)

    def reserve(self, signature: str, timestamp: float) -> bool:
        """True (and now held) unless ``signature`` is already held."""
        now = self.clock()
        self._expire(now)
        if signature in self._seen:
            return False
        self._seen[signature] = timestamp + self.tolerance
        while len(self._seen) > self.capacity:
            self._seen.popitem(last=False)
        return True

    def release(self, signature: str) -> None:
        self._seen.pop(signature, None)

    def _expire(self, now: float) -> None:
        # Insertion order is close to expiry order (timestamps are near "now"): drop from the
        # front while expired, a few at a time, so every call stays O(1) amortised.
        for _ in range(64):
            if not self._seen:
                return
            key, until = next(iter(self._seen.items()))
            if until >= now:
                return
            del self._seen[key]


def verify_timestamped(
    config: FeedConfig,
    feed: str,
    headers: Mapping[str, str],
    body: bytes,
    guard: ReplayGuard,
) -> str | None:
    """Verify an own feed's request; the timestamped signature held against replays, if any.

    With ``X-Waybill-Watch-Timestamp`` or ``X-Waybill-Watch-Signature-V2`` present, both are
    required, the timestamp must be within ``signature_tolerance_seconds`` of now
    (``stale_timestamp``, 401), the signature must match (``bad_signature``, 403) and must not
    have been accepted before (``replayed``, 403). Without them, the contract's
    ``X-Waybill-Watch-Signature`` is verified, unless ``require_signed_timestamp`` is on
    (``missing_timestamp``, 401)."""
    secret = required_secret(config, feed)
    if secret is None:
        return None
    stamp = header(headers, OWN_TIMESTAMP_HEADER)
    given = header(headers, OWN_SIGNATURE_V2_HEADER)
    if stamp is None and given is None:
        if config.require_signed_timestamp:
            raise SignatureMissing(
                "missing_timestamp",
                f"{feed}: headers {OWN_TIMESTAMP_HEADER} and {OWN_SIGNATURE_V2_HEADER} required",
            )
        given = header(headers, OWN_SIGNATURE_HEADER)
        check_signature(
            hmac_sha256_base64(secret, body), given, feed, f"header {OWN_SIGNATURE_HEADER}"
        )
        return None
    stamp = (stamp or "").strip()
    if not (stamp.isascii() and stamp.isdigit() and len(stamp) <= 12):
        raise StaleTimestamp(
            "stale_timestamp", f"{feed}: {OWN_TIMESTAMP_HEADER} is not Unix seconds"
        )
    skew = abs(guard.clock() - int(stamp))
    if skew > config.signature_tolerance_seconds:
        raise StaleTimestamp(
            "stale_timestamp",
            f"{feed}: {OWN_TIMESTAMP_HEADER} is {skew:.0f} s from now "
            f"(tolerance {config.signature_tolerance_seconds:.0f} s)",
        )
    expected = timestamped_signature(secret, stamp, body)
    check_signature(expected, given, feed, f"header {OWN_SIGNATURE_V2_HEADER}")
    if not guard.reserve(expected, int(stamp)):
        raise Replayed("replayed", f"{feed}: this timestamped signature was already accepted")
    return expected
