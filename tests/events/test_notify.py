"""Notification transports against real local servers: aiosmtpd for email, http.server for push/SMS/callbacks."""

from __future__ import annotations

import asyncio
import base64
import email
import email.policy
import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from aiosmtpd.controller import Controller
from rich.pretty import pretty_repr

from ductape_jobs.errors import ExecutionError, ValidationError
from ductape_jobs.executors.http import HttpAuth, HttpError
from ductape_jobs.executors.notify import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    ProviderSettings,
    SmtpError,
    SmtpSettings,
    post_callback,
    send_email,
    send_push,
    send_sms,
    verify_signature,
)
from support import Mailbox, Recorder, Smtp, free_port, start_smtp


@pytest.fixture
def smtp() -> Iterator[Smtp]:
    controller, server = start_smtp()
    yield server
    controller.stop()


@pytest.fixture
def smtp_auth() -> Iterator[Smtp]:
    mailbox = Mailbox()
    port = free_port()
    controller = Controller(
        mailbox, hostname="127.0.0.1", port=port, authenticator=mailbox.authenticate, auth_require_tls=False
    )
    controller.start()
    yield Smtp(mailbox, port)
    controller.stop()


def mail(settings: SmtpSettings, **kw: Any) -> dict[str, Any]:
    args: dict[str, Any] = {"to": ["ann@example.com"], "subject": "Hi", "text": "hello", "html": None, **kw}
    return asyncio.run(send_email(settings, **args))


def mail_error(settings: SmtpSettings, **kw: Any) -> SmtpError:
    with pytest.raises(SmtpError) as info:
        mail(settings, **kw)
    assert isinstance(info.value, ExecutionError)
    return info.value


# ------------------------------------------------------------------------------------------- email


def test_an_email_arrives_with_its_parts_and_headers(smtp: Smtp) -> None:
    result = mail(
        smtp.settings(),
        to=["Ann <ann@example.com>", "bob@example.com"],
        cc=["cid@example.com"],
        bcc=["hidden@example.com"],
        subject="Your report ✓",
        text="plain body",
        html="<p>html body</p>",
        reply_to="support@example.com",
        headers={"X-Job": "nightly", "List-Unsubscribe": "<mailto:u@example.com>"},
    )
    everyone = ["ann@example.com", "bob@example.com", "cid@example.com", "hidden@example.com"]
    assert result["accepted"] == everyone and result["rejected"] == {}
    envelope = smtp.mailbox.envelopes[-1]
    assert envelope.mail_from == "jobs@example.com"
    assert envelope.rcpt_tos == everyone
    message = smtp.mailbox.message()
    assert message["Subject"] == "Your report ✓"
    assert message["From"] == "Jobs <jobs@example.com>"
    assert message["To"] == "Ann <ann@example.com>, bob@example.com"
    assert message["Cc"] == "cid@example.com"
    assert message["Bcc"] is None
    assert message["Reply-To"] == "support@example.com"
    assert message["X-Job"] == "nightly"
    assert message["Message-ID"] == result["message_id"] and result["message_id"].endswith("@example.com>")
    assert message.get_content_type() == "multipart/alternative"
    text_part = message.get_body(preferencelist=("plain",))
    html_part = message.get_body(preferencelist=("html",))
    assert text_part is not None and html_part is not None
    assert text_part.get_content().strip() == "plain body"
    assert html_part.get_content().strip() == "<p>html body</p>"


def test_text_only_and_html_only(smtp: Smtp) -> None:
    mail(smtp.settings(), text="just text", html=None)
    assert smtp.mailbox.message().get_content_type() == "text/plain"
    mail(smtp.settings(), text=None, html="<b>just html</b>", headers={"Message-ID": "<fixed@example.com>"})
    message = smtp.mailbox.message()
    assert message.get_content_type() == "text/html"
    assert message["Message-ID"] == "<fixed@example.com>"


def test_login_happens_when_a_username_is_set(smtp_auth: Smtp) -> None:
    result = mail(smtp_auth.settings(username="jobs", password="s3cret"))
    assert result["accepted"] == ["ann@example.com"]
    assert smtp_auth.mailbox.logins == [(b"jobs", b"s3cret")]
    error = mail_error(smtp_auth.settings(username="jobs", password="wrong"))
    assert error.retryable is False  # 535 authentication failed
    assert "535" in str(error) and "wrong" not in str(error)


def test_some_refused_recipients_are_reported(smtp: Smtp) -> None:
    result = mail(smtp.settings(), to=["ann@example.com", "bad@example.com"])
    assert result["accepted"] == ["ann@example.com"]
    assert list(result["rejected"]) == ["bad@example.com"] and result["rejected"]["bad@example.com"].startswith("550")
    assert smtp.mailbox.envelopes[-1].rcpt_tos == ["ann@example.com"]


def test_all_recipients_refused_permanently_is_not_retryable(smtp: Smtp) -> None:
    error = mail_error(smtp.settings(), to=["bad@example.com"])
    assert error.retryable is False
    assert error.details is not None and "bad@example.com" in error.details["rejected"]


def test_a_temporary_refusal_is_retryable(smtp: Smtp) -> None:
    error = mail_error(smtp.settings(), to=["later@example.com", "bad@example.com"])
    assert error.retryable is True
    assert not smtp.mailbox.envelopes


def test_no_server_is_retryable() -> None:
    settings = SmtpSettings(host="127.0.0.1", port=free_port(), sender="jobs@example.com", timeout=5)
    error = mail_error(settings)
    assert error.retryable is True
    assert "127.0.0.1" in str(error)


def test_unsendable_emails_are_not_retryable(smtp: Smtp) -> None:
    assert mail_error(smtp.settings(), text=None, html=None).retryable is False
    assert mail_error(smtp.settings(), to=[], cc=None).retryable is False
    assert mail_error(smtp.settings(), headers={"Bcc": "spy@example.com"}).retryable is False
    assert mail_error(smtp.settings(), subject="one\r\nX-Injected: yes").retryable is False
    assert not smtp.mailbox.envelopes


@pytest.mark.parametrize(
    "given",
    [
        {"subject": "Welcome =?utf-8?q?x=0D=0AReply-To=3A_e=40example.net=0D=0A=0D=0A<h1>hi</h1>?="},
        {"subject": "=?utf-8?b?aGkNCkJjYzogZUBleGFtcGxlLm5ldA==?="},
        {"to": ["=?utf-8?q?Ann=0ABcc=3A_e=40example.net?= <ann@example.com>"]},
        {"headers": {"X-Tag": "=?utf-8?q?t=0D=0AX-Injected=3A_yes?="}},
        {"reply_to": "=?utf-8?q?R=0D=0ABcc=3A_e=40example.net?= <r@example.com>"},
    ],
)
def test_an_encoded_word_that_decodes_to_a_line_break_is_refused_at_send(smtp: Smtp, given: dict[str, Any]) -> None:
    """A security probe: a subject piped from a caller's input, ``=?utf-8?q?x=0D=0AReply-To=3A...?=``, was decoded by
    the email package and written out with its line breaks (CVE-2024-6923, Python before 3.11.10 and 3.12.5): the
    message sent had a Reply-To, a Content-Type and an HTML body of the caller's. Refused, whatever the Python."""
    error = mail_error(smtp.settings(), **given)
    assert error.retryable is False and str(error).startswith("cannot build the email:")  # an address: email's own
    assert not smtp.mailbox.envelopes


def test_an_encoded_word_without_a_line_break_is_sent_as_it_decodes(smtp: Smtp) -> None:
    """And a tab or a bidirectional isolate (Fluent-style i18n puts U+2068/U+2069 around names) in a subject a
    template fills goes out as it did (a review: the send-time check first refused every non-printable)."""
    subject = "Caf=?utf-8?q?=C3=A9?= open for \u2068Ann\u2069\tnow"
    mail(smtp.settings(), subject=subject, to=["=?utf-8?q?Ren=C3=A9e?= <renee@example.com>"])
    (envelope,) = smtp.mailbox.envelopes
    assert envelope.rcpt_tos == ["renee@example.com"]
    received = email.message_from_bytes(envelope.content, policy=email.policy.default)
    assert str(received["Subject"]) == "Café open for \u2068Ann\u2069\tnow"
    assert str(received["To"]) == "Renée <renee@example.com>"


def test_smtp_settings_are_validated() -> None:
    with pytest.raises(ValidationError):
        SmtpSettings(host="h", port=465, sender="a@b.c", use_tls=True, start_tls=True)
    with pytest.raises(ValidationError):
        SmtpSettings(host="h", port=0, sender="a@b.c")
    with pytest.raises(ValidationError):
        SmtpSettings(host="h", port=25, sender="")
    assert "pw-value" not in repr(SmtpSettings(host="h", port=25, sender="a@b.c", password="pw-value"))


# ------------------------------------------------------------------------------------------- HTTP server


@pytest.fixture
def server(http: Recorder) -> Recorder:
    """The shared local HTTP server (conftest's ``http``)."""
    return http


def run(make: Any) -> Any:
    async def go() -> Any:
        async with httpx.AsyncClient() as client:
            return await make(client)

    return asyncio.run(go())


# ------------------------------------------------------------------------------------------- push and SMS


def test_push_with_the_default_body(server: Recorder) -> None:
    provider = ProviderSettings(url=server.url + "/push", auth=HttpAuth("bearer", token="push-key"), headers={})
    result = run(
        lambda c: send_push(c, provider, tokens=["t1", "t2"], title="Done", body="Job ran", data={"run": "r-1"})
    )
    assert result["status"] == 200 and result["body"] == {"ok": True}
    seen = server.last
    assert seen.target == "/push" and seen.headers["authorization"] == "Bearer push-key"
    assert json.loads(seen.body) == {"tokens": ["t1", "t2"], "title": "Done", "body": "Job ran", "data": {"run": "r-1"}}


def test_sms_default_and_form_encoded_bodies(server: Recorder) -> None:
    provider = ProviderSettings(url=server.url + "/sms", auth=HttpAuth("header", name="X-Key", value="k"), headers={})
    run(lambda c: send_sms(c, provider, to="+15550001", body="Your code is 1234", sender="Ductape"))
    assert server.last.headers["x-key"] == "k"
    assert json.loads(server.last.body) == {"to": "+15550001", "body": "Your code is 1234", "from": "Ductape"}
    run(lambda c: send_sms(c, provider, to="+15550001", body="no sender", sender=None))
    assert json.loads(server.last.body) == {"to": "+15550001", "body": "no sender"}

    twilio = ProviderSettings(
        url=server.url + "/2010-04-01/Accounts/AC1/Messages.json",
        auth=HttpAuth("basic", username="AC1", password="tok"),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    run(lambda c: send_sms(c, twilio, to="+15550001", body="a&b c", sender="+15559999"))
    assert server.last.body == b"to=%2B15550001&body=a%26b+c&from=%2B15559999"
    assert server.last.headers["authorization"] == "Basic " + base64.b64encode(b"AC1:tok").decode()


def test_provider_failures_follow_http_rules(server: Recorder) -> None:
    provider = ProviderSettings(url=server.url + "/sms", auth=None, headers={})
    server.reply(503, {"error": "busy"})
    server.reply(400, {"error": "bad number"})
    for retryable in (True, False):
        with pytest.raises(HttpError) as info:
            run(lambda c: send_sms(c, provider, to="+1", body="x", sender=None))
        assert info.value.retryable is retryable
        assert info.value.details is not None and info.value.details["body"]["error"]
    with pytest.raises(HttpError) as info:
        run(lambda c: send_push(c, provider, tokens=[], title="t", body="b", data=None))
    assert info.value.retryable is False
    assert len(server.seen) == 2


# ------------------------------------------------------------------------------------------- callbacks


def test_a_callback_is_signed_and_verifies(server: Recorder) -> None:
    payload = {"run": "r-1", "status": "done", "note": "ünïcode"}
    result = run(
        lambda c: post_callback(c, server.url + "/hook?x=1", payload, secret="whsec", headers={"X-Tenant": "t1"})
    )
    assert result["status"] == 200
    seen = server.last
    assert seen.target == "/hook?x=1" and seen.headers["x-tenant"] == "t1"
    assert seen.headers["content-type"] == "application/json"
    assert json.loads(seen.body) == payload
    timestamp = seen.headers[TIMESTAMP_HEADER.lower()]
    signature = seen.headers[SIGNATURE_HEADER.lower()]
    assert signature.startswith("sha256=") and abs(int(timestamp) - time.time()) < 60
    assert verify_signature("whsec", seen.body, timestamp, signature)
    assert verify_signature("whsec", seen.body.decode(), int(timestamp), signature)

    tampered = seen.body.replace(b"done", b"fail")
    assert not verify_signature("whsec", tampered, timestamp, signature)
    assert not verify_signature("other", seen.body, timestamp, signature)
    assert not verify_signature("whsec", seen.body, int(timestamp) + 1, signature)  # the timestamp is signed too
    assert not verify_signature("whsec", seen.body, timestamp, signature, now=int(timestamp) + 301)
    assert verify_signature("whsec", seen.body, timestamp, signature, tolerance_s=None, now=int(timestamp) + 10**6)
    assert not verify_signature("whsec", seen.body, "not-a-number", signature)
    assert not verify_signature("whsec", seen.body, timestamp, "garbage")


def test_callback_headers_cannot_forge_the_signature(server: Recorder) -> None:
    forged = {SIGNATURE_HEADER: "sha256=00", "content-type": "text/plain"}
    run(lambda c: post_callback(c, server.url, [1, 2], secret="k", headers=forged, timestamp=1_700_000_000))
    seen = server.last
    assert seen.headers["content-type"] == "application/json" and seen.body == b"[1,2]"
    assert seen.headers[TIMESTAMP_HEADER.lower()] == "1700000000"
    assert verify_signature("k", seen.body, 1_700_000_000, seen.headers[SIGNATURE_HEADER.lower()], now=1_700_000_000)


def test_callback_failures(server: Recorder) -> None:
    server.reply(500, {"error": "receiver down"})
    with pytest.raises(HttpError) as info:
        run(lambda c: post_callback(c, server.url, {"a": 1}, secret="k"))
    assert info.value.retryable is True and "HTTP 500" in str(info.value)
    with pytest.raises(HttpError) as info:
        run(lambda c: post_callback(c, server.url, {"a": 1}, secret=""))
    assert info.value.retryable is False
    with pytest.raises(HttpError) as info:
        run(lambda c: post_callback(c, server.url, {"a": object()}, secret="k"))
    assert info.value.retryable is False
    assert len(server.seen) == 1


def test_smtp_settings_keep_the_password_out_of_repr_and_rich() -> None:
    settings = SmtpSettings(host="h", port=465, sender="a@b.c", username="u", password="hunter2")
    text = repr(settings) + pretty_repr(settings)
    assert "hunter2" not in text and "username='u'" in text
