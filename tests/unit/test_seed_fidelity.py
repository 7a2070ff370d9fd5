"""The seeds' spellings and exact semantics: camelCase names as written, one API in sync and async,
``start_at: 0`` means now, strict values (no silent coercion, no ignored field)."""

from __future__ import annotations

import asyncio
import inspect
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

import ductape_jobs
from ductape_jobs import AsyncDuctape, Ductape, FakeClock, RunPhase, ValidationError
from ductape_jobs.aio import AsyncJobs, AsyncSessions, AsyncWebhooks
from ductape_jobs.features.api import AsyncFeatures, Features
from ductape_jobs.jobs import Jobs
from ductape_jobs.limits import LATEST
from ductape_jobs.sessions import Sessions
from ductape_jobs.webhooks import Webhooks

REPORT = {"name": "Report", "tag": "report", "event_type": "FUNCTION", "event_tag": "report"}
REQUEST = {"env": "prd", "product_tag": "shop", "event": "report"}


@pytest.fixture
def report(dt: Ductape) -> Ductape:
    dt.function("report")(lambda input, ctx: input)
    return dt


def test_the_seeds_camel_case_names_work_as_written(report: Ductape) -> None:
    created = report.job.createJob(REPORT)
    assert report.job.fetchJob("report") == created
    assert report.job.updateJob("report", {"name": "Weekly"}).name == "Weekly"
    assert [j.tag for j in report.job.fetchJobs()] == [j.tag for j in report.job.fetchAll()] == ["report"]
    assert ductape_jobs.FeatureEventTypes.JOB.value == "job"


def _public(cls: type) -> dict[str, Any]:
    """Public methods (a property, such as the test hook ``Features.sleep``, is not a call)."""
    return {
        name: member
        for name, member in inspect.getmembers(cls)
        if not name.startswith("_") and not isinstance(member, property)
    }


@pytest.mark.parametrize(
    ("sync", "aio"),
    [(Jobs, AsyncJobs), (Sessions, AsyncSessions), (Features, AsyncFeatures)],
    ids=["job", "session", "feature"],
)
def test_every_sync_method_has_an_awaited_twin_with_the_same_parameters(sync: type, aio: type) -> None:
    wanted, have = _public(sync), _public(aio)
    assert sorted(set(wanted) - set(have)) == []
    for name, method in wanted.items():
        assert inspect.iscoroutinefunction(have[name]), name
        assert list(inspect.signature(have[name]).parameters) == list(inspect.signature(method).parameters), name


def test_async_webhooks_cover_what_users_call() -> None:
    users = {"create", "list", "get", "delete", "deliveries", "deliver_due"}
    assert users <= set(_public(Webhooks)) and users <= set(_public(AsyncWebhooks))
    assert all(inspect.iscoroutinefunction(getattr(AsyncWebhooks, name)) for name in users)


def test_async_ductape_exposes_what_ductape_does(tmp_path: Any) -> None:
    client = AsyncDuctape(f"sqlite:///{tmp_path / 'a.db'}")
    sync = client.sync
    for name in ("job", "feature", "session", "webhooks", "products", "functions", "store", "clock"):
        assert hasattr(client, name) and hasattr(sync, name), name
    for name in ("function", "drain", "worker", "close", "on_store"):
        assert callable(getattr(client, name)) and callable(getattr(sync, name)), name
    assert client.products is sync.products


def test_async_pause_takes_a_reason(tmp_path: Any) -> None:
    async def main() -> None:
        async with AsyncDuctape(f"sqlite:///{tmp_path / 'a.db'}", clock=FakeClock()) as client:
            client.function("report")(lambda input, ctx: None)
            await client.job.createJob(REPORT)
            made = await client.job.schedule({**REQUEST, "repeat": {"every": 60_000}})
            paused = await client.job.pause(made.job_id, "maintenance")
            assert paused.reason == "paused: maintenance"
            assert [j.tag for j in await client.job.fetchAll()] == ["report"]

    asyncio.run(main())


def test_start_at_zero_means_now_even_when_the_job_has_a_start(report: Ductape, clock: FakeClock) -> None:
    later = clock.now() + timedelta(days=2)
    report.job.create({**REPORT, "start_at": later.isoformat()})
    now = report.job.schedule({**REQUEST, "start_at": 0})
    past = report.job.schedule({**REQUEST, "start_at": "2020-01-01T00:00:00Z"})
    absent = report.job.schedule(REQUEST)
    assert now.status is RunPhase.QUEUED and now.scheduled_at == clock.now()
    assert past.status is RunPhase.QUEUED and past.scheduled_at == clock.now()
    assert absent.status is RunPhase.SCHEDULED and absent.scheduled_at == later  # the job's own start


@pytest.mark.parametrize("zone", ["UTC", "Etc/UTC", "GMT", "Etc/Zulu"])
def test_every_takes_utc_by_any_of_its_names(report: Ductape, zone: str) -> None:
    """``every`` counts absolute time, so a zone other than UTC is refused; ``Etc/UTC`` (UTC by another name, what
    many systems call it) was refused too (found by a fidelity probe)."""
    report.job.create(REPORT)
    made = report.job.schedule({**REQUEST, "repeat": {"every": 60_000, "tz": zone}})
    assert report.job.get(made.job_id).tz == zone


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"retries": "3"}, "retries"),
        ({"retries": 2.5}, "retries"),
        ({"repeat": {"every": "60000"}}, "repeat.every"),
        ({"repeat": {"every": 60_000, "tz": "Europe/Paris"}}, "repeat.tz"),
        ({"cache": "nope"}, "cache"),
    ],
)
def test_strict_values_are_refused_not_coerced_or_ignored(report: Ductape, change: dict[str, Any], field: str) -> None:
    report.job.create(REPORT)
    with pytest.raises(ValidationError) as caught:
        report.job.schedule({**REQUEST, **change})
    assert caught.value.field == field
    assert report.job.list() == []


def test_a_cache_must_be_declared_and_its_expiry_is_in_milliseconds(report: Ductape) -> None:
    with pytest.raises(ValidationError, match="ttl is ambiguous"):
        report.products.add({"tag": "shop", "envs": ["prd"], "caches": {"c": {"ttl": 60}}})
    shop = report.products.add(
        {"tag": "shop", "envs": ["prd"], "caches": {"c": {"expiry": 1500}, "d": {"ttl_seconds": 2}}}
    )
    assert shop.caches["c"].lifetime == timedelta(milliseconds=1500)
    assert shop.caches["d"].lifetime == timedelta(seconds=2)
    report.job.create(REPORT)
    with pytest.raises(ValidationError) as caught:
        report.job.schedule({**REQUEST, "cache": "e"})
    assert caught.value.field == "cache" and "it has: c, d" in caught.value.rule
    assert report.job.schedule({**REQUEST, "cache": "c"}).status is RunPhase.QUEUED


def test_allow_fail_must_be_a_boolean(dt: Ductape) -> None:
    event = {"type": "FUNCTION", "event": "x", "input": {}, "allow_fail": "yes"}
    with pytest.raises(ValidationError) as caught:
        dt.products.add({"tag": "shop", "envs": ["prd"], "features": {"f": {"sequence": [
            {"sequence_tag": "a", "events": [event]}]}}})  # fmt: skip
    assert "allow_fail" in caught.value.field


def test_a_job_event_in_a_feature_may_say_when(dt: Ductape, clock: FakeClock) -> None:
    """Seed 003's JOB event, with start_at (piped from the input) and repeat, as schedule() takes them."""
    at_date = {"type": "JOB", "event": "remind", "input": {"to": "$Input{email}"}, "start_at": "$Input{date}"}
    hourly = {"type": "JOB", "event": "remind", "input": {"to": "$Input{email}"}, "repeat": {"every": 3_600_000}}
    sequence = [{"sequence_tag": "a", "events": [at_date]}, {"sequence_tag": "b", "events": [hourly]}]
    dt.products.add(
        {"tag": "shop", "envs": ["dev"], "features": {"f": {"input": {"email": "string", "date": "string"},
                                                          "sequence": sequence}}}
    )  # fmt: skip
    dt.function("remind")(lambda input, ctx: input)
    dt.job.create({"name": "Remind", "tag": "remind", "event_type": "FUNCTION", "event_tag": "remind"})
    run = dt.feature.run("f", env="dev", product_tag="shop", input={"email": "a@x.io", "date": "2026-05-01T09:00:00Z"})
    at, every = (dt.job.get(e.job_id or "") for e in run.events)
    assert at.start_at.isoformat() == "2026-05-01T09:00:00+00:00" and at.input == {"to": "a@x.io"}
    assert every.every == timedelta(hours=1) and every.start_at == clock.now()
    with pytest.raises(ValidationError) as caught:
        dt.products.add({"tag": "shop2", "envs": ["dev"], "features": {"g": {"sequence": [{"sequence_tag": "a",
            "events": [{"type": "FUNCTION", "event": "remind", "start_at": 0}]}]}}})  # fmt: skip
    assert caught.value.field.endswith("start_at") and "only a JOB event" in caught.value.rule


def test_blocking_calls_inside_an_event_loop_say_what_to_use(report: Ductape) -> None:
    async def inside() -> None:
        with pytest.raises(ductape_jobs.RunningLoopError, match=r"use AsyncDuctape \(await ductape.drain\(\)\)"):
            report.drain()
        with pytest.raises(ductape_jobs.RunningLoopError, match=r"ductape\.feature\.run"):
            report.feature.run("f", env="dev", product_tag="shop")

    asyncio.run(inside())
    assert report.drain().ran == 0  # outside a loop it works


def test_a_schedule_answers_its_id_by_the_name_schedule_gives_it(report: Ductape) -> None:
    """``schedule()`` answers ``job_id``, a run and the API and CLI name it so; the ``Schedule`` that
    ``job.list()`` and ``job.get()`` give back had only ``id`` (``AttributeError`` on ``.job_id``: a new-user probe)."""
    report.job.create(REPORT)
    made = report.job.schedule(REQUEST)
    (listed,) = report.job.list()
    assert listed.job_id == listed.id == made.job_id == report.job.get(made.job_id).job_id


def test_an_end_date_given_as_a_day_is_that_whole_day_in_the_zone(report: Ductape, clock: FakeClock) -> None:
    """Seed 004: ``endDate``: "Stop after this date". A day alone (``2026-11-01``) was read as its midnight in UTC,
    so a schedule's runs of that day never came (a seed-fidelity probe); now it ends with the day, in ``tz``. A
    time given stays exact."""
    report.job.create(REPORT)
    day = (clock.now() + timedelta(days=2)).date()
    whole = report.job.schedule({**REQUEST, "repeat": {"cron": "0 9 * * *", "endDate": day.isoformat()}})
    exact = report.job.schedule({**REQUEST, "repeat": {"cron": "0 9 * * *", "endDate": f"{day.isoformat()}T00:00Z"}})
    zoned = report.job.schedule(
        {**REQUEST, "repeat": {"cron": "30 23 * * *", "tz": "America/New_York", "end_date": day}}
    )
    last = datetime.combine(day + timedelta(days=1), time(), ZoneInfo("America/New_York")).astimezone(UTC)
    assert report.job.get(whole.job_id).end_date == datetime.combine(day, time(23, 59, 59, 999_000), UTC)
    assert report.job.get(zoned.job_id).end_date == last - timedelta(milliseconds=1)
    for _ in range(4 * 24):  # every occurrence reached on time
        clock.advance(timedelta(hours=1))
        report.drain()
    ran = {s.job_id: sorted(r.scheduled_at for r in report.job.runs(job_id=s.job_id)) for s in (whole, exact, zoned)}
    assert ran[whole.job_id][-1] == datetime.combine(day, time(9), UTC)  # that day's run came
    assert ran[exact.job_id][-1] == datetime.combine(day - timedelta(days=1), time(9), UTC)
    assert ran[zoned.job_id][-1] == last - timedelta(minutes=30)  # 23:30 that day in New York
    with pytest.raises(ValidationError) as err:
        report.job.schedule({**REQUEST, "repeat": {"cron": "0 9 * * *", "endDate": "2026-13-45"}})
    assert err.value.field == "repeat.endDate"
    for last_day, tz in (("9000-01-01", "UTC"), ("8999-12-31", "America/New_York")):  # a review: past the end of time
        at_the_end = report.job.schedule({**REQUEST, "repeat": {"cron": "0 9 * * *", "tz": tz, "endDate": last_day}})
        assert report.job.get(at_the_end.job_id).end_date == LATEST  # was refused: "is after 9000-01-01"
    with pytest.raises(ValidationError) as err:  # a day past the end stays refused (CI caught a first cap taking it)
        report.job.schedule({**REQUEST, "repeat": {"cron": "0 9 * * *", "endDate": "9000-01-02"}})
    assert (err.value.field, err.value.rule) == (
        "repeat.endDate",
        "is after 9000-01-01, the latest time the engine takes",
    )
