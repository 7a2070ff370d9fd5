"""A webhook's URL carries its receiver's secret in the path (Slack, Discord, Zapier, a generic token) or the query:
every place that shows it (the Python API's records, the HTTP answers, the CLI, delivery errors, log lines,
exception messages, trace spans) shows the scheme, host, port and first path segment only; deliveries still reach
the whole URL."""

from __future__ import annotations

import asyncio
import json
import logging
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from apikit import JOB, SHOP, Api, problems
from typer.testing import CliRunner

from ductape_jobs import ValidationError
from ductape_jobs.answers import answer
from ductape_jobs.cli.main import app
from ductape_jobs.errors import HttpError
from ductape_jobs.executors.notify import post_callback
from ductape_jobs.redaction import WEBHOOK_EXTENSION, redact_url, redact_webhook_url
from ductape_jobs.tracing import _redact_http_url
from support import Recorder

# (path and query after the receiver's host and port, the secret in it, how the URL is shown after the port)
KINDS = {
    "slack": ("/services/T0AAA1/B0BBB2/SlackS3cretXyz123", "SlackS3cretXyz123", "/services/***"),
    "discord": ("/api/webhooks/112233445566/DiscordT0ken-abc_XYZ", "DiscordT0ken-abc_XYZ", "/api/***"),
    "generic": ("/hook/Gen3ricT0kenValue", "Gen3ricT0kenValue", "/hook/***"),
    "query": ("/in?hook_key=Qu3ryT0kenValue&team=ops", "Qu3ryT0kenValue", "/***?***"),
}


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://hooks.slack.com/services/T000/B000/XXXXXXXXXXXXXXXX", "https://hooks.slack.com/services/***"),
        ("https://discord.com/api/webhooks/1234/tok-EN_x", "https://discord.com/api/***"),
        ("https://hooks.zapier.com/hooks/catch/123456/abc1de2/", "https://hooks.zapier.com/hooks/***"),
        (
            "https://prod-1.westus.logic.azure.com:443/workflows/ab12/triggers/manual/paths/invoke?api-version=1&sig=S",
            "https://prod-1.westus.logic.azure.com:443/workflows/***?***",
        ),
        ("https://chat.googleapis.com/v1/spaces/AAA/messages?key=K&token=T", "https://chat.googleapis.com/v1/***?***"),
        ("https://example.com/9f8e7d6c5b4a3f2e", "https://example.com/***"),  # one segment: it may be the token
        ("https://example.com/hook/", "https://example.com/***"),
        ("https://example.com/", "https://example.com/"),
        ("https://example.com", "https://example.com"),
        ("https://example.com?token=abc", "https://example.com?***"),
        ("http://ann:pw-123@10.0.0.5:8080/a/b#frag", "http://ann:***@10.0.0.5:8080/a/***#***"),
        ("https://tok3n-as-user@example.com/a", "https://***@example.com/***"),  # a user part alone: masked whole
        ("http://example.com:99999/a/b", "http://***"),  # a port that is not one: the host part is not trusted
        (
            "https://api.telegram.org/bot123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw/sendMessage",
            "https://api.telegram.org/***",
        ),
        ("https://eo1a2b3c4d5e6f7.m.pipedream.net", "https://***.m.pipedream.net"),  # a token as the host's label
        ("http://127.0.0.1:9000/hook/x", "http://127.0.0.1:9000/hook/***"),
    ],
)
def test_a_webhooks_url_shows_its_host_and_first_path_segment(url: str, shown: str) -> None:
    assert redact_webhook_url(url) == shown


def test_a_token_as_the_first_segment_or_the_host_is_masked_in_a_text_quoting_it() -> None:
    """A receiver's answer or an error may quote the token apart from the URL (a delivery's last_error): Telegram's
    bot token (the path's first segment) and Pipedream's (the host's first label) were shown there too."""
    from ductape_jobs.redaction import mask_webhook_url

    bot = "bot123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"
    said = mask_webhook_url(f"401 from Telegram: {bot} is not a bot", f"https://api.telegram.org/{bot}/sendMessage")
    assert bot not in said and "***" in said
    said = mask_webhook_url("no endpoint eo1a2b3c4d5e6f7 here", "https://eo1a2b3c4d5e6f7.m.pipedream.net/")
    assert "eo1a2b3c4d5e6f7" not in said


def test_other_urls_are_redacted_as_before() -> None:
    """Only webhooks' URLs lose their path: an HTTP action's, a store's or a broker's keep it."""
    assert (
        redact_url("https://api.example.com/v1/users/42?token=t&q=1")
        == "https://api.example.com/v1/users/42?token=***&q=1"
    )
    assert redact_url("postgresql://app:pw@db:5432/jobs") == "postgresql://app:***@db:5432/jobs"


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_a_webhooks_secret_in_its_url_is_shown_nowhere_and_deliveries_reach_it_whole(
    api: Api, receiver: Recorder, kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    tail, secret, masked = KINDS[kind]
    url, shown = receiver.url + tail, receiver.url + masked
    c, dt = api.client(), api.dt

    # The Python API: its records are whole (deliveries use them), their repr and answer are not.
    hook, _ = dt.webhooks.create({"product_tag": "shop", "url": url, "events": ["job.scheduled"]})
    assert dt.webhooks.get(hook.id).url == url
    assert answer(hook)["url"] == shown
    for text in (repr(hook), str(dt.webhooks.list()), repr(dt.webhooks.get(hook.id)), json.dumps(answer(hook))):
        assert secret not in text and hook.secret not in text and shown in text

    # HTTP: the create answer (its maker knows the URL), the listing and the webhook.
    made = c.post("/webhooks", json={"product_tag": "shop", "url": url, "events": ["job.completed"]})
    assert made.status_code == 201 and made.json()["url"] == shown
    answers = [made.text, c.get("/webhooks").text, c.get(f"/webhooks/{hook.id}").text]
    assert all(secret not in text and shown in text for text in answers)

    # The CLI: the table, its JSON, one webhook.
    store = f"sqlite:///{api.dt.store.path}"  # type: ignore[attr-defined]
    env = {"DUCTAPE_APP": None, "DUCTAPE_STORE": None, "COLUMNS": "400"}
    for args in (["list"], ["list", "--json"], ["show", hook.id], ["show", hook.id, "--json"]):
        result = CliRunner().invoke(app, ["webhook", *args, "--store", store], env=env)
        assert result.exit_code == 0 and secret not in result.output and shown in result.output, result.output

    # A delivery reaches the whole URL; a receiver that echoes its path in its answer: the error masks it.
    receiver.reply(404, {"error": f"no webhook at {tail}"})
    api.dt.job.create(JOB)
    api.dt.job.schedule(SHOP)
    assert asyncio.run(dt.webhooks.deliver_due()) == 1
    assert receiver.last.target == tail and receiver.last.json()["event"] == "job.scheduled"  # path and query
    (delivery,) = c.get(f"/webhooks/{hook.id}/deliveries").json()["items"]
    assert delivery["last_status"] == 404 and "no webhook at" in delivery["last_error"]
    shown_deliveries = c.get(f"/webhooks/{hook.id}/deliveries").text
    listed = CliRunner().invoke(app, ["webhook", "deliveries", hook.id, "--json", "--store", store], env=env).output
    # the engine's log lines (httpx's own INFO lines name every URL: logs.setup() keeps them out, at WARNING)
    logged = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("ductape_jobs"))
    assert secret not in shown_deliveries and secret not in listed and secret not in logged
    assert "no webhook at" in logged


def test_exception_messages_about_a_webhooks_url_hide_its_secret(api: Api) -> None:
    body = {"product_tag": "shop", "url": "http://127.0.0.1:99999/hook/Gen3ricT0kenValue", "events": ["job.failed"]}
    with pytest.raises(ValidationError) as raised:
        api.dt.webhooks.create(body)
    assert raised.value.field == "url" and "invalid port" in str(raised.value)
    response = api.client().post("/webhooks", json=body)
    assert response.status_code == 422 and problems(response) == [(raised.value.field, raised.value.rule)]
    assert "Gen3ricT0kenValue" not in str(raised.value) and "Gen3ricT0kenValue" not in response.text


def test_a_delivery_request_shows_its_webhooks_url_in_errors_and_trace_spans(receiver: Recorder) -> None:
    url = receiver.url + "/services/T0AAA1/B0BBB2/SlackS3cretXyz123"
    receiver.reply(500, {"error": "down"})

    async def send() -> None:
        async with httpx.AsyncClient() as client:
            await post_callback(client, url, {"n": 1}, secret="s" * 16, webhook=True)

    with pytest.raises(HttpError) as raised:
        asyncio.run(send())
    assert "SlackS3cretXyz123" not in str(raised.value) and "/services/***" in str(raised.value)
    assert receiver.last.target == "/services/T0AAA1/B0BBB2/SlackS3cretXyz123"

    recorded: dict[str, Any] = {"url.full": url}
    span = SimpleNamespace(attributes=recorded, set_attribute=recorded.__setitem__)
    _redact_http_url(span, SimpleNamespace(extensions={WEBHOOK_EXTENSION: True}))  # type: ignore[arg-type]
    assert recorded["url.full"] == receiver.url + "/services/***"
