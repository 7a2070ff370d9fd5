"""Features scheduled as jobs (``event_type: FEATURE``): on a cron through ``schedule()`` and a worker; a job
run's next attempt resumes its feature run; and the ``ductape feature`` CLI."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from feature_kit import App, fn, seq, shop
from typer.testing import CliRunner, Result

from ductape_jobs import JobEventTypes, RunPhase, ValidationError
from ductape_jobs.cli.main import app as cli_app
from ductape_jobs.features import EventResult, EventStatus, FeatureRun, FeatureRunStatus
from ductape_jobs.products import Products
from ductape_jobs.testing import Sandbox

MakeApp = Callable[..., App]
DIGEST = {
    "digest": {
        "input": {"team": "string"},
        "required": ["team"],
        "sequence": [
            seq("collect", fn("count", {"team": "$Input{team}"})),
            seq("send", fn("post", {"line": "$Input{team}: $Sequence{collect}{count}{n}"}), parents=["collect"]),
        ],
    }
}


def test_a_feature_runs_on_a_cron_through_schedule(tmp_path: Path) -> None:
    dt = Sandbox(start=datetime(2026, 3, 7, tzinfo=UTC), products=Products([shop(DIGEST)]))  # type: ignore[list-item]
    posted: list[str] = []
    dt.function("count")(lambda input, ctx: {"n": len(posted) + 1})
    dt.function("post")(lambda input, ctx: posted.append(input["line"]))
    dt.job.create({"name": "Digest", "tag": "daily-digest", "event_type": "FEATURE", "event_tag": "digest"})
    assert dt.job.fetch("daily-digest").event_type is JobEventTypes.FEATURE
    job_id = dt.job.schedule(
        {
            "env": "dev",
            "product_tag": "shop",
            "event": "daily-digest",
            "input": {"team": "growth"},
            "repeat": {"cron": "0 9 * * *", "tz": "Europe/Paris"},
        }
    ).job_id
    dt.advance(days=2)
    assert posted == ["growth: 1", "growth: 2"]
    runs = sorted(dt.job.runs(job_id=job_id), key=lambda r: r.scheduled_at)
    assert [r.phase for r in runs] == [RunPhase.COMPLETED, RunPhase.COMPLETED]
    assert [r.scheduled_at.hour for r in runs] == [8, 8]  # 09:00 in Paris
    for run in runs:  # each job run drove the feature run keyed by its own id
        feature_run = dt.feature.get(run.id)
        assert feature_run.status is FeatureRunStatus.COMPLETED and feature_run.feature_tag == "digest"
        assert run.output == {"feature_run_id": run.id, "output": feature_run.output}
    dt.close()


def test_schedule_refuses_a_feature_the_product_lacks_or_input_it_does_not_take(make_app: MakeApp) -> None:
    app = make_app(DIGEST)
    app.dt.job.create({"name": "Nope", "tag": "nope", "event_type": "feature", "event_tag": "nope"})
    app.dt.job.create({"name": "Digest", "tag": "digest-job", "event_type": "FEATURE", "event_tag": "digest"})
    with pytest.raises(ValidationError) as err:
        app.dt.job.schedule({"env": "dev", "product_tag": "shop", "event": "nope"})
    assert err.value.field == "event" and "defines no feature 'nope'" in err.value.rule
    with pytest.raises(ValidationError) as err:
        app.dt.job.schedule({"env": "dev", "product_tag": "shop", "event": "digest-job", "input": {"team": 7}})
    assert err.value.field == "input.team"
    assert app.dt.job.list() == []


def test_the_next_attempt_of_a_job_run_retries_its_feature_run_without_repeating_completed_events(
    make_app: MakeApp,
) -> None:
    app = make_app(DIGEST)
    calls: list[str] = []
    app.dt.function("count")(lambda input, ctx: calls.append("count") or {"n": 3})

    @app.dt.function("post")
    def post(input: dict[str, Any], ctx: Any) -> str:
        calls.append("post")
        if calls.count("post") == 1:
            raise RuntimeError("chat service down")
        return "posted"

    app.dt.job.create({"name": "Digest", "tag": "digest-job", "event_type": "FEATURE", "event_tag": "digest"})
    job_id = app.dt.job.schedule(
        {"env": "dev", "product_tag": "shop", "event": "digest-job", "input": {"team": "ops"}, "retries": 1}
    ).job_id
    assert app.dt.drain().retried == 1
    (run,) = app.dt.job.runs(job_id=job_id)
    assert run.phase is RunPhase.RETRY_SCHEDULED and "chat service down" in (run.error or "")
    assert app.dt.feature.get(run.id).status is FeatureRunStatus.FAILED
    app.clock.advance(minutes=1)
    assert app.dt.drain().completed == 1
    assert calls == ["count", "post", "post"]  # count did not run again
    done = app.dt.feature.get(run.id)
    assert done.status is FeatureRunStatus.COMPLETED
    assert [(e.event_tag, e.attempts) for e in done.events] == [("count", 1), ("post", 2)]
    assert app.dt.job.run(run.id).output["output"] == {"collect": {"count": {"n": 3}}, "send": {"post": "posted"}}


def test_a_worker_resumes_a_feature_run_left_unfinished_by_a_dead_attempt(make_app: MakeApp) -> None:
    app = make_app(DIGEST)
    calls: list[str] = []
    app.dt.function("count")(lambda input, ctx: calls.append("count") or {"n": 1})
    app.dt.function("post")(lambda input, ctx: calls.append("post") or "posted")
    app.dt.job.create({"name": "Digest", "tag": "digest-job", "event_type": "FEATURE", "event_tag": "digest"})
    job_id = app.dt.job.schedule(
        {"env": "dev", "product_tag": "shop", "event": "digest-job", "input": {"team": "ops"}}
    ).job_id
    (run,) = app.dt.job.runs(job_id=job_id)
    # what an attempt whose worker died inside "post" leaves behind: count recorded, post started
    now = app.clock.now()
    app.dt.store.create_feature_run(
        FeatureRun(
            run.id, "shop", "dev", "digest", {"team": "ops"}, FeatureRunStatus.RUNNING, now, now,
            lease_owner=f"job-run:{run.id}:0", lease_expires_at=now + timedelta(seconds=30),
            events=[EventResult("collect", "count", "function", 0), EventResult("send", "post", "function", 1)],
        )
    )  # fmt: skip
    owner = f"job-run:{run.id}:0"
    app.dt.store.start_feature_event(run.id, owner, "collect", "count", now)
    app.dt.store.finish_feature_event(run.id, owner, "collect", "count", EventStatus.COMPLETED, now, output={"n": 9})
    app.dt.store.start_feature_event(run.id, owner, "send", "post", now)
    assert app.dt.drain().completed == 1
    assert calls == ["post"]
    done = app.dt.feature.get(run.id)
    assert done.status is FeatureRunStatus.COMPLETED and done.output["collect"] == {"count": {"n": 9}}


def test_input_the_feature_refuses_at_run_time_fails_the_job_run_without_retries(make_app: MakeApp) -> None:
    app = make_app({"f": {"sequence": [seq("a", fn("one", {"x": "$Input{x}"}))]}})
    app.dt.function("one")(lambda input, ctx: input)
    app.dt.job.create({"name": "F", "tag": "f-job", "event_type": "FEATURE", "event_tag": "f"})
    # the feature declares no input schema: only its event's $Input{x} shows, when the job runs, that x is missing
    job_id = app.dt.job.schedule({"env": "dev", "product_tag": "shop", "event": "f-job", "retries": 3}).job_id
    assert app.dt.drain().failed == 1
    (run,) = app.dt.job.runs(job_id=job_id)
    assert run.phase is RunPhase.FAILED and run.retry_count == 0 and "$Input{x}" in (run.error or "")


# --------------------------------------------------------------------------------------------- the CLI


def _cli(tmp_path: Path, *args: str) -> Result:
    features = {
        "shout": {
            "input": {"text": "string"},
            "sequence": [
                seq("a", fn("upper", {"text": "$Input{text}"})),
                seq("b", fn("refuse", allow_fail=True), parents=["a"]),
            ],
        },
        "broken": {"sequence": [seq("a", fn("refuse"))]},
    }
    product = shop(features, functions={"upper": "feature_steps:upper", "refuse": "feature_steps:refuse"})
    path = tmp_path / "ductape.yaml"
    path.write_text(yaml.safe_dump({"products": [product]}))
    store = f"sqlite:///{tmp_path / 'cli.db'}"
    env = {"DUCTAPE_APP": None, "DUCTAPE_STORE": None, "DUCTAPE_PRODUCT_FILE": None, "COLUMNS": "200"}
    return CliRunner().invoke(cli_app, ["--product-file", str(path), *args, "--store", store], env=env)


def test_cli_feature_run_show_and_list(tmp_path: Path) -> None:
    result = _cli(tmp_path, "feature", "run", "shout", "--env", "dev", "--product-tag", "shop",
                  "--input", '{"text": "hi"}', "--json")  # fmt: skip
    assert result.exit_code == 0, (result.stdout, result.stderr, result.exception)
    run = json.loads(result.stdout)
    assert run["status"] == "completed" and run["feature_tag"] == "shout"
    assert [(e["event_tag"], e["status"]) for e in run["events"]] == [("upper", "completed"), ("refuse", "failed")]
    assert run["events"][0]["output"] == {"text": "HI"}

    shown = _cli(tmp_path, "feature", "show", run["id"])
    assert shown.exit_code == 0 and run["id"] in shown.stdout
    assert "completed" in shown.stdout and "failed" in shown.stdout and "refused on purpose" in shown.stdout
    listed = _cli(tmp_path, "feature", "runs", "--json")
    assert [r["id"] for r in json.loads(listed.stdout)] == [run["id"]]


def test_cli_a_failed_feature_exits_1_and_bad_input_exits_2(tmp_path: Path) -> None:
    failed = _cli(tmp_path, "feature", "run", "broken", "--env", "dev", "--product-tag", "shop")
    assert failed.exit_code == 1 and "skipped" not in failed.stdout and "failed" in failed.stdout
    bad = _cli(tmp_path, "feature", "run", "shout", "--env", "dev", "--product-tag", "shop", "--input", '{"text": 1}')
    assert bad.exit_code == 2 and "input.text" in bad.stderr


def test_cli_a_refused_feature_run_leaves_no_new_store_behind(tmp_path: Path) -> None:
    """No product, no such feature, a bad input: refused before anything is recorded, so the store the command
    would have made for it is not left there, empty (a typo in --store made a file each time)."""
    new = tmp_path / "new.db"
    env = {"DUCTAPE_APP": None, "DUCTAPE_STORE": None, "DUCTAPE_PRODUCT_FILE": None}
    store = f"sqlite:///{new}"
    nothing = CliRunner().invoke(cli_app, ["feature", "run", "f", "--env", "dev", "--product-tag", "shop",
                                           "--store", store], env=env)  # fmt: skip
    assert nothing.exit_code == 2 and "no product is configured" in nothing.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == []
    (tmp_path / "cli.db").unlink(missing_ok=True)
    unknown = _cli(tmp_path, "feature", "run", "nope", "--env", "dev", "--product-tag", "shop")
    assert unknown.exit_code == 2, unknown.stderr
    bad = _cli(tmp_path, "feature", "run", "shout", "--env", "dev", "--product-tag", "shop", "--input", '{"text": 1}')
    assert bad.exit_code == 2 and "input.text" in bad.stderr
    assert not (tmp_path / "cli.db").exists()


def test_cli_a_new_store_that_holds_the_run_is_kept_whatever_is_raised_after(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A ValidationError out of ``feature.run`` after the run was recorded (one of its events' writes refusing a
    value): the new store holds that run, whose events may have acted, and stays."""
    from ductape_jobs.features.api import Features

    def run_then_refuse(self: Features, tag: str, **kwargs: object) -> object:
        made = original(self, tag, **kwargs)
        raise ValidationError("output", f"refused after run {made.id} was recorded")

    original = Features.run
    monkeypatch.setattr(Features, "run", run_then_refuse)
    result = _cli(tmp_path, "feature", "run", "shout", "--env", "dev", "--product-tag", "shop",
                  "--input", '{"text": "hi"}')  # fmt: skip
    assert result.exit_code == 2 and "refused after run" in result.stderr
    assert (tmp_path / "cli.db").exists()
    listed = _cli(tmp_path, "feature", "runs", "--json")
    assert [r["feature_tag"] for r in json.loads(listed.stdout)] == ["shout"]


def test_cli_a_new_store_stays_when_whether_it_holds_a_run_cannot_be_told(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The look for the run failing (the store answering with an error): the store stays, and the refusal the
    command met is the error it reports, not the look's."""
    from ductape_jobs.errors import StoreError
    from ductape_jobs.features.api import Features

    def refuse(self: Features, tag: str, **kwargs: object) -> object:
        raise ValidationError("input", "refused on purpose")

    def broken(self: Features, **kwargs: object) -> object:
        raise StoreError("the store could not be read")

    monkeypatch.setattr(Features, "run", refuse)
    monkeypatch.setattr(Features, "runs", broken)
    result = _cli(tmp_path, "feature", "run", "shout", "--env", "dev", "--product-tag", "shop")
    assert result.exit_code == 2 and "refused on purpose" in result.stderr, result.stderr
    assert (tmp_path / "cli.db").exists()
