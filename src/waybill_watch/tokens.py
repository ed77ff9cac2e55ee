"""Bearer tokens of the REST APIs (contract §9: the cases API and the worker's waybill
queries share one tokens file): a JSON file of SHA-256 digests.

The file maps the hex SHA-256 of each token to ``{"role": ..., "merchant": ... | null}``; the
tokens themselves are never stored. The file is re-read when it changes, so a token is
added or revoked without a restart. ``waybill-watch cases add-token`` writes one.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, get_args

#: What a token or an account may do: read; also change cases; also administer.
Role = Literal["viewer", "operator", "admin"]

#: How often (seconds) the file's modification time is looked at.
RECHECK_S = 2.0


class TokenFileError(ValueError):
    """A tokens file that cannot be used (start refuses it, with the entry at fault)."""


@dataclass(frozen=True)
class Grant:
    """What a token may do."""

    role: Role
    merchant: str | None


def token_digest(token: str) -> str:
    """The SHA-256 hex digest the file stores."""
    return hashlib.sha256(token.encode()).hexdigest()


def parse_tokens(text: str, source: str = "tokens file") -> dict[str, Grant]:
    """Validate a tokens file's content."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise TokenFileError(f"{source}: not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise TokenFileError(f"{source}: must be a JSON object of digest -> grant")
    grants: dict[str, Grant] = {}
    for digest, grant in data.items():
        if not (len(digest) == 64 and all(c in "0123456789abcdef" for c in digest)):
            raise TokenFileError(f"{source}: {digest[:12]}…: keys are SHA-256 hex digests")
        if not isinstance(grant, dict) or grant.get("role") not in get_args(Role):
            raise TokenFileError(f"{source}: {digest[:12]}…: role must be one of {get_args(Role)}")
        merchant = grant.get("merchant")
        if merchant is not None and not isinstance(merchant, str):
            raise TokenFileError(f"{source}: {digest[:12]}…: merchant must be a string or null")
        grants[digest] = Grant(grant["role"], merchant)
    return grants


class TokenRegistry:
    """The grants of a tokens file, reloaded when the file changes."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._grants: dict[str, Grant] = {}
        self._mtime: float | None = None
        self._checked = 0.0
        if path is not None:
            self._load()

    def _load(self) -> None:
        assert self.path is not None
        try:
            stat = self.path.stat()
            text = self.path.read_text(encoding="utf-8")
        except OSError as exc:
            raise TokenFileError(f"tokens file {self.path}: {exc.strerror}") from exc
        self._grants = parse_tokens(text, str(self.path))
        self._mtime = stat.st_mtime

    def grant(self, token: str) -> Grant | None:
        """The grant of ``token`` (constant-time lookup by digest), or ``None``."""
        now = time.monotonic()
        if self.path is not None and now - self._checked > RECHECK_S:
            self._checked = now
            try:
                if self.path.stat().st_mtime != self._mtime:
                    self._load()
            except (OSError, TokenFileError):
                pass  # keep the last good grants; the log of the start named the file
        digest = token_digest(token)
        for known, grant in self._grants.items():
            if hmac.compare_digest(known, digest):
                return grant
        return None


def bearer_grant(tokens: TokenRegistry, authorization: str) -> Grant | None:
    """The grant of an ``Authorization: Bearer <token>`` header, or ``None``."""
    scheme, _, token = authorization.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return None
    return tokens.grant(token)


#: The header a 401 carries (RFC 6750).
CHALLENGE = 'Bearer realm="waybill-watch"'


def add_token(path: Path, role: Role, merchant: str | None) -> str:
    """Create a token, store its digest in ``path`` (created 0600 if missing), return it."""
    token = secrets.token_urlsafe(32)
    existing = parse_tokens(path.read_text("utf-8"), str(path)) if path.exists() else {}
    data = {d: {"role": g.role, "merchant": g.merchant} for d, g in existing.items()}
    data[token_digest(token)] = {"role": role, "merchant": merchant}
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        json.dump(data, out, indent=2)
    tmp.replace(path)
    return token
