"""``ductape ... --json`` answers as the HTTP API does: the same record gives the same JSON (``answers.py``, one
shape each), so a script moves between the two without renaming a field, and what HTTP never answers (a
schedule's session data, a webhook's secret after its creation) the CLI never prints either."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from apikit import JOB, SHOP, Api
from typer.testing import CliRunner

from ductape_jobs.cli.main import app

SECRET = "session-secret-for-the-cli-tests-0123456789"
NAME = "Ada-the-session-user"


def cli_json(api: Api, *args: str) -> Any:
    """``ductape ARGS --json`` on the API's own store file; its parsed output."""
    store = f"sqlite:///{api.dt.store.path}"  # type: ignore[attr-defined]
    env = {"DUCTAPE_APP": None, "DUCTAPE_STORE": None, "COLUMNS": "200"}
    result = CliRunner().invoke(app, [*args, "--json", "--store", store], env=env)
    assert result.exit_code == 0, (result.stdout, result.stderr, result.exception)
    return json.loads(result.stdout)


def test_the_cli_prints_each_record_as_the_http_api_answers_it(api: Api) -> None:
    dt = api.dt
    dt.products.add(
        {
            "tag": "shop",
            "envs": {"prd": {"session_secret": SECRET}},
            "sessions": {"user-session": {"name": "User", "schema": {"name": "string"}, "selector": "$Session{name}"}},
            "features": {
                "greet": {
                    "input": {"n": "integer"},
                    "sequence": [
                        {"sequence_tag": "a", "parents": [], "events": [{"type": "FUNCTION", "event": "report"}]}
                    ],
                }
            },
        }
    )

    def boom(input: Any, ctx: Any) -> Any:
        raise RuntimeError("boom")

    dt.function("boom")(boom)
    dt.job.create({**JOB, "executions": 3, "intervals": 60_000})
    dt.job.create({"name": "Boom", "tag": "boom", "event_type": "FUNCTION", "event_tag": "boom"})
    token = str(dt.session.start("user-session", {"name": NAME}, env="prd", product_tag="shop"))
    job_id = dt.job.schedule({**SHOP, "session": token, "input": {"who": "$Session{name}"}}).job_id
    assert dt.store.get_schedule(job_id).session == {"name": NAME}  # type: ignore[union-attr]  # it is stored
    hook, secret = dt.webhooks.create({"product_tag": "shop", "url": "http://127.0.0.1:9/x", "events": ["job.failed"]})
    failing = dt.job.schedule({**SHOP, "event": "boom"}).job_id
    dt.drain()
    assert asyncio.run(dt.webhooks.deliver_due()) == 1  # job.failed, to a port where nothing listens: not delivered
    (run,) = dt.job.runs(job_id=job_id)
    feature = dt.feature.run("greet", env="prd", product_tag="shop", input={"n": 1}, session=token)
    assert dt.store.get_feature_run(feature.id).session == {"name": NAME}  # type: ignore[union-attr]  # stored too
    c = api.client()

    def http(path: str) -> Any:
        answer = c.get(path)
        assert answer.status_code == 200, answer.text
        return answer.json()

    assert cli_json(api, "job", "show", "report") == http("/jobs/report")
    assert cli_json(api, "job", "list") == http("/jobs")["items"]
    shown = cli_json(api, "show", job_id)
    assert shown == http(f"/schedules/{job_id}") and shown["job_id"] == job_id and "id" not in shown
    listed = cli_json(api, "schedules")
    assert listed == http("/schedules")["items"] and {s["job_id"] for s in listed} == {job_id, failing}
    assert NAME not in json.dumps([shown, listed])  # the session's data: never part of an answer
    ran = cli_json(api, "run", "show", run.id)
    assert ran == http(f"/runs/{run.id}") and ran["phase"] == "completed" and len(ran["attempts"]) == 1
    assert cli_json(api, "runs") == http("/runs")["items"]
    assert cli_json(api, "history", job_id) == http(f"/schedules/{job_id}/history")
    assert cli_json(api, "stats") == http("/stats/jobs")
    since = cli_json(api, "stats", "--since", "2026-01-01T00:00:00Z")
    assert since == http("/stats/jobs?since=2026-01-01T00:00:00Z") and since["since"] == "2026-01-01T00:00:00Z"
    assert cli_json(api, "history", failing) == http(f"/schedules/{failing}/history")
    shown_feature = cli_json(api, "feature", "show", feature.id)
    assert shown_feature == http(f"/features/runs/{feature.id}") and len(shown_feature["events"]) == 1
    assert cli_json(api, "feature", "runs") == http("/features/runs")["items"]
    assert NAME not in json.dumps([shown_feature, cli_json(api, "feature", "runs")])
    (delivery,) = cli_json(api, "webhook", "deliveries", hook.id)
    assert [delivery] == http(f"/webhooks/{hook.id}/deliveries")["items"] and delivery["event"] == "job.failed"
    hooked = cli_json(api, "webhook", "show", hook.id)
    assert hooked == http(f"/webhooks/{hook.id}") and hooked["secret"] is None
    assert cli_json(api, "webhook", "list") == http("/webhooks")["items"]
    assert secret not in json.dumps([hooked, delivery, cli_json(api, "webhook", "list")])
