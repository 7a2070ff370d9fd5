"""``/api/v1/stats``: the last hour (runs per minute, failures, queue depth, lateness, next runs) and the
forecast of the coming hours, on a fake clock."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from apikit import BLOG, SHOP, Api, problems
from msgspec.structs import replace

from ductape_jobs import FakeClock
from ductape_jobs.api import forecast as forecasting
from ductape_jobs.api import stats


def test_overview_of_the_last_hour(api: Api, job: dict[str, Any], clock: FakeClock) -> None:
    api.dt.job.create({"name": "Boom", "tag": "boom", "event_type": "FUNCTION", "event_tag": "boom"})
    api.dt.function("boom")(lambda input, ctx: 1 / 0)
    api.dt.job.schedule(SHOP)  # 12:00, runs 2 s late
    api.dt.job.schedule({**SHOP, "event": "boom"})  # 12:00, fails
    clock.advance(seconds=2)
    api.dt.drain()
    clock.advance(minutes=1)
    api.dt.job.schedule(SHOP)  # 12:01:02, runs on time
    api.dt.drain()
    api.dt.job.schedule({**BLOG, "repeat": {"every": 3_600_000}})  # blog: runs now, next at 13:01:02
    api.dt.drain()
    queued = api.dt.job.schedule({**SHOP, "start_at": clock.now() - timedelta(seconds=1)})  # due, not run
    hourly = api.dt.job.schedule({**SHOP, "repeat": {"cron": "30 12 * * *"}}).job_id

    overview = api.client().get("/stats/overview").json()
    minutes = overview["runs_per_minute"]
    assert len(minutes) == 60
    assert minutes[-1]["minute"] == "2026-03-02T12:01:00Z" and minutes[0]["minute"] == "2026-03-02T11:02:00Z"
    assert minutes[-2] == {"minute": "2026-03-02T12:00:00Z", "completed": 1, "failed": 1}
    assert minutes[-1] == {"minute": "2026-03-02T12:01:00Z", "completed": 2, "failed": 0}
    assert sum(m["completed"] + m["failed"] for m in minutes[:-2]) == 0
    assert overview["failures_last_hour"] == 1
    assert overview["queue_depth"] == 1 and queued.status == "queued"
    assert overview["lateness_ms"] == {"p50": 0, "p95": 2000, "p99": 2000, "sample": 4}
    assert [(n["job_id"], n["next_run_at"]) for n in overview["next_runs"][:1]] == [(hourly, "2026-03-02T12:30:00Z")]
    assert [n["job_tag"] for n in overview["next_runs"]] == ["report", "report"]

    scoped = api.client(api.key(product_tag="blog")).get("/stats/overview").json()
    assert (scoped["failures_last_hour"], scoped["queue_depth"], scoped["lateness_ms"]["sample"]) == (0, 0, 1)
    assert sum(m["completed"] for m in scoped["runs_per_minute"]) == 1
    assert [n["next_run_at"] for n in scoped["next_runs"]] == ["2026-03-02T13:01:02Z"]


def test_overview_with_nothing_yet(api: Api) -> None:
    overview = api.client().get("/stats/overview").json()
    assert overview["lateness_ms"] == {"p50": None, "p95": None, "p99": None, "sample": 0}
    assert (overview["failures_last_hour"], overview["queue_depth"], overview["next_runs"]) == (0, 0, [])


def test_forecast_counts_each_minute_per_job(api: Api, job: dict[str, Any]) -> None:
    api.dt.job.create({"name": "Other", "tag": "other", "event_type": "FUNCTION", "event_tag": "report"})
    api.dt.job.schedule({**SHOP, "repeat": {"every": 600_000}})  # now (already queued), then every 10 min
    api.dt.job.schedule({**SHOP, "event": "other", "repeat": {"cron": "0 * * * *", "limit": 3}})
    api.dt.job.schedule({**SHOP, "event": "other", "repeat": {"every": 15_000}})  # 4 a minute
    api.dt.job.schedule({**SHOP, "start_at": "2026-03-03T11:59:30Z"})  # once, in the last minute
    paused = api.dt.job.schedule({**SHOP, "repeat": {"every": 60_000}}).job_id
    api.dt.job.pause(paused)

    answer = api.client().get("/stats/forecast").json()
    assert (answer["start"], answer["minutes"], answer["truncated"], answer["schedules"]) == (
        "2026-03-02T12:00:00Z",
        1440,
        False,
        4,
    )
    jobs = {j["job_tag"]: j for j in answer["jobs"]}
    report = {int(k): v for k, v in jobs["report"]["counts"].items()}
    assert report[10] == 1 and report[1430] == 1 and 0 not in report  # the run at 12:00 is already queued
    assert report[1439] == 1  # the one-off
    assert jobs["report"]["total"] == 143 + 1
    other = {int(k): v for k, v in jobs["other"]["counts"].items()}
    assert other[0] == 3  # 12:00:15, :30, :45 (12:00:00 is queued, as is the cron's first run)
    assert other[1] == 4 and other[60] == 5 and other[120] == 5 and other[180] == 4  # limit 3: 12, 13, 14 h
    assert jobs["other"]["total"] == 1440 * 4 - 1 + 2

    short = api.client().get("/stats/forecast", params={"hours": 1}).json()
    assert short["minutes"] == 60
    assert {j["job_tag"]: j["total"] for j in short["jobs"]} == {"report": 5, "other": 239}


def test_forecast_is_bounded_and_says_so(
    api: Api, job: dict[str, Any], monkeypatch: pytest.MonkeyPatch, clock: FakeClock
) -> None:
    for _ in range(3):
        api.dt.job.schedule({**SHOP, "repeat": {"every": 60_000}})
    monkeypatch.setattr(stats, "FORECAST_SCHEDULES", 2)
    capped = api.client().get("/stats/forecast").json()
    assert (capped["schedules"], capped["truncated"]) == (2, True)
    assert capped["jobs"][0]["total"] == 2 * 1439

    monkeypatch.setattr(stats, "FORECAST_SCHEDULES", 5000)
    monkeypatch.setattr(forecasting, "BUDGET", 100)
    clock.advance(stats.FORECAST_KEPT)  # a forecast made anew
    cut = api.client().get("/stats/forecast").json()
    assert cut["truncated"] is True and cut["jobs"][0]["total"] < 3 * 1439
    assert problems(api.client().get("/stats/forecast", params={"hours": 0})) == [
        ("hours", "must be between 1 and 168")
    ]


def test_forecast_respects_end_dates_and_dst() -> None:
    from ductape_jobs.models import Schedule, ScheduleStatus

    t0 = datetime(2026, 3, 7, 12, 0, tzinfo=UTC)
    s = Schedule(
        id="job_x",
        job_tag="x",
        env="prd",
        product_tag="shop",
        input={},
        retries=0,
        status=ScheduleStatus.ACTIVE,
        start_at=t0,
        next_run_at=datetime(2026, 3, 8, 7, 0, tzinfo=UTC),  # 02:30 is in the DST gap on 03-08: 03:00 EDT
        run_count=0,
        created_at=t0,
        cron="30 2 * * *",
        tz="America/New_York",
        end_date=datetime(2026, 3, 9, 0, 0, tzinfo=UTC),
    )
    f = forecasting.forecast([s], t0, 48 * 60)
    assert dict(f.counts["x"]) == {19 * 60: 1}  # 03-08 07:00 UTC; 03-09 06:30 UTC is past the end date
    assert dict(forecasting.forecast([replace(s, end_date=None)], t0, 48 * 60).counts["x"]) == {
        19 * 60: 1,
        (42 * 60 + 30): 1,
    }


def test_a_forecasts_work_stays_within_its_budget_when_schedules_are_behind(monkeypatch: pytest.MonkeyPatch) -> None:
    """``GET /stats/forecast`` (a read key) plans each schedule's due occurrences with ``plan_due``, up to 1,000 of
    them for a ``run_all`` schedule that is behind, and spent one step of the budget for it: 5,000 such schedules
    (every 100 ms, no worker for a minute) made one request take 2.2 s of CPU, 16 times the work its budget allows."""
    from ductape_jobs.models import Misfire, Schedule, ScheduleStatus
    from ductape_jobs.timing import recurrence as recurrences

    now = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
    behind = Schedule(
        id="job_x", job_tag="x", env="prd", product_tag="shop", input={}, retries=0, status=ScheduleStatus.ACTIVE,
        start_at=now - timedelta(hours=1), next_run_at=now - timedelta(hours=1), run_count=0,
        created_at=now - timedelta(hours=1), every=timedelta(milliseconds=100), misfire=Misfire.RUN_ALL,
    )  # fmt: skip
    steps = 0
    step = recurrences.EveryRecurrence.next_after

    def counted(self: Any, t: datetime) -> datetime | None:
        nonlocal steps
        steps += 1
        return step(self, t)

    monkeypatch.setattr(recurrences.EveryRecurrence, "next_after", counted)
    budget = 1_000
    f = forecasting.forecast([behind] * 10, now, 60, budget=budget)
    assert steps <= 2 * budget, f"{steps} steps for a budget of {budget} (truncated: {f.truncated})"


def test_schedules_of_one_cadence_are_walked_once() -> None:
    """A probe's store: 10,000 schedules of ``*/5 * * * *`` made a day's forecast 2.9 million steps (7.6 s of the
    server's CPU, truncated); each is the same walk from the same due time."""
    from ductape_jobs.models import Schedule, ScheduleStatus

    now = datetime(2026, 3, 2, 12, 1, tzinfo=UTC)
    tick = Schedule(
        id="job_0", job_tag="tick", env="prd", product_tag="shop", input={}, retries=0, status=ScheduleStatus.ACTIVE,
        start_at=now, next_run_at=datetime(2026, 3, 2, 12, 5, tzinfo=UTC), run_count=0, created_at=now,
        cron="*/5 * * * *", tz="UTC",
    )  # fmt: skip
    crons = [replace(tick, id=f"job_{i}") for i in range(10_000)]
    f = forecasting.forecast(crons, now, 24 * 60, budget=25_000)
    assert not f.truncated
    assert sum(f.counts["tick"].values()) == 10_000 * 288 and f.counts["tick"][4] == 10_000


def test_a_forecast_is_made_at_most_every_30_seconds_for_a_scope(
    api: Api, job: dict[str, Any], clock: FakeClock
) -> None:
    """Any read key could ask for many at once, each up to seconds of the server's CPU (a probe: 40 s for a week)."""
    api.dt.job.schedule({**SHOP, "repeat": {"every": 600_000}})
    first = api.client().get("/stats/forecast").json()
    api.dt.job.schedule({**SHOP, "repeat": {"every": 600_000}})
    clock.advance(seconds=29)
    assert api.client().get("/stats/forecast").json() == first
    assert api.client(api.key(product_tag="shop")).get("/stats/forecast").json() != first  # another scope's
    clock.advance(seconds=1)
    again = api.client().get("/stats/forecast").json()
    assert again["jobs"][0]["total"] == 2 * first["jobs"][0]["total"]


def test_the_budget_bounds_what_a_forecast_holds_when_many_jobs_share_a_cadence() -> None:
    """A review: a cadence walked once was charged one step for each schedule of it, while each still filled a
    count a minute in its job's forecast: 5,000 jobs of a minutely cron over a week took 1.5 GB, not truncated."""
    from ductape_jobs.models import Schedule, ScheduleStatus

    now = datetime(2026, 3, 2, 12, 0, 30, tzinfo=UTC)
    minutely = Schedule(
        id="job_0", job_tag="j0", env="prd", product_tag="shop", input={}, retries=0, status=ScheduleStatus.ACTIVE,
        start_at=now, next_run_at=datetime(2026, 3, 2, 12, 1, tzinfo=UTC), run_count=0, created_at=now,
        cron="* * * * *", tz="UTC",
    )  # fmt: skip
    jobs = [replace(minutely, id=f"job_{i}", job_tag=f"j{i}") for i in range(100)]
    f = forecasting.forecast(jobs, now, 24 * 60, budget=50_000)
    assert f.truncated
    assert sum(len(counts) for counts in f.by_job.values()) <= 50_000
    whole = forecasting.forecast(jobs[:20], now, 24 * 60, budget=50_000)
    assert not whole.truncated and all(sum(c.values()) == 1439 for c in whole.counts.values())


def test_forecasts_are_made_one_at_a_time_and_a_few_wait_at_most(
    api: Api, job: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A review: asking for ``hours=1..168`` at once queued 168 forecasts behind one another, each up to seconds."""
    import threading

    api.dt.job.schedule({**SHOP, "repeat": {"every": 600_000}})
    release, running = threading.Event(), threading.Semaphore(0)
    made = forecasting.forecast

    def held(*args: Any, **kwargs: Any) -> Any:
        running.release()
        assert release.wait(10)
        return made(*args, **kwargs)

    monkeypatch.setattr(stats, "forecast", held)
    answers: dict[int, int] = {}

    def ask(hours: int) -> None:
        answers[hours] = api.client().get("/stats/forecast", params={"hours": hours}).status_code

    asking = [threading.Thread(target=ask, args=(h,)) for h in (1, 2, 3, 4)]
    for t in asking:
        t.start()
    assert running.acquire(timeout=10)  # the first is being made; the three others wait their turn
    time.sleep(0.3)
    assert not running.acquire(timeout=0.2)  # one at a time
    refused = api.client().get("/stats/forecast", params={"hours": 5})
    assert refused.status_code == 429 and "forecasts are being made" in refused.text
    release.set()
    for t in asking:
        t.join(10)
    assert answers == {1: 200, 2: 200, 3: 200, 4: 200}
    assert api.client().get("/stats/forecast", params={"hours": 5}).status_code == 200
