"""Email over SMTP (aiosmtplib): one message with text and/or HTML parts to To/Cc/Bcc recipients."""

from __future__ import annotations

from email.message import EmailMessage
from email.utils import formatdate, getaddresses, make_msgid, parseaddr
from typing import Any

import aiosmtplib
from msgspec import Struct

from ductape_jobs.errors import SmtpError, ValidationError, describe
from ductape_jobs.limits import header_breaks
from ductape_jobs.redaction import fields_without, repr_without

# Headers callers may not set: they describe the MIME structure, or (Bcc) would reveal hidden recipients.
_RESERVED_HEADERS = frozenset({"bcc", "content-type", "content-transfer-encoding", "mime-version"})

#: SmtpSettings' fields that hold secrets: never in its repr (nor rich's).
_SECRET = frozenset({"password"})


class SmtpSettings(Struct, frozen=True, kw_only=True):
    """An SMTP server. ``use_tls``: TLS from the first byte (usually port 465). ``start_tls``: ``None`` upgrades
    when the server offers STARTTLS, ``True`` requires it, ``False`` never upgrades. ``sender`` is the From
    address (``"Name <addr>"`` allowed); the login happens when ``username`` is set."""

    host: str
    port: int
    sender: str
    username: str | None = None
    password: str | None = None
    use_tls: bool = False
    start_tls: bool | None = None
    timeout: float = 30.0

    def __repr__(self) -> str:
        return repr_without(self, _SECRET)

    def __rich_repr__(self) -> list[tuple[str, Any]]:
        return fields_without(self, _SECRET)

    def __post_init__(self) -> None:
        if not self.host:
            raise ValidationError("smtp.host", "is required")
        if not 0 < self.port < 65536:
            raise ValidationError("smtp.port", f"must be 1-65535, not {self.port}")
        if self.use_tls and self.start_tls:
            raise ValidationError("smtp.start_tls", "cannot be combined with use_tls (already TLS)")
        if not parseaddr(self.sender)[1]:
            raise ValidationError("smtp.sender", f"{self.sender!r} is not an email address")


async def send_email(
    smtp: SmtpSettings,
    *,
    to: list[str],
    subject: str,
    text: str | None,
    html: str | None,
    cc: list[str] | None = None,
    bcc: list[str] | None = None,
    reply_to: str | None = None,
    headers: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Send one message and return ``{"accepted": [...], "rejected": {addr: reply}, "message_id", "response"}``.

    With both ``text`` and ``html`` the message is multipart/alternative. ``headers`` add or replace headers
    (Reply-To, Message-ID, List-Unsubscribe, ...), except the MIME ones and Bcc. Bcc recipients get the
    message without appearing in it. Recipients the server refuses while others are accepted are listed in
    ``rejected``; when all are refused, or anything else fails, :class:`SmtpError` is raised.
    """
    message = _build(smtp, to, cc or [], subject, text, html, reply_to, headers or {})
    recipients = list(dict.fromkeys(addr for _, addr in getaddresses([*to, *(cc or []), *(bcc or [])]) if addr))
    if not recipients:
        raise SmtpError("an email needs at least one recipient", retryable=False)
    where = f"SMTP {smtp.host}:{smtp.port}"
    try:
        refused, reply = await aiosmtplib.send(
            message,
            sender=parseaddr(smtp.sender)[1],
            recipients=recipients,
            hostname=smtp.host,
            port=smtp.port,
            username=smtp.username,
            password=(smtp.password or "") if smtp.username is not None else None,
            use_tls=smtp.use_tls,
            start_tls=smtp.start_tls,
            timeout=smtp.timeout,
        )
    except aiosmtplib.SMTPRecipientsRefused as exc:
        rejected = {r.recipient: f"{r.code} {r.message}" for r in exc.recipients}
        retryable = any(_temporary(r.code) for r in exc.recipients)
        raise SmtpError(f"{where} refused every recipient: {rejected}", retryable, {"rejected": rejected}) from exc
    except aiosmtplib.SMTPResponseException as exc:
        details = {"code": exc.code, "reply": exc.message}
        raise SmtpError(
            f"{where}: {type(exc).__name__} {exc.code} {exc.message}", _temporary(exc.code), details
        ) from exc
    except aiosmtplib.SMTPNotSupported as exc:
        raise SmtpError(f"{where}: {exc}", retryable=False) from exc
    except (aiosmtplib.SMTPException, OSError) as exc:  # connection, disconnect, timeouts
        raise SmtpError(f"{where}: {describe(exc)}", retryable=True) from exc
    return {
        "accepted": [r for r in recipients if r not in refused],
        "rejected": {addr: f"{r.code} {r.message}" for addr, r in refused.items()},
        "message_id": message["Message-ID"],
        "response": reply,
    }


def _temporary(code: int) -> bool:
    return not 500 <= code < 600


def _build(
    smtp: SmtpSettings,
    to: list[str],
    cc: list[str],
    subject: str,
    text: str | None,
    html: str | None,
    reply_to: str | None,
    headers: dict[str, str],
) -> EmailMessage:
    if text is None and html is None:
        raise SmtpError("an email needs a text or an html body", retryable=False)
    message = EmailMessage()
    try:
        message["From"] = smtp.sender
        if to:
            message["To"] = ", ".join(to)
        if cc:
            message["Cc"] = ", ".join(cc)
        if reply_to:
            message["Reply-To"] = reply_to
        message["Subject"] = subject
        message["Date"] = formatdate(usegmt=True)
        message["Message-ID"] = make_msgid(domain=parseaddr(smtp.sender)[1].rpartition("@")[2] or None)
        for name, value in headers.items():
            if name.lower() in _RESERVED_HEADERS:
                raise SmtpError(f"header {name!r} cannot be set on an email", retryable=False)
            del message[name]
            message[name] = value
        if text is not None:
            message.set_content(text)
            if html is not None:
                message.add_alternative(html, subtype="html")
        elif html is not None:
            message.set_content(html, subtype="html")
    except (ValueError, TypeError) as exc:
        raise SmtpError(f"cannot build the email: {exc}", retryable=False) from exc
    _check_decoded(message)
    return message


def _check_decoded(message: EmailMessage) -> None:
    """Each header as it is written out, its encoded words (``=?utf-8?q?...?=``) decoded, holds nothing that could end
    its line (``limits.header_breaks``): before Python 3.11.10 and 3.12.5 the email package wrote a decoded line
    break out (CVE-2024-6923), and a subject piped from a caller's input added headers and a body to the message (a
    security probe). A tab or a bidirectional mark (which i18n libraries put around names) is sent as it was."""
    for name, value in message.items():
        if header_breaks(str(value)):
            said = (
                f"cannot build the email: its header {name!r}, its encoded words (=?...?=) decoded, holds a line "
                "break or another control character"
            )
            raise SmtpError(said, retryable=False)
