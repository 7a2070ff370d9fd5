"""Secrets stay secret: a webhook secret, a session token, an API key and its hash never appear in API answers
(but the one that creates the webhook), in run records, or in logs."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from typing import Any

import httpx
import pytest
from apikit import Api

from ductape_jobs import logs

WEBHOOK_SECRET = "known-webhook-secret-0123456789"
SESSION_SECRET = "session-secret-for-tests-0123456789abcdef"


def test_no_answer_or_log_line_carries_a_secret(api: Api, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    dt = api.dt
    dt.products.add(
        {
            "tag": "shop",
            "envs": {"prd": {"session_secret": SESSION_SECRET}},
            "sessions": {
                "user-session": {"name": "User", "schema": {"user": "object"}, "selector": "$Session{user}{id}"}
            },
        }
    )
    dt.function("greet")(lambda input, ctx: {"hello": input["user"]})
    dt.job.create({"name": "Greet", "tag": "greet", "event_type": "FUNCTION", "event_tag": "greet"})
    token = str(dt.session.start("user-session", {"user": {"id": "u-7"}}, env="prd", product_tag="shop"))
    jwt = token.partition(":")[2]
    key_record = next(k for k in api.keys.list() if k.name == "admin")
    c = api.client()
    answers: list[str] = []

    def keep(response: httpx.Response) -> httpx.Response:
        answers.append(response.text)
        return response

    created = c.post(
        "/webhooks",
        json={"product_tag": "shop", "url": "http://127.0.0.1:9/hook", "events": ["job.completed"],
              "secret": WEBHOOK_SECRET},
    )  # fmt: skip
    assert created.json()["secret"] == WEBHOOK_SECRET  # shown once, here
    hook = created.json()["id"]
    request = {"env": "prd", "product_tag": "shop", "event": "greet", "input": {"user": "$Session{user}{id}"}}
    job_id = keep(c.post("/schedule", json={**request, "session": token})).json()["job_id"]
    keep(c.post("/schedule", json={**request, "session": {"tag": "user-session", "token": jwt}}))
    keep(c.post("/schedule", json={**request, "session": {"tag": "user-session", "token": jwt[:-3] + "abc"}}))
    keep(c.post("/schedule", json={**request, "session": token, "bogus": token}))
    dt.drain()
    asyncio.run(dt.webhooks.deliver_due())  # port 9: refused, recorded as an error
    for path in ("/schedules", f"/schedules/{job_id}", "/webhooks", f"/webhooks/{hook}/deliveries",
                 "/stats/overview", "/stats/forecast", "/jobs"):  # fmt: skip
        keep(c.get(path))
    runs = keep(c.get("/runs", params={"job_id": job_id})).json()["items"]
    run = keep(c.get(f"/runs/{runs[0]['id']}")).json()
    assert run["output"] == {"hello": "u-7"}  # the session's data was used
    keep(api.raw().get("/metrics"))
    keep(api.raw().get("/openapi.json"))
    keep(c.get("/runs", params={"api_key": api.admin_key}))  # a key in a URL: only its prefix is logged

    # run records keep the verified data, never the token
    for run in dt.job.runs():
        assert jwt not in json.dumps([run.input, run.output, run.error, run.session], default=str)

    lines = [logs.JsonFormatter().format(r) for r in caplog.records]
    lines += [logs.TextFormatter().format(r) for r in caplog.records]
    assert any("GET /api/v1/runs" in line for line in lines)  # uvicorn's access lines were captured
    for secret in (WEBHOOK_SECRET, jwt, token, api.admin_key, key_record.hash):
        for text in answers:
            assert secret not in text
        for line in lines:
            assert secret not in line, line
    assert any(api.admin_key[:16] in line for line in lines)  # the visible prefix names the key


def test_log_lines_mask_secrets_and_carry_the_run() -> None:
    record = logging.LogRecord(
        "x", logging.INFO, __file__, 1, "GET /?api_key=%s Authorization: Bearer %s secret %s jwt %s", None, None
    )
    record.args = (
        "dtk_0123456789ab_SECRETPART",
        "abc.def",
        "whsec_hidden",
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln",
    )
    record.run_id, record.job_tag, record.attempt = "run_1", "report", 2
    line = json.loads(logs.JsonFormatter().format(record))
    assert (line["run_id"], line["job_tag"], line["attempt"], line["level"]) == ("run_1", "report", 2, "info")
    for secret in ("SECRETPART", "abc.def", "whsec_hidden", "c2ln"):
        assert secret not in line["message"]
    text = logs.TextFormatter().format(record)
    assert "[run_id=run_1 job_tag=report attempt=2]" in text and "SECRETPART" not in text


def test_setup_writes_json_lines_unless_a_terminal(monkeypatch: Any) -> None:
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    stream = io.StringIO()
    try:
        logs.setup(logging.INFO, stream=stream)  # a StringIO is not a terminal
        logging.getLogger("ductape_jobs.test").info("hello %s", "there")
        assert json.loads(stream.getvalue().splitlines()[-1])["message"] == "hello there"

        class Tty(io.StringIO):
            def isatty(self) -> bool:
                return True

        tty = Tty()
        logs.setup(logging.INFO, stream=tty)
        logging.getLogger("ductape_jobs.test").warning("readable")
        assert tty.getvalue().rstrip().endswith("WARNING ductape_jobs.test: readable")
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
