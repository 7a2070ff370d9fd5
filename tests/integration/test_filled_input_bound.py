"""What placeholders fill in is bounded as a stored input is (``MAX_FILLED_BYTES`` of JSON), counted while it is
built: a caller's input whose ``$Session{...}`` values make it past the bound is refused at ``schedule()`` (a 250 KB
input that read a 10 KB session value 9,000 times was taken, and its FUNCTION got 90 MB); what only a run can fill
in (a run stored before, an event definition's ``$Input{...}``, a feature's ``$Input``/``$Sequence`` piping) fails
its attempt for good, naming the bound, recorded as any failure. A sandbox: SQLite and a fake clock.
"""

from __future__ import annotations

import tracemalloc
from datetime import UTC, datetime
from typing import Any

import pytest

from ductape_jobs import Ductape, RunPhase, ValidationError
from ductape_jobs.features import FeatureRunStatus
from ductape_jobs.ids import new_id
from ductape_jobs.limits import MAX_FILLED_BYTES
from ductape_jobs.models import NewRun, Schedule, ScheduleStatus, TriggeredBy
from ductape_jobs.products import Products
from ductape_jobs.testing import Sandbox

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
TOO_MUCH = (
    f"filled in, it is more than {MAX_FILLED_BYTES:,} bytes as JSON, the bound on what placeholders fill in: they fill "
    "in too much"
)
BLOB = "B" * 5_000  # a session token carries its data: 5,000 characters keep it within the token's bound
MANY = {f"k{i}": "a$Session{blob}" for i in range(9_000)}  # 117 KB stored, 45 MB filled in
SHOP: dict[str, Any] = {
    "tag": "shop",
    "envs": {"dev": {"session_secret": "session-secret-for-tests-0123456789abcdef"}},
    "sessions": {"user": {"name": "User", "schema": {"blob": "string"}, "selector": "$Session{blob}"}},
    "apps": {
        "crm": {
            "actions": {"echo": {"method": "POST", "path": "/x", "body": {f"b{i}": "$Input{blob}" for i in range(40)}}},
            "envs": {"dev": {"base_url": "http://127.0.0.1:9"}},  # never called: the definition fails first
        }
    },
    "features": {
        "fan": {
            "input": {"blob": "string"},
            "sequence": [
                {
                    "sequence_tag": "a",
                    "parents": [],
                    "events": [{"type": "FUNCTION", "event": "first", "input": {"blob": "$Input{blob}"}, "retries": 0}],
                },
                {
                    "sequence_tag": "b",
                    "parents": ["a"],
                    "events": [
                        {
                            "type": "FUNCTION",
                            "event": "seen",
                            "input": {f"k{i}": "$Sequence{a}{first}" for i in range(40)},
                            "retries": 3,
                        }
                    ],
                },
            ],
        }
    },
}


def first_line(error: str | None) -> str:
    return (error or "").splitlines()[0]  # then the end of its traceback


@pytest.fixture
def dt() -> Ductape:
    sandbox = Sandbox(start=T0, products=Products([SHOP]))  # type: ignore[list-item]
    seen: list[int] = []
    sandbox.function("seen")(lambda input, ctx: seen.append(len(str(input))) or {"n": len(str(input))})
    sandbox.function("first")(lambda input, ctx: input["blob"])
    sandbox.job.create({"name": "Seen", "tag": "seen", "event_type": "FUNCTION", "event_tag": "seen"})
    return sandbox


def test_a_callers_input_that_fills_in_past_the_bound_is_refused_at_schedule_and_never_built(dt: Ductape) -> None:
    token = str(dt.session.start("user", {"blob": BLOB}, env="dev", product_tag="shop"))
    request = {"env": "dev", "product_tag": "shop", "event": "seen", "session": token, "input": MANY}
    tracemalloc.start()
    try:
        with pytest.raises(ValidationError) as info:
            dt.job.schedule(request)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert (info.value.field, info.value.rule) == ("input", TOO_MUCH)
    assert peak < 20 * MAX_FILLED_BYTES  # the 45 MB it would fill in is never made
    with pytest.raises(ValidationError) as many:
        dt.job.schedule_many([{**request, "input": {}}, request])
    assert many.value.field == "[1].input" and many.value.rule == TOO_MUCH
    assert dt.job.list() == [] and dt.job.runs() == []  # nothing written
    # within the bound it is taken, and the FUNCTION gets it filled in
    fits = {f"k{i}": "$Session{blob}" for i in range(MAX_FILLED_BYTES // 5_010 - 1)}
    job_id = dt.job.schedule({**request, "input": fits}).job_id
    assert dt.drain().completed == 1 and dt.job.runs(job_id=job_id)[0].phase is RunPhase.COMPLETED


def test_a_stored_run_that_fills_in_past_the_bound_fails_for_good_and_the_others_run(dt: Ductape) -> None:
    """A run stored without the check (scheduled before it): its attempt fails naming the bound, not retried."""
    token = dt.session.start("user", {"blob": BLOB}, env="dev", product_tag="shop")
    claims = dt.session.verify(str(token), env="dev", product_tag="shop")
    schedule = Schedule(
        id=new_id("job"),
        job_tag="seen",
        env="dev",
        product_tag="shop",
        input=MANY,
        session=claims,
        retries=3,
        status=ScheduleStatus.ACTIVE,
        start_at=T0,
        next_run_at=None,
        run_count=0,
        created_at=T0,
    )
    run = NewRun(
        id=new_id("run"),
        schedule_id=schedule.id,
        scheduled_at=T0,
        available_at=T0,
        phase=RunPhase.QUEUED,
        triggered_by=TriggeredBy.SCHEDULE,
    )
    dt.store.add_schedules([schedule], [run])
    fine = dt.job.schedule({"env": "dev", "product_tag": "shop", "event": "seen", "input": {"n": 1}}).job_id
    assert (dt.drain().completed, dt.drain().failed) == (1, 0)  # the second drain: nothing retried
    failed = dt.job.run(run.id)
    assert failed.phase is RunPhase.FAILED and first_line(failed.error) == f"PipingFailure: input: {TOO_MUCH}"
    assert [a.outcome for a in failed.attempts] == ["failed"]
    assert dt.job.runs(job_id=fine)[0].phase is RunPhase.COMPLETED


def test_an_event_definition_that_fills_in_past_the_bound_fails_for_good(dt: Ductape) -> None:
    """An ACTION's body reading ``$Input{blob}`` 40 times: 1.6 MB for a 40 KB input; nothing is sent."""
    dt.job.create({"name": "Echo", "tag": "echo", "event_type": "ACTION", "event_tag": "crm:echo"})
    job_id = dt.job.schedule(
        {"env": "dev", "product_tag": "shop", "event": "echo", "input": {"blob": "x" * 40_000}, "retries": 3}
    ).job_id
    assert dt.drain().failed == 1
    (run,) = dt.job.runs(job_id=job_id)
    assert first_line(run.error) == f"PipingFailure: products.shop.apps.crm.actions.echo: {TOO_MUCH}"
    assert run.retry_count == 0


def test_a_features_piping_past_the_bound_fails_its_event_for_good(dt: Ductape) -> None:
    """``$Sequence{a}{first}`` 40 times over a 40 KB output: the event fails, not retried, the next never run."""
    run = dt.feature.run("fan", env="dev", product_tag="shop", input={"blob": "y" * 40_000})
    assert run.status is FeatureRunStatus.FAILED
    event = run.event("b", "seen")
    assert first_line(event.error) == f"PipingFailure: input: {TOO_MUCH}" and event.attempts == 1
    small = dt.feature.run("fan", env="dev", product_tag="shop", input={"blob": "y" * 100})
    assert small.status is FeatureRunStatus.COMPLETED
