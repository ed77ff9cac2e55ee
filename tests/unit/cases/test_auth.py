"""Password hashes, session cookies, CSRF tokens and bearer-token digests (auth.py)."""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime, timedelta

import pytest

from waybill_watch.cases.web.auth import (
    SessionSigner,
    hash_password,
    token_digest,
    verify_password,
)

NOW = datetime(2026, 3, 14, 1, 0, tzinfo=UTC)
SECRET = b"auth-test-secret-0123456789abcdef"


def test_hash_format_and_round_trip() -> None:
    stored = hash_password("s3cret pässword")
    scheme, n, r, p, salt, digest = stored.split("$")
    assert (scheme, n, r, p) == ("scrypt", str(2**14), "8", "1")
    assert len(base64.b64decode(salt)) == 16
    assert len(base64.b64decode(digest)) == 32
    assert verify_password("s3cret pässword", stored)
    assert not verify_password("s3cret password", stored)
    assert not verify_password("", stored)


def test_salts_are_random() -> None:
    assert hash_password("same") != hash_password("same")


def test_hash_matches_stdlib_scrypt() -> None:
    stored = hash_password("pw", n=2**10, r=8, p=1)
    _, n, r, p, salt, digest = stored.split("$")
    expected = hashlib.scrypt(
        b"pw", salt=base64.b64decode(salt), n=int(n), r=int(r), p=int(p), dklen=32
    )
    assert base64.b64decode(digest) == expected
    assert verify_password("pw", stored)  # the cost travels with the hash


@pytest.mark.parametrize(
    "stored",
    [
        "",
        "plaintext",
        "bcrypt$12$x",
        "scrypt$16384$8$1$not-base64!$AAAA",
        "scrypt$abc$8$1$AAAA$AAAA",
        "scrypt$1000$8$1$AAAAAAAAAAAAAAAAAAAAAA==$AAAA",  # n not a power of two
        "scrypt$1073741824$8$1$AAAAAAAAAAAAAAAAAAAAAA==$AAAA",  # absurd memory cost
        "scrypt$16384$8$1$$",
    ],
)
def test_malformed_hashes_match_nothing(stored: str) -> None:
    assert not verify_password("anything", stored)


def test_token_digest_is_sha256_hex() -> None:
    assert token_digest("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    assert len(token_digest("a-long-random-bearer-token")) == 64


def test_session_round_trip() -> None:
    signer = SessionSigner(SECRET)
    cookie, session = signer.issue("li.na@hz", NOW)
    read = signer.read(cookie, NOW + timedelta(hours=11, minutes=59))
    assert read == session
    assert read is not None and read.username == "li.na@hz"
    assert read.expires == int((NOW + timedelta(hours=12)).timestamp())


def test_sessions_expire_after_their_ttl() -> None:
    signer = SessionSigner(SECRET, ttl=timedelta(hours=1))
    cookie, _ = signer.issue("li.na", NOW)
    assert signer.read(cookie, NOW + timedelta(minutes=59)) is not None
    assert signer.read(cookie, NOW + timedelta(hours=1)) is None


def test_tampered_or_foreign_cookies_are_rejected() -> None:
    signer = SessionSigner(SECRET)
    cookie, _ = signer.issue("viewer", NOW)
    user, expires, nonce, mac = cookie.split(".")
    admin = base64.urlsafe_b64encode(b"admin").decode().rstrip("=")
    later = str(int(expires) + 86400)
    for forged in (
        f"{admin}.{expires}.{nonce}.{mac}",
        f"{user}.{later}.{nonce}.{mac}",
        f"{user}.{expires}.{nonce}.{'0' * 64}",
        f"{user}.{expires}.{nonce}",
        "",
        "garbage",
        "a.b.c.d.e",
    ):
        assert signer.read(forged, NOW) is None, forged
    other = SessionSigner(b"another-secret-0123456789abcdef!")
    assert other.read(cookie, NOW) is None


def test_short_secrets_are_refused() -> None:
    with pytest.raises(ValueError, match="16 bytes"):
        SessionSigner(b"short")


def test_csrf_token_is_bound_to_the_session() -> None:
    signer = SessionSigner(SECRET)
    _, one = signer.issue("li.na", NOW)
    _, two = signer.issue("li.na", NOW)
    token = signer.csrf_token(one)
    assert signer.check_csrf(one, token)
    assert not signer.check_csrf(two, token)  # a new sign-in gets new tokens
    assert not signer.check_csrf(one, None)
    assert not signer.check_csrf(one, "")
    assert not signer.check_csrf(one, token[:-1] + ("0" if token[-1] != "0" else "1"))


def test_login_form_token_is_bound_to_its_cookie_nonce() -> None:
    signer = SessionSigner(SECRET)
    nonce = signer.login_nonce()
    token = signer.login_token(nonce)
    assert signer.check_login(nonce, token)
    assert not signer.check_login(signer.login_nonce(), token)
    assert not signer.check_login(None, token)
    assert not signer.check_login(nonce, None)
    # purposes do not mix: a session's CSRF token is not a login token for the same nonce
    _, session = signer.issue("x", NOW)
    assert not signer.check_login(session.nonce, signer.csrf_token(session))
