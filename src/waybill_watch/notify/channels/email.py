"""E-mail over SMTP: STARTTLS (or implicit TLS) and authentication, text and HTML parts.

stdlib ``smtplib`` in a worker thread, one connection per message. A server that does not
offer STARTTLS is an error, never a silent fall-back to clear text; plain SMTP happens only
with ``security = "none"`` and ``allow_insecure = true`` (a local test server). The message
id is derived from the delivery id and the ``X-Waybill-Watch-Delivery`` header carries it, so
a re-sent message can be recognised.

SMTP replies: 4xx and lost connections are retried; 5xx (a refused recipient, a bad login),
certificate and STARTTLS problems are not.
"""

from __future__ import annotations

import asyncio
import html
import smtplib
import ssl
from collections.abc import Sequence
from email.message import EmailMessage
from email.utils import formatdate

from waybill_watch.notify.channels.base import Outcome, Result
from waybill_watch.notify.model import Notice
from waybill_watch.notify.render import FONT, Batch, label, plain_text
from waybill_watch.notify.rules import EmailChannel
from waybill_watch.notify.signing import DELIVERY_HEADER

SEVERITY_COLOURS = {
    "critical": "#b71c1c",
    "high": "#e65100",
    "warning": "#f9a825",
    "info": "#1565c0",
}


def html_body(batch: Batch) -> str:
    """The HTML part (every value escaped)."""
    e = html.escape
    parts = [
        f'<div style="font-family:{FONT};font-size:14px;color:#222">',
        f'<h2 style="color:{SEVERITY_COLOURS.get(batch.severity, "#222")}">{e(batch.title)}</h2>',
    ]
    for m in batch.messages:
        parts.append('<div style="margin:0 0 18px 0">')
        if batch.is_digest:
            parts.append(f"<h3>{e(m.title)}</h3>")
        parts.append(f"<p><b>{e(m.summary)}</b></p><table>")
        parts.extend(
            f'<tr><td style="color:#666;padding-right:12px">{e(k)}</td><td>{e(v)}</td></tr>'
            for k, v in m.fields
        )
        parts.append("</table>")
        if m.evidence:
            parts.append(f"<p>{e(label('evidence', batch.language))}:</p><ul>")
            parts.extend(f"<li>{e(x)}</li>" for x in m.evidence)
            parts.append("</ul>")
        if m.next_step:
            parts.append(f"<p><b>{e(label('next_step', batch.language))}</b>: {e(m.next_step)}</p>")
        parts.append(f'<p><a href="{e(m.link, quote=True)}">{e(m.link_label)}</a></p></div>')
    parts.append(f'<p style="color:#888;font-size:12px">{e(batch.footer)}</p></div>')
    return "".join(parts)


def message(config: EmailChannel, batch: Batch) -> EmailMessage:
    """The e-mail of one batch."""
    msg = EmailMessage()
    msg["Subject"] = config.subject_prefix + batch.title
    msg["From"] = config.sender
    msg["To"] = ", ".join(config.to)
    if config.cc:
        msg["Cc"] = ", ".join(config.cc)
    msg["Date"] = formatdate(localtime=False, usegmt=True)
    msg["Message-ID"] = f"<{batch.delivery_id}@waybill-watch>"
    msg[DELIVERY_HEADER] = batch.delivery_id
    msg.set_content(plain_text(batch))
    msg.add_alternative(html_body(batch), subtype="html")
    return msg


def _deliver(config: EmailChannel, msg: EmailMessage) -> None:
    timeout = config.timeout.total_seconds()
    context = ssl.create_default_context(cafile=str(config.ca_file) if config.ca_file else None)
    smtp: smtplib.SMTP
    if config.security == "tls":
        smtp = smtplib.SMTP_SSL(config.host, config.port, timeout=timeout, context=context)
    else:
        smtp = smtplib.SMTP(config.host, config.port, timeout=timeout)
    with smtp:
        smtp.ehlo()
        if config.security == "starttls":
            smtp.starttls(context=context)  # raises SMTPNotSupportedError if not offered
            smtp.ehlo()
        if config.username and config.password is not None:
            smtp.login(config.username, config.password.get_secret_value())
        smtp.send_message(msg)


def classify(exc: BaseException) -> Outcome:
    """What an SMTP failure means for the next try."""
    detail = f"{type(exc).__name__}: {exc}"[:300]
    if isinstance(exc, smtplib.SMTPNotSupportedError):
        return Outcome("failed", "starttls_unsupported", detail)
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        codes = [code for code, _ in exc.recipients.values()]
        if codes and all(400 <= c < 500 for c in codes):
            return Outcome("retry", "smtp_4xx", detail)
        return Outcome("failed", "recipients_refused", detail)
    if isinstance(exc, smtplib.SMTPResponseException):
        kind: Result = "retry" if 400 <= exc.smtp_code < 500 else "failed"
        return Outcome(kind, f"smtp_{exc.smtp_code // 100}xx", detail)
    if isinstance(exc, ssl.SSLCertVerificationError):
        return Outcome("failed", "tls_certificate", detail)
    if isinstance(exc, TimeoutError):
        return Outcome("retry", "timeout", detail)
    if isinstance(exc, smtplib.SMTPException | OSError):
        return Outcome("retry", "connection", detail)
    return Outcome("failed", "smtp_error", detail)


class EmailSender:
    """Sends each batch as one e-mail to the configured recipients."""

    def __init__(self, name: str, config: EmailChannel) -> None:
        self.name = name
        self.config = config

    async def send(self, batch: Batch, notices: Sequence[Notice]) -> Outcome:
        msg = message(self.config, batch)
        try:
            await asyncio.to_thread(_deliver, self.config, msg)
        except Exception as exc:
            return classify(exc)
        return Outcome("delivered", "ok")
