"""A real SMTP server for the tests (aiosmtpd): STARTTLS with a throw-away certificate made
by ``openssl``, AUTH required over TLS, and a mailbox that keeps what it accepted."""

from __future__ import annotations

import contextlib
import ssl
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from waybill_watch.localproc import free_port

USER, PASSWORD = "alerts@example.com", "smtp-test-password"


def make_certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (cert, key)."""
    cert, key = directory / "smtp-cert.pem", directory / "smtp-key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
            "-keyout", str(key), "-out", str(cert), "-days", "1",
            "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


@dataclass
class Mailbox:
    """What the server accepted: one entry per message, with how the session looked."""

    messages: list[Message] = field(default_factory=list)
    tls: list[bool] = field(default_factory=list)
    logins: list[str] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(message_from_bytes(envelope.original_content or envelope.content))
        self.tls.append(session.ssl is not None)
        return "250 Message accepted for delivery"


def _authenticator(
    server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
) -> AuthResult:
    ok = isinstance(auth_data, LoginPassword) and (
        auth_data.login.decode(),
        auth_data.password.decode(),
    ) == (USER, PASSWORD)
    if ok:
        server.event_handler.logins.append(USER)
    return AuthResult(success=ok, handled=False)  # not handled: the server answers 535


@contextlib.contextmanager
def smtp_server(
    cert: tuple[Path, Path] | None, *, auth: bool = True
) -> Iterator[tuple[int, Mailbox]]:
    """An SMTP server on 127.0.0.1: STARTTLS (required) and AUTH when ``cert`` is given,
    plain otherwise."""
    mailbox = Mailbox()
    kwargs: dict[str, Any] = {}
    if cert is not None:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(str(cert[0]), str(cert[1]))
        kwargs.update(tls_context=context, require_starttls=True)
        if auth:
            kwargs.update(auth_required=True, authenticator=_authenticator)
    port = free_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port, **kwargs)
    controller.start()
    try:
        yield port, mailbox
    finally:
        controller.stop()
