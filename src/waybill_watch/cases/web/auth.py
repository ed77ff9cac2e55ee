"""Sign-in for the case pages: password hashes, signed session cookies, CSRF tokens.

Everything here is stdlib (hashlib, hmac, secrets), so the web pages need no session store
and no extra dependency: a session is a signed cookie naming the user, its expiry and a random
nonce; the CSRF token is an HMAC of that nonce, so it changes with every sign-in and a forged
form from another site cannot carry it. The account itself is read from the store on every
request, so a role change or a deleted account takes effect at once.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

#: Cookie that carries the session; the login form's own anti-forgery cookie.
SESSION_COOKIE = "ww_session"
LOGIN_COOKIE = "ww_login"
DEFAULT_SESSION_TTL = timedelta(hours=12)

#: scrypt cost (RFC 7914): 16 MiB of memory and ~50 ms per hash on a laptop core.
SCRYPT_N = 2**14
SCRYPT_R = 8
SCRYPT_P = 1
_SALT_BYTES = 16
_HASH_BYTES = 32
#: Refuse stored costs beyond this (a corrupt or hostile row must not exhaust memory).
_MAX_N = 2**20
_MAX_RP = 64


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text.encode("ascii"), validate=True)


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int, size: int) -> bytes:
    maxmem = 128 * r * (n + p + 2) + (1 << 20)
    return hashlib.scrypt(
        password.encode("utf-8"), salt=salt, n=n, r=r, p=p, maxmem=maxmem, dklen=size
    )


def hash_password(password: str, *, n: int = SCRYPT_N, r: int = SCRYPT_R, p: int = SCRYPT_P) -> str:
    """``scrypt$n$r$p$salt_b64$hash_b64`` with a fresh 16-byte salt (the cost travels with
    the hash, so raising it later does not lock out existing accounts)."""
    salt = secrets.token_bytes(_SALT_BYTES)
    digest = _scrypt(password, salt, n, r, p, _HASH_BYTES)
    return f"scrypt${n}${r}${p}${_b64(salt)}${_b64(digest)}"


def verify_password(password: str, stored: str) -> bool:
    """Whether ``password`` matches ``stored``; a malformed hash matches nothing."""
    parts = stored.split("$")
    if len(parts) != 6 or parts[0] != "scrypt":
        return False
    try:
        n, r, p = int(parts[1]), int(parts[2]), int(parts[3])
        salt, expected = _unb64(parts[4]), _unb64(parts[5])
    except (ValueError, binascii.Error):
        return False
    if not (1 < n <= _MAX_N and n & (n - 1) == 0 and 0 < r <= _MAX_RP and 0 < p <= _MAX_RP):
        return False
    if not salt or not expected:
        return False
    actual = _scrypt(password, salt, n, r, p, len(expected))
    return hmac.compare_digest(actual, expected)


_DUMMY_HASH: str | None = None


def burn_password_check(password: str) -> None:
    """Spend the time of one real check (for unknown users: no timing-based enumeration)."""
    global _DUMMY_HASH
    if _DUMMY_HASH is None:
        _DUMMY_HASH = hash_password(secrets.token_urlsafe(16))
    verify_password(password, _DUMMY_HASH)


def token_digest(token: str) -> str:
    """SHA-256 hex of a bearer token: the key of the tokens file (contract §9), so the
    file never holds a usable token."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


# -- sessions ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Session:
    """A signed-in browser: who, until when (epoch seconds), and its random nonce."""

    username: str
    expires: int
    nonce: str


class SessionSigner:
    """Issues and reads session cookies and the CSRF tokens derived from them.

    Keys for sessions, CSRF and the login form are derived from the one app secret with
    distinct labels, so a value signed for one purpose never verifies as another.
    """

    def __init__(self, secret: bytes, ttl: timedelta = DEFAULT_SESSION_TTL) -> None:
        if len(secret) < 16:
            raise ValueError("the session secret must be at least 16 bytes")
        self._session_key = hmac.digest(secret, b"waybill-watch/session", "sha256")
        self._csrf_key = hmac.digest(secret, b"waybill-watch/csrf", "sha256")
        self._login_key = hmac.digest(secret, b"waybill-watch/login", "sha256")
        self.ttl = ttl

    @staticmethod
    def _mac(key: bytes, message: str) -> str:
        return hmac.new(key, message.encode("utf-8"), hashlib.sha256).hexdigest()

    def issue(self, username: str, now: datetime) -> tuple[str, Session]:
        """A new session for ``username`` and its cookie value."""
        session = Session(
            username=username,
            expires=int((now + self.ttl).timestamp()),
            nonce=secrets.token_urlsafe(18),
        )
        user = base64.urlsafe_b64encode(username.encode("utf-8")).decode("ascii").rstrip("=")
        payload = f"{user}.{session.expires}.{session.nonce}"
        return f"{payload}.{self._mac(self._session_key, payload)}", session

    def read(self, cookie: str | None, now: datetime) -> Session | None:
        """The session in ``cookie`` when the signature holds and it has not expired."""
        if not cookie or len(cookie) > 1024:
            return None
        payload, _, mac = cookie.rpartition(".")
        if not hmac.compare_digest(mac, self._mac(self._session_key, payload)):
            return None
        try:
            user, expires_text, nonce = payload.split(".")
            username = base64.urlsafe_b64decode(user + "=" * (-len(user) % 4)).decode("utf-8")
            expires = int(expires_text)
        except (ValueError, binascii.Error, UnicodeDecodeError):
            return None
        if expires <= now.timestamp() or not username or not nonce:
            return None
        return Session(username=username, expires=expires, nonce=nonce)

    def csrf_token(self, session: Session) -> str:
        """The token every form of this session carries."""
        return self._mac(self._csrf_key, session.nonce)

    def check_csrf(self, session: Session, token: str | None) -> bool:
        """Whether a submitted form carries this session's token."""
        return bool(token) and hmac.compare_digest(str(token), self.csrf_token(session))

    @staticmethod
    def login_nonce() -> str:
        """A fresh nonce for the login form's cookie (there is no session to bind to yet)."""
        return secrets.token_urlsafe(18)

    def login_token(self, nonce: str) -> str:
        """The login form's hidden token for the nonce in its cookie."""
        return self._mac(self._login_key, nonce)

    def check_login(self, nonce: str | None, token: str | None) -> bool:
        """Whether the login form was served by us to this browser (login CSRF)."""
        if not nonce or not token:
            return False
        return hmac.compare_digest(str(token), self.login_token(nonce))
