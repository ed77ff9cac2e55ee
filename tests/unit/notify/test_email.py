"""E-mail against a real SMTP server (aiosmtpd): STARTTLS, AUTH, and the refusals."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from waybill_watch.notify import core
from waybill_watch.notify.channels.email import EmailSender
from waybill_watch.notify.render import render_batch
from waybill_watch.notify.rules import EmailChannel

from .helpers import event
from .smtp_server import PASSWORD, USER, make_certificate, smtp_server

pytestmark = pytest.mark.asyncio(loop_scope="session")


@pytest.fixture(scope="module")
def cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return make_certificate(tmp_path_factory.mktemp("smtp"))


@pytest.fixture
def tls_server(cert: tuple[Path, Path]) -> Iterator[tuple[int, Any]]:
    with smtp_server(cert) as server:
        yield server


def channel(port: int, **extra: Any) -> EmailChannel:
    return EmailChannel.model_validate(
        {
            "type": "email",
            "host": "127.0.0.1",
            "port": port,
            "username": USER,
            "password": PASSWORD,
            "from": "waybill-watch <alerts@example.com>",
            "to": ["ops@example.com"],
            "timeout": "5s",
            **extra,
        }
    )


def batch(language: str = "zh"):  # type: ignore[no-untyped-def]
    notice = core.notice_for(event(), "http://cases.example:6067")
    return render_batch([notice], language, "Asia/Shanghai", "d-mail-1"), [notice]  # type: ignore[arg-type]


async def test_starttls_and_auth_deliver_text_and_html(
    tls_server: tuple[int, Any], cert: tuple[Path, Path]
) -> None:
    port, mailbox = tls_server
    outcome = await EmailSender("mail", channel(port, ca_file=str(cert[0]))).send(*batch())
    assert (outcome.result, outcome.code) == ("delivered", "ok")
    assert mailbox.tls == [True] and mailbox.logins == [USER]
    (msg,) = mailbox.messages
    assert msg["X-Waybill-Watch-Delivery"] == "d-mail-1"
    assert "签收未收到" in str(msg["Subject"]) or "=?utf-8?" in str(msg["Subject"])
    types = [p.get_content_type() for p in msg.walk() if not p.is_multipart()]
    assert types == ["text/plain", "text/html"]


async def test_untrusted_certificate_is_refused(tls_server: tuple[int, Any]) -> None:
    port, mailbox = tls_server
    outcome = await EmailSender("mail", channel(port)).send(*batch())
    assert (outcome.result, outcome.code) == ("failed", "tls_certificate")
    assert not mailbox.messages


async def test_wrong_password_is_not_retried(
    tls_server: tuple[int, Any], cert: tuple[Path, Path]
) -> None:
    port, mailbox = tls_server
    config = channel(port, ca_file=str(cert[0]), password="wrong")
    outcome = await EmailSender("mail", config).send(*batch())
    assert (outcome.result, outcome.code) == ("failed", "smtp_5xx")
    assert not mailbox.messages


async def test_no_starttls_offered_never_falls_back_to_plain() -> None:
    with smtp_server(None) as (port, mailbox):
        outcome = await EmailSender("mail", channel(port)).send(*batch())
        assert (outcome.result, outcome.code) == ("failed", "starttls_unsupported")
        assert not mailbox.messages


async def test_plain_smtp_when_explicitly_allowed() -> None:
    with smtp_server(None) as (port, mailbox):
        config = channel(port, security="none", allow_insecure=True, username=None, password=None)
        outcome = await EmailSender("mail", config).send(*batch("en"))
        assert outcome.result == "delivered"
        assert mailbox.tls == [False]


async def test_server_down_is_retried() -> None:
    with smtp_server(None) as (port, _):
        pass
    outcome = await EmailSender("mail", channel(port)).send(*batch())
    assert (outcome.result, outcome.code) == ("retry", "connection")
