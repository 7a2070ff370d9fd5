"""Every public entry point validates: a ``ValidationError`` naming the field and the rule, and nothing written."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from ductape_jobs import (
    AsyncDuctape,
    ConflictError,
    Ductape,
    FakeClock,
    JobDefinition,
    JobEventTypes,
    NotFoundError,
    RepeatOptions,
    RunPhase,
    ScheduleRequest,
    ValidationError,
)
from ductape_jobs.job_scheduling import PART

SEPT = datetime(2026, 9, 21, 14, 13, 20, tzinfo=UTC)  # 1_790_000_000 s
SEPT_S = 1_790_000_000


def job(tag: str = "report", **extra: Any) -> dict[str, Any]:
    return {"name": "Report", "tag": tag, "event_type": "FUNCTION", "event_tag": "report_fn", **extra}


def req(event: str = "report", **extra: Any) -> dict[str, Any]:
    return {"env": "prd", "product_tag": "reports", "event": event, **extra}


@pytest.fixture
def jdt(dt: Ductape) -> Ductape:
    """A store that already holds a job, a recurring schedule and its first run (so "unchanged" means something)."""
    dt.job.create(job())
    dt.job.schedule(req(repeat={"every": 60_000}))
    return dt


def snapshot(dt: Ductape) -> tuple[Any, ...]:
    return (dt.job.fetch_all(), dt.job.list(), dt.job.runs())


def rejected(dt: Ductape, call: Callable[[Ductape], object], field: str, rule: str) -> ValidationError:
    before = snapshot(dt)
    with pytest.raises(ValidationError) as info:
        call(dt)
    exc = info.value
    assert exc.field == field, str(exc)
    assert rule.lower() in exc.rule.lower(), str(exc)
    assert str(exc) == f"{field}: {exc.rule}"
    assert exc.to_dict() == {"field": field, "rule": exc.rule, "message": str(exc)}
    assert isinstance(exc, ValueError)
    assert snapshot(dt) == before, "a rejected call wrote to the store"
    return exc


Case = tuple[str, Callable[[Ductape], object], str, str]

SCHEDULE_CASES: list[Case] = [
    ("cron bad value", lambda d: d.job.schedule(req(repeat={"cron": "61 * * * *"})), "repeat.cron", "bad minute"),
    ("cron bad weekday", lambda d: d.job.schedule(req(repeat={"cron": "0 9 * * 9"})), "repeat.cron", "invalid cron"),
    ("cron 3 fields", lambda d: d.job.schedule(req(repeat={"cron": "* * *"})), "repeat.cron", "has 3 fields"),
    ("cron 7 fields", lambda d: d.job.schedule(req(repeat={"cron": "0 0 0 1 1 * 2026"})), "repeat.cron", "7 fields"),
    ("cron unknown macro", lambda d: d.job.schedule(req(repeat={"cron": "@fortnightly"})), "repeat.cron", "macro"),
    ("cron empty", lambda d: d.job.schedule(req(repeat={"cron": " "})), "repeat.cron", "is empty"),
    (
        "unknown tz",
        lambda d: d.job.schedule(req(repeat={"cron": "0 9 * * *", "tz": "Mars/Olympus_Mons"})),
        "repeat.tz",
        "unknown time zone",
    ),
    *[
        (
            f"tz {name}",
            lambda d, name=name: d.job.schedule(req(repeat={"cron": "0 9 * * *", "tz": name})),
            "repeat.tz",
            "unknown time zone",
        )
        for name in ("localtime", "posixrules", "posix/Europe/Paris", "right/UTC")
    ],
    (
        "both cron and every",
        lambda d: d.job.schedule(req(repeat={"cron": "0 9 * * *", "every": 1000})),
        "repeat",
        "exactly one of cron or every",
    ),
    ("neither cron nor every", lambda d: d.job.schedule(req(repeat={"limit": 3})), "repeat", "exactly one"),
    ("every 0", lambda d: d.job.schedule(req(repeat={"every": 0})), "repeat.every", "> 0"),
    ("every negative", lambda d: d.job.schedule(req(repeat={"every": -60_000})), "repeat.every", "> 0"),
    ("every boolean", lambda d: d.job.schedule(req(repeat={"every": True})), "repeat.every", "boolean"),
    ("every 1e30", lambda d: d.job.schedule(req(repeat={"every": 1e30})), "repeat.every", "beyond a signed 64-bit"),
    ("retries -1e30", lambda d: d.job.schedule(req(retries=-1e30)), "retries", "beyond a signed 64-bit integer"),
    ("limit 0", lambda d: d.job.schedule(req(repeat={"every": 1000, "limit": 0})), "repeat.limit", ">= 1"),
    ("limit negative", lambda d: d.job.schedule(req(repeat={"every": 1000, "limit": -2})), "repeat.limit", ">= 1"),
    ("limit boolean", lambda d: d.job.schedule(req(repeat={"every": 1000, "limit": True})), "repeat.limit", "bool"),
    (
        "endDate before start_at",
        lambda d: d.job.schedule(
            req(start_at="2026-05-01T00:00:00Z", repeat={"every": 1000, "endDate": "2026-04-01T00:00:00Z"})
        ),
        "repeat.endDate",
        "before start_at",
    ),
    (
        "end_date before start_at",
        lambda d: d.job.schedule(
            req(start_at="2026-05-01T00:00:00Z", repeat={"every": 1000, "end_date": "2026-04-01T00:00:00Z"})
        ),
        "repeat.endDate",
        "before start_at",
    ),
    (
        "endDate in the past (start is now)",
        lambda d: d.job.schedule(req(repeat={"every": 1000, "endDate": "2026-01-01T00:00:00Z"})),
        "repeat.endDate",
        "before the start",
    ),
    (
        "no occurrence before endDate",
        lambda d: d.job.schedule(
            req(start_at="2026-05-01T00:00:00Z", repeat={"cron": "@yearly", "endDate": "2026-06-01T00:00:00Z"})
        ),
        "repeat.endDate",
        "no occurrence",
    ),
    ("endDate 0", lambda d: d.job.schedule(req(repeat={"every": 1000, "endDate": 0})), "repeat.endDate", "after 1970"),
    (
        "endDate garbage",
        lambda d: d.job.schedule(req(repeat={"every": 1000, "endDate": "soon"})),
        "repeat.endDate",
        "not a unix timestamp or an iso 8601",
    ),
    (
        "end_date garbage names the spelling used",
        lambda d: d.job.schedule(req(repeat={"every": 1000, "end_date": "soon"})),
        "repeat.end_date",
        "iso 8601",
    ),
    (
        "endDate and end_date both",
        lambda d: d.job.schedule(
            req(repeat={"every": 1000, "endDate": "2026-04-01T00:00:00Z", "end_date": "2026-04-01T00:00:00Z"})
        ),
        "repeat.endDate",
        "not both",
    ),
    (
        "unknown repeat field",
        lambda d: d.job.schedule(req(repeat={"every": 1000, "count": 3})),
        "repeat.count",
        "not a",
    ),
    ("negative start_at", lambda d: d.job.schedule(req(start_at=-1)), "start_at", "negative"),
    ("garbage start_at", lambda d: d.job.schedule(req(start_at="tomorrow")), "start_at", "iso 8601"),
    ("boolean start_at", lambda d: d.job.schedule(req(start_at=True)), "start_at", "boolean"),
    # an int past a float's range cannot be divided into seconds: it was an OverflowError (HTTP 500)
    ("start_at past a float", lambda d: d.job.schedule(req(start_at=10**400)), "start_at", "after 9000-01-01"),
    (
        "endDate past a float",
        lambda d: d.job.schedule(req(repeat={"every": 1000, "endDate": 2**1100})),
        "repeat.endDate",
        "after 9000-01-01",
    ),
    ("boolean priority", lambda d: d.job.schedule(req(priority=True)), "priority", "not a boolean"),
    ("env a lone surrogate", lambda d: d.job.schedule(req(env="pr\udce9")), "env", "lone surrogate"),
    ("NaN start_at", lambda d: d.job.schedule(req(start_at=float("nan"))), "start_at", "finite"),
    ("infinite start_at", lambda d: d.job.schedule(req(start_at=float("inf"))), "start_at", "finite"),
    ("huge start_at", lambda d: d.job.schedule(req(start_at=10**20)), "start_at", "the latest time the engine takes"),
    ("list start_at", lambda d: d.job.schedule(req(start_at=[1])), "start_at", "not list"),
    ("retries < 0", lambda d: d.job.schedule(req(retries=-1)), "retries", "must be >= 0"),
    ("retries boolean", lambda d: d.job.schedule(req(retries=True)), "retries", "boolean"),
    ("retries too many", lambda d: d.job.schedule(req(retries=10_000)), "retries", "must be <= 1000"),
    ("timeout 0", lambda d: d.job.schedule(req(timeout=0)), "timeout", "must be > 0"),
    ("unknown misfire", lambda d: d.job.schedule(req(misfire="always")), "misfire", "run_once"),
    ("unknown overlap", lambda d: d.job.schedule(req(overlap="queue")), "overlap", "allow"),
    ("unknown job tag", lambda d: d.job.schedule(req(event="nope")), "event", "no job with tag 'nope'"),
    ("bad event tag characters", lambda d: d.job.schedule(req(event="bad tag!")), "event", "letters, digits"),
    ("missing env", lambda d: d.job.schedule({"product_tag": "reports", "event": "report"}), "env", "is required"),
    (
        "missing product_tag",
        lambda d: d.job.schedule({"env": "prd", "event": "report"}),
        "product_tag",
        "is required",
    ),
    ("missing event", lambda d: d.job.schedule({"env": "prd", "product_tag": "reports"}), "event", "is required"),
    ("empty env", lambda d: d.job.schedule(req(env="")), "env", "at least 1 character"),
    ("unknown field", lambda d: d.job.schedule(req(urgency=5)), "urgency", "not a known field"),
    ("input a set", lambda d: d.job.schedule(req(input={"ids": {1, 2}})), "input.ids", "must be JSON data"),
    ("input an object", lambda d: d.job.schedule(req(input={"o": object()})), "input.o", "must be JSON data"),
    ("input a datetime", lambda d: d.job.schedule(req(input={"at": SEPT})), "input.at", "must be JSON data"),
    ("input NaN", lambda d: d.job.schedule(req(input={"x": float("nan")})), "input.x", "finite"),
    ("input a lone surrogate", lambda d: d.job.schedule(req(input={"f": "caf\udce9"})), "input.f", "lone surrogate"),
    ("input key a lone surrogate", lambda d: d.job.schedule(req(input={"\ud800": 1})), "input", "lone surrogate"),
    (  # 135,000 characters, 270,000 bytes as UTF-8 JSON: the limit counts bytes
        "input over the limit in bytes",
        lambda d: d.job.schedule(req(input={k: "\u00e9" * 45_000 for k in "abc"})),
        "input",
        "bytes as JSON; at most 262144",
    ),
    ("input a list", lambda d: d.job.schedule(req(input=[1, 2])), "input", "must be an object"),
    ("input a string", lambda d: d.job.schedule(req(input="{}")), "input", "must be an object"),
    ("session without token", lambda d: d.job.schedule(req(session={"tag": "s"})), "session.token", "is required"),
    ("session string without colon", lambda d: d.job.schedule(req(session="just-a-tag")), "session", "tag:token"),
    ("request not a dict", lambda d: d.job.schedule("report"), "request", "expected an object"),  # type: ignore[arg-type]
]

CREATE_CASES: list[Case] = [
    ("missing name", lambda d: d.job.create({k: v for k, v in job("j2").items() if k != "name"}), "name", "required"),
    ("missing tag", lambda d: d.job.create({k: v for k, v in job().items() if k != "tag"}), "tag", "required"),
    (
        "missing event_type",
        lambda d: d.job.create({k: v for k, v in job("j2").items() if k != "event_type"}),
        "event_type",
        "required",
    ),
    (
        "missing event_tag",
        lambda d: d.job.create({k: v for k, v in job("j2").items() if k != "event_tag"}),
        "event_tag",
        "required",
    ),
    ("empty name", lambda d: d.job.create(job("j2", name="")), "name", "at least 1 character"),
    ("blank name", lambda d: d.job.create(job("j2", name="   ")), "name", "at least 1 character"),
    ("unknown event type", lambda d: d.job.create(job("j2", event_type="EMAIL")), "event_type", "unknown event type"),
    ("event type not a string", lambda d: d.job.create(job("j2", event_type=3)), "event_type", "unknown event type"),
    ("bad tag characters", lambda d: d.job.create(job("bad tag!")), "tag", "letters, digits"),
    ("tag starting with a dash", lambda d: d.job.create(job("-x")), "tag", "start with a letter or digit"),
    ("tag too long", lambda d: d.job.create(job("x" * 129)), "tag", "max 128"),
    ("negative executions", lambda d: d.job.create(job("j2", executions=-1)), "executions", "must be >= 0"),
    ("negative intervals", lambda d: d.job.create(job("j2", intervals=-1)), "intervals", "must be >= 0"),
    ("boolean intervals", lambda d: d.job.create(job("j2", intervals=True)), "intervals", "boolean"),
    ("boolean concurrency", lambda d: d.job.create(job("j2", concurrency=True)), "concurrency", "boolean"),
    ("boolean priority", lambda d: d.job.create(job("j2", priority=False)), "priority", "boolean"),
    ("start_at past a float", lambda d: d.job.create(job("j2", start_at=10**400)), "start_at", "after 9000"),
    ("garbage start_at", lambda d: d.job.create(job("j2", start_at="later")), "start_at", "iso 8601"),
    ("unknown field", lambda d: d.job.create(job("j2", cron="* * * * *")), "cron", "not a known field"),
    ("not a dict", lambda d: d.job.create(None), "request", "expected an object"),  # type: ignore[arg-type]
]

UPDATE_CASES: list[Case] = [
    ("tag cannot change", lambda d: d.job.update("report", {"tag": "other"}), "tag", "cannot be changed"),
    ("tag cannot change, same value", lambda d: d.job.update("report", {"tag": "report"}), "tag", "cannot be changed"),
    ("empty update", lambda d: d.job.update("report", {}), "data", "at least one field"),
    ("unknown field", lambda d: d.job.update("report", {"colour": "red"}), "colour", "not a known field"),
    ("bad event type", lambda d: d.job.update("report", {"event_type": "EMAIL"}), "event_type", "unknown event type"),
    ("negative intervals", lambda d: d.job.update("report", {"intervals": -5}), "intervals", "must be >= 0"),
    ("boolean priority", lambda d: d.job.update("report", {"priority": True}), "priority", "boolean"),
    ("empty name", lambda d: d.job.update("report", {"name": ""}), "name", "at least 1 character"),
]

QUERY_CASES: list[Case] = [
    ("preview count 0", lambda d: d.job.preview({"every": 1000}, count=0), "count", "between 1 and 10000"),
    ("preview count too big", lambda d: d.job.preview({"every": 1000}, count=10_001), "count", "between 1"),
    ("preview bad cron", lambda d: d.job.preview({"cron": "x"}), "repeat.cron", "1 fields"),
    ("preview neither", lambda d: d.job.preview({}), "repeat", "exactly one of cron or every"),
    ("preview bad tz", lambda d: d.job.preview({"cron": "@daily", "tz": "Nowhere"}), "repeat.tz", "unknown time zone"),
    ("preview bad start", lambda d: d.job.preview({"every": 1000}, start="soon"), "start", "iso 8601"),
    ("preview start past a float", lambda d: d.job.preview({"every": 1000}, start=10**400), "start", "after 9000"),
    ("runs since past a float", lambda d: d.job.runs(since=10**400), "since", "after 9000-01-01"),
    ("reschedule bad cron", lambda d: d.job.reschedule("whatever", {"cron": "@never"}), "repeat.cron", "macro"),
    ("runs bad phase", lambda d: d.job.runs(phase="nope"), "phase", "not one of"),
    ("runs limit 0", lambda d: d.job.runs(limit=0), "limit", "between 1 and 10000"),
    ("runs negative offset", lambda d: d.job.runs(offset=-1), "offset", "between 0 and"),
    ("runs garbage since", lambda d: d.job.runs(since="yesterday"), "since", "iso 8601"),
    ("runs negative until", lambda d: d.job.runs(until=-5), "until", "negative"),
    ("list limit 0", lambda d: d.job.list(limit=0), "limit", "between 1 and 10000"),
    ("list limit too big", lambda d: d.job.list(limit=10_001), "limit", "between 1 and 10000"),
    ("list bad status", lambda d: d.job.list(status="running"), "status", "not one of"),
    # a function's timeout is a product's timeout's rule: text was a TypeError, inf and 1e300 were taken
    ("function timeout text", lambda d: d.function("f", timeout="5")(print), "timeout", "must be seconds"),  # type: ignore[arg-type]
    ("function timeout 0", lambda d: d.function("f", timeout=0)(print), "timeout", "> 0 and at most 2,147,483"),
    ("function timeout inf", lambda d: d.function("f", timeout=float("inf"))(print), "timeout", "about 24.8 days"),
    ("function timeout NaN", lambda d: d.function("f", timeout=float("nan"))(print), "timeout", "must be seconds"),
    ("function timeout boolean", lambda d: d.function("f", timeout=True)(print), "timeout", "must be seconds"),
]


def _ids(cases: list[Case]) -> list[str]:
    return [c[0] for c in cases]


@pytest.mark.parametrize(("name", "call", "field", "rule"), SCHEDULE_CASES, ids=_ids(SCHEDULE_CASES))
def test_schedule_rejects(jdt: Ductape, name: str, call: Callable[[Ductape], object], field: str, rule: str) -> None:
    rejected(jdt, call, field, rule)


@pytest.mark.parametrize(("name", "call", "field", "rule"), CREATE_CASES, ids=_ids(CREATE_CASES))
def test_create_rejects(jdt: Ductape, name: str, call: Callable[[Ductape], object], field: str, rule: str) -> None:
    rejected(jdt, call, field, rule)


@pytest.mark.parametrize(("name", "call", "field", "rule"), UPDATE_CASES, ids=_ids(UPDATE_CASES))
def test_update_rejects(jdt: Ductape, name: str, call: Callable[[Ductape], object], field: str, rule: str) -> None:
    rejected(jdt, call, field, rule)


@pytest.mark.parametrize(("name", "call", "field", "rule"), QUERY_CASES, ids=_ids(QUERY_CASES))
def test_queries_reject(jdt: Ductape, name: str, call: Callable[[Ductape], object], field: str, rule: str) -> None:
    rejected(jdt, call, field, rule)


def test_validation_error_is_raised_before_the_existence_checks(jdt: Ductape) -> None:
    # bad input on a job that does not exist still names the input field, not "tag"
    rejected(jdt, lambda d: d.job.update("nope", {"intervals": -1}), "intervals", "must be >= 0")
    # a second rule broken later in the same request: the first one is reported
    rejected(jdt, lambda d: d.job.schedule(req(event="nope", retries=-1)), "retries", "must be >= 0")


def test_one_error_rule_conflicts_and_unknown_tags(jdt: Ductape) -> None:
    """ConflictError for what conflicts with the stored state, NotFoundError for an unknown tag or id,
    whichever call meets it (issue 11: update('nope') raised ValidationError where fetch('nope') did not)."""
    with pytest.raises(ConflictError, match="tag: a job with tag 'report' already exists"):
        jdt.job.create(job(name="Another"))
    with pytest.raises(NotFoundError, match="job 'nope' not found"):
        jdt.job.update("nope", {"name": "x"})
    with pytest.raises(NotFoundError, match="job 'nope' not found"):
        jdt.job.delete("nope")
    assert [j.name for j in jdt.job.fetch_all()] == ["Report"]
    job_id = jdt.job.schedule(req(repeat={"every": 1000})).job_id
    with pytest.raises(ConflictError, match="only a paused one resumes"):
        jdt.job.resume(job_id)
    jdt.job.cancel(job_id)
    with pytest.raises(ConflictError, match="only an active one pauses"):
        jdt.job.pause(job_id)
    with pytest.raises(ConflictError, match="is cancelled"):
        jdt.job.reschedule(job_id, {"every": 5000})


def test_duplicate_tag_race_is_still_refused_by_the_store(jdt: Ductape) -> None:
    parsed = JobDefinition.model_validate(job())
    with pytest.raises(ConflictError, match="already exists"):
        jdt.store.create_job(parsed, jdt.clock.now())


# ----------------------------------------------------------------------------------------- schedule_many


def test_schedule_many_with_a_bad_item_writes_none_of_them(jdt: Ductape) -> None:
    items = [req(), req(repeat={"every": 1000}), req(), req(start_at="not a date"), req()]
    rejected(jdt, lambda d: d.job.schedule_many(items), "[3].start_at", "iso 8601")
    items = [req(), req(), req(repeat={"cron": "@nope"})]
    rejected(jdt, lambda d: d.job.schedule_many(items), "[2].repeat.cron", "macro")
    items = [req(), req(), req(event="missing")]
    rejected(jdt, lambda d: d.job.schedule_many(items), "[2].event", "no job with tag")


def test_schedule_many_takes_a_list_of_requests_not_text_or_one_request(jdt: Ductape, tmp_path: Path) -> None:
    """A string was taken character by character (``[0]: expected an object (dict), got str``)."""
    one: Any = req()
    for bad, kind in [("notalist", "str"), (one, "dict"), (5, "int")]:
        rejected(
            jdt, lambda d, bad=bad: d.job.schedule_many(bad), "requests", f"must be a list of requests, not {kind}"
        )

    async def in_async() -> None:
        async with AsyncDuctape(f"sqlite:///{tmp_path / 'a.db'}") as adt:
            await adt.job.schedule_many("notalist")

    with pytest.raises(ValidationError, match=r"^requests: must be a list of requests, not str$"):
        asyncio.run(in_async())
    assert len(jdt.job.schedule_many(iter([req(), req()]))) == 2  # any iterable of requests


def test_schedule_many_prefixes_the_first_item_too(jdt: Ductape) -> None:
    rejected(jdt, lambda d: d.job.schedule_many([req(retries=-1), req()]), "[0].retries", "must be >= 0")


def test_schedule_many_writes_all_good_items(jdt: Ductape) -> None:
    before = len(jdt.job.list())
    results = jdt.job.schedule_many([req(), req(start_at=SEPT_S), req(repeat={"every": 1000})])
    assert [r.status for r in results] == [RunPhase.QUEUED, RunPhase.SCHEDULED, RunPhase.QUEUED]
    assert len(jdt.job.list()) == before + 3
    assert {s.id for s in jdt.job.list()} >= {r.job_id for r in results}


@pytest.mark.parametrize(
    ("bad", "field", "rule"),
    [
        ({"start_at": "not a date"}, "start_at", "iso 8601"),  # refused as it is parsed: before any part is written
        ({"session": {"tag": "s", "token": "x"}}, "session", "sessions are declared by a product"),  # by its product
        ({"repeat": {"every": 1000, "end_date": 1}}, "repeat.endDate", "before the start"),  # by its plan
    ],
)
def test_schedule_many_past_its_first_parts_with_a_bad_item_writes_none_of_them(
    jdt: Ductape, bad: dict[str, Any], field: str, rule: str
) -> None:
    """Past ``PART`` requests the call is written part by part as it is planned: a bad item in a late part still
    leaves the store as it was."""
    items = [req() for _ in range(3 * PART)]
    items[2 * PART + 5] = req(**bad)
    rejected(jdt, lambda d: d.job.schedule_many(items), f"[{2 * PART + 5}].{field}", rule)


def test_schedule_many_reports_its_first_bad_item_whatever_refuses_it(jdt: Ductape) -> None:
    """Requests are parsed before any is planned; a request refused by its plan still comes before a later one
    that cannot be parsed."""
    items = [req() for _ in range(3 * PART)]
    items[10] = req(repeat={"every": 1000, "end_date": 1})
    items[2 * PART] = req(start_at="not a date")
    rejected(jdt, lambda d: d.job.schedule_many(items), "[10].repeat.endDate", "before the start")
    items[10] = req()
    rejected(jdt, lambda d: d.job.schedule_many(items), f"[{2 * PART}].start_at", "iso 8601")


def test_schedule_many_past_one_part_writes_every_item_with_its_own_result(jdt: Ductape) -> None:
    before = {s.id for s in jdt.job.list()}
    results = jdt.job.schedule_many([req(input={"i": i}) for i in range(2 * PART + 1)])
    made = {s.id: s for s in jdt.job.list(limit=1000) if s.id not in before}
    assert len(results) == len(made) == 2 * PART + 1
    assert [made[r.job_id].input for r in results] == [{"i": i} for i in range(2 * PART + 1)]


def test_schedule_many_of_nothing_writes_nothing(jdt: Ductape) -> None:
    before = snapshot(jdt)
    assert jdt.job.schedule_many([]) == []
    assert snapshot(jdt) == before


# ------------------------------------------------------------------------------------------ accepted forms


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("ACTION", JobEventTypes.ACTION),
        ("action", JobEventTypes.ACTION),
        (" Notification ", JobEventTypes.NOTIFICATION),
        ("DATABASE_ACTION", JobEventTypes.DATABASE_ACTION),
        ("database-action", JobEventTypes.DATABASE_ACTION),
        ("db_action", JobEventTypes.DATABASE_ACTION),  # seed 003's name of the job type
        ("DB-ACTION", JobEventTypes.DATABASE_ACTION),
        ("PUBLISH", JobEventTypes.MESSAGEBROKER),
        ("publish", JobEventTypes.MESSAGEBROKER),
        ("MESSAGEBROKER", JobEventTypes.MESSAGEBROKER),
        ("message_broker", JobEventTypes.MESSAGEBROKER),
        (JobEventTypes.FUNCTION, JobEventTypes.FUNCTION),
    ],
)
def test_event_type_forms(dt: Ductape, given: object, expected: JobEventTypes) -> None:
    created = dt.job.create(job(event_type=given))
    assert created.event_type is expected
    assert dt.job.fetch("report").event_type is expected


def test_update_accepts_event_type_aliases(dt: Ductape) -> None:
    dt.job.create(
        job()
    )  # no live schedule: one would need a product declaring the broker topic (a FUNCTION's does not)
    updated = dt.job.update("report", {"event_type": "PUBLISH", "name": "Weekly"})
    assert updated.event_type is JobEventTypes.MESSAGEBROKER and updated.name == "Weekly" and updated.tag == "report"
    assert dt.job.fetch("report").event_type is JobEventTypes.MESSAGEBROKER


@pytest.mark.parametrize(
    "start_at",
    [
        SEPT_S,
        SEPT_S * 1000,
        float(SEPT_S),
        SEPT_S * 1000.0,
        str(SEPT_S),
        str(SEPT_S * 1000),
        "2026-09-21T14:13:20Z",
        "2026-09-21T14:13:20.000Z",
        "2026-09-21T16:13:20+02:00",
        "2026-09-21T14:13:20",  # naive: UTC
        SEPT,
        SEPT.astimezone(timezone(timedelta(hours=-7))),
        datetime(2026, 9, 21, 14, 13, 20),  # naive: UTC
    ],
)
def test_start_at_forms_give_the_same_instant(dt: Ductape, start_at: object) -> None:
    dt.job.create(job())
    result = dt.job.schedule(req(start_at=start_at))
    assert result.scheduled_at == SEPT and result.scheduled_at.tzinfo is not None
    assert result.status is RunPhase.SCHEDULED
    assert dt.job.get(result.job_id).next_run_at == SEPT


@pytest.mark.parametrize("start_at", [0, None, "0", 1704067200, "2024-01-01T00:00:00Z", 1])
def test_start_at_zero_missing_or_past_means_now(dt: Ductape, clock: FakeClock, start_at: object) -> None:
    dt.job.create(job())
    result = dt.job.schedule(req(start_at=start_at) if start_at is not None else req())
    assert result.scheduled_at == clock.now()
    assert result.status is RunPhase.QUEUED
    (run,) = dt.job.runs(job_id=result.job_id)
    assert run.phase is RunPhase.QUEUED and run.scheduled_at == clock.now()


def test_job_start_at_is_the_default_start(dt: Ductape) -> None:
    dt.job.create(job(start_at=SEPT_S))
    assert dt.job.fetch("report").start_at == SEPT
    assert dt.job.schedule(req()).scheduled_at == SEPT
    assert dt.job.schedule(req(start_at="2026-10-01T00:00:00Z")).scheduled_at == datetime(2026, 10, 1, tzinfo=UTC)


END = datetime(2026, 4, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    "repeat",
    [
        {"every": 3_600_000, "endDate": int(END.timestamp())},
        {"every": 3_600_000, "endDate": int(END.timestamp()) * 1000},
        {"every": 3_600_000, "endDate": "2026-04-01T00:00:00Z"},
        {"every": 3_600_000, "endDate": "2026-04-01T02:00:00+02:00"},
        {"every": 3_600_000, "endDate": END},
        {"every": 3_600_000, "end_date": "2026-04-01T00:00:00Z"},
        {"every": 3_600_000, "end_date": int(END.timestamp())},
        RepeatOptions(every=3_600_000, endDate="2026-04-01T00:00:00Z"),  # type: ignore[call-arg]
        RepeatOptions(every=3_600_000, end_date=END),
    ],
)
def test_end_date_forms(dt: Ductape, repeat: Any) -> None:
    dt.job.create(job())
    result = dt.job.schedule(req(repeat=repeat))
    assert dt.job.get(result.job_id).end_date == END


def test_every_accepts_a_timedelta(dt: Ductape) -> None:
    dt.job.create(job())
    result = dt.job.schedule(req(repeat={"every": timedelta(minutes=5)}))
    assert dt.job.get(result.job_id).every == timedelta(minutes=5)


def test_cron_is_normalised_and_macros_expand(dt: Ductape) -> None:
    dt.job.create(job())
    a = dt.job.schedule(req(repeat={"cron": "  0   9 * *  1-5 "}))
    b = dt.job.schedule(req(repeat={"cron": "@Daily", "tz": "Europe/London"}))
    assert dt.job.get(a.job_id).cron == "0 9 * * 1-5"
    assert (dt.job.get(b.job_id).cron, dt.job.get(b.job_id).tz) == ("0 0 * * *", "Europe/London")


def test_pydantic_models_are_accepted_as_well_as_dicts(dt: Ductape, clock: FakeClock) -> None:
    created = dt.job.create(
        JobDefinition(name="Report", tag="report", event_type=JobEventTypes.FUNCTION, event_tag="report_fn")
    )
    assert created.created_at == clock.now()
    model = ScheduleRequest(
        env="prd",
        product_tag="reports",
        event="report",
        start_at=SEPT,
        retries=2,
        input={"a": 1},
        repeat=RepeatOptions(cron="0 9 * * *", tz="America/New_York", limit=3),
    )
    from_model = dt.job.schedule(model)
    from_dict = dt.job.schedule(
        req(
            start_at=SEPT_S,
            retries=2,
            input={"a": 1},
            repeat={"cron": "0 9 * * *", "tz": "America/New_York", "limit": 3},
        )
    )
    a, b = dt.job.get(from_model.job_id), dt.job.get(from_dict.job_id)
    assert from_model.scheduled_at == from_dict.scheduled_at == datetime(2026, 9, 22, 13, tzinfo=UTC)  # 9:00 EDT
    for s in (a, b):
        assert (s.cron, s.tz, s.limit, s.retries, s.input) == ("0 9 * * *", "America/New_York", 3, 2, {"a": 1})


def test_a_model_is_validated_again_against_the_store(dt: Ductape) -> None:
    model = ScheduleRequest(env="prd", product_tag="reports", event="nobody")
    rejected(dt, lambda d: d.job.schedule(model), "event", "no job with tag 'nobody'")


@pytest.mark.parametrize(
    "session",
    [{"tag": "user-session", "token": "a.b.c"}, "user-session:a.b.c", {"tag": "user-session", "token": "a:b"}],
)
def test_session_forms(session: object) -> None:
    parsed = ScheduleRequest.model_validate(req(session=session))
    assert parsed.session is not None and parsed.session.tag == "user-session"


def test_a_session_without_products_to_verify_it_is_rejected(dt: Ductape) -> None:
    dt.job.create(job())
    with pytest.raises(ValidationError) as err:
        dt.job.schedule(req(session="user-session:a.b.c"))
    assert err.value.field == "session"  # not "unknown product (known: none)": it says what to declare
    assert "add product 'reports' with sessions.user-session and envs.prd.session_secret" in err.value.rule
    assert dt.job.list() == []


@pytest.mark.parametrize("event_type", ["ACTION", "NOTIFICATION", "DATABASE_ACTION", "MESSAGEBROKER", "FEATURE"])
def test_an_event_no_product_declares_is_refused_at_the_door(dt: Ductape, event_type: str) -> None:
    dt.job.create({"name": "N", "tag": "n", "event_type": event_type, "event_tag": "orders:create"})
    with pytest.raises(ValidationError) as err:
        dt.job.schedule(req("n"))
    assert err.value.field == "event" and "no product is declared: add product 'reports' with env 'prd'" in str(
        err.value
    )
    assert dt.job.list() == []


def test_session_string_splits_on_the_first_colon() -> None:
    parsed = ScheduleRequest.model_validate(req(session="user-session:tok:with:colons"))
    assert parsed.session is not None
    assert (parsed.session.tag, parsed.session.token) == ("user-session", "tok:with:colons")


def test_strings_are_stripped(dt: Ductape) -> None:
    created = dt.job.create(job(name="  Report  ", tag=" report "))
    assert (created.name, created.tag) == ("Report", "report")
    assert dt.job.schedule(req(event=" report ", env=" prd ")).job_id


def test_an_input_just_under_the_byte_limit_is_taken(dt: Ductape) -> None:
    dt.job.create(job())
    payload = {k: "e" * 45_000 for k in "abc"} | {"d": "\u00e9" * 40_000}  # 215,000 characters, 255,000 bytes
    assert dt.job.get(dt.job.schedule(req(input=payload)).job_id).input == payload


class Name(str):  # a str subclass, as markupsafe's Markup or numpy's str_
    pass


class Price(float):  # a float subclass, as numpy's float64
    pass


def test_subclasses_of_json_scalars_are_taken_as_their_values(dt: Ductape) -> None:
    dt.job.create(job())
    payload = {"name": Name("<b>hi</b>"), "price": Price(1.5), "n": True}
    assert dt.job.get(dt.job.schedule(req(input=payload)).job_id).input == {
        "name": "<b>hi</b>",
        "price": 1.5,
        "n": True,
    }


def test_the_input_size_is_measured_as_it_is_stored(dt: Ductape) -> None:
    """40,000 floats of 1e-05: 240,025 bytes as stored (``1e-05``), 320,025 if written ``0.00001``."""
    dt.job.create(job())
    payload = {k: [1e-05] * 10_000 for k in "abcd"}
    assert dt.job.get(dt.job.schedule(req(input=payload)).job_id).input == payload


def test_input_round_trips(dt: Ductape) -> None:
    dt.job.create(job())
    payload = {"price": "US$ 5", "n": 1, "x": 1.5, "ok": True, "none": None, "list": [1, {"a": "b"}]}
    result = dt.job.schedule(req(input=payload))
    assert dt.job.get(result.job_id).input == payload
    (run,) = dt.job.runs(job_id=result.job_id)
    assert run.input == payload
    assert dt.job.get(dt.job.schedule(req(input=None)).job_id).input == {}


def test_runs_since_until_accept_the_start_at_forms(jdt: Ductape, clock: FakeClock) -> None:
    (run,) = jdt.job.runs()
    for since in (clock.now(), int(clock.now().timestamp()), clock.now().isoformat()):
        assert [r.id for r in jdt.job.runs(since=since)] == [run.id]
    later = clock.now() + timedelta(seconds=1)
    assert jdt.job.runs(since=later) == []
    assert [r.id for r in jdt.job.runs(until=later.isoformat())] == [run.id]


def test_what_the_caller_input_reads_is_tried_at_the_door(jdt: Ductape) -> None:
    """All a schedule's input may read is known at schedule(): a bad function argument is refused there."""
    rejected(jdt, lambda d: d.job.schedule(req(input={"a": "$DateAdd($Now, 1, 'years')"})), "input.a", "unit must be")
    rejected(jdt, lambda d: d.job.schedule_many([req(), 5]), "[1]", "expected an object")  # type: ignore[list-item]
    far = req(repeat={"cron": "59 23 31 12 *", "tz": "Etc/GMT+12"}, start_at="8999-12-31T23:59:59Z")
    rejected(jdt, lambda d: d.job.schedule(far), "repeat", "no occurrence falls before 9000-01-01")


def test_what_the_caller_input_fills_in_is_bounded_at_the_door(jdt: Ductape) -> None:
    """``$Now`` is 4 characters that fill in 24: 240 KB stored would be 1.4 MB filled in. Refused as a stored input
    past the bound is, naming it; one that fills in within it is taken."""
    payload = {key: "$Now" * 12_000 for key in "abcde"}
    rule = "filled in, it is more than 1,048,576 bytes as JSON, the bound on what placeholders fill in"
    rejected(jdt, lambda d: d.job.schedule(req(input=payload)), "input", rule)
    rejected(jdt, lambda d: d.job.schedule_many([req(), req(input=payload)]), "[1].input", rule)
    assert jdt.job.schedule(req(input={key: "$Now" * 2_000 for key in "abcde"})).job_id


def test_a_model_built_directly_raises_our_validation_error() -> None:
    """``RepeatOptions(every=10)`` raised pydantic's ValidationError, which ``except ductape_jobs.ValidationError``
    (what the README promises of every entry point) did not catch, in pydantic's words."""
    from ductape_jobs import JobDefinition
    from ductape_jobs.inputs import RepeatOptions, ScheduleRequest

    cases = [
        (lambda: RepeatOptions(every=10), "every: every must be at least 100 (milliseconds)"),
        (lambda: ScheduleRequest(env="e", product_tag="p", event="x", colour=1), "colour: is not a known field"),
        (lambda: JobDefinition(name="n", event_type="FUNCTION", event_tag="f"), "tag: is required"),
    ]
    for build, message in cases:
        with pytest.raises(ValidationError) as raised:
            build()
        assert str(raised.value) == message
    assert RepeatOptions(every=1000).every == 1000


def test_the_seeds_feature_event_is_exported_and_built_directly_raises_ours() -> None:
    """Seed 003 types its sample as ``IFeatureEvent``; the name was missing (the other seed names were there).
    Built directly, it (and a product's other specs, and a webhook request) raised pydantic's ValidationError."""
    from ductape_jobs import FeatureEventTypes, IFeatureEvent
    from ductape_jobs.inputs import WebhookRequest
    from ductape_jobs.products.model import ProductSpec

    event = IFeatureEvent(type=FeatureEventTypes.JOB, event="send", input={"a": "$Input{a}"}, retries=3)
    assert (event.type, event.retries, event.allow_fail) == (FeatureEventTypes.JOB, 3, False)
    cases = [
        (lambda: IFeatureEvent(type="JOB", event="send", retries=True), "retries: must be a number, not a boolean"),
        (lambda: IFeatureEvent(type="JOB", event="send", colour=1), "colour: is not a known field"),
        (lambda: ProductSpec(tag="shop", colour=1), "colour: is not a known field"),
        (
            lambda: WebhookRequest(product_tag="shop", url="https://x.example/h", events=["job.done"], colour=1),
            "colour: is not a known field",
        ),
    ]
    for build, message in cases:
        with pytest.raises(ValidationError) as raised:
            build()
        assert str(raised.value) == message


def test_executions_without_intervals_are_refused(jdt: Ductape) -> None:
    """A job of 5 executions with intervals 0 (or none) ran once: refused, naming intervals, on create and on an
    update that leaves the job so (its stored fields counted); nothing is written."""
    rule = "for executions 5: intervals 0 runs the job once"
    rejected(jdt, lambda d: d.job.create(job(tag="five", executions=5)), "intervals", rule)
    rejected(jdt, lambda d: d.job.update("report", {"executions": 5, "intervals": 0}), "intervals", rule)
    jdt.job.update("report", {"executions": 5, "intervals": 60_000})
    rejected(jdt, lambda d: d.job.update("report", {"intervals": 0}), "intervals", rule)
    assert jdt.job.create(job(tag="one", executions=1)).executions == 1


def test_the_product_and_env_filters_of_listings_are_bounded_text(jdt: Ductape) -> None:
    """``job.list``, ``job.runs``, ``feature.runs`` and ``webhooks.list`` took any filter (an int, 5,000 characters),
    now that HTTP passes them on too; ``job.stats`` already bounded its own."""
    calls: list[Callable[..., object]] = [jdt.job.list, jdt.job.runs, jdt.feature.runs, jdt.job.stats]
    for call in calls:
        for field in ("product_tag", "env"):
            for bad in ("x" * 257, 5, "  "):
                with pytest.raises(ValidationError, match=f"^{field}: must be text of 1 to 256 characters$"):
                    call(**{field: bad})
    with pytest.raises(ValidationError, match=r"^product_tag: must be text"):
        jdt.webhooks.list(product_tag="x" * 257)
    assert jdt.job.list(product_tag=" shop ") == jdt.job.list(product_tag="shop")  # stripped, as stats strip it


def test_a_rate_reads_its_unit_by_name_before_its_plural() -> None:
    """A limits probe: ``"5/100ms"`` was read as 5 per 100 minutes (``ms``, the plural of ``m``), so a job limited
    so ran 5 runs and held the rest 100 minutes; ``"1/ms"`` was 1 a minute. A unit is its name, else its plural."""
    from ductape_jobs.resources import parse_rate

    windows = {"5/100ms": 100, "1/ms": 1, "3/500ms": 500, "20 per second": 1000, "2/10secs": 10_000, "6/mins": 60_000,
               "1 per 2 hours": 7_200_000, "10/s": 1000, "600/min": 60_000, "5/10m": 600_000}  # fmt: skip
    for rate, ms in windows.items():
        parsed = parse_rate(rate, "rate")
        assert parsed.window == timedelta(milliseconds=ms), rate
        assert parse_rate(str(parsed), "rate") == parsed, rate  # as a job stores it
    for bad in ("5/100msec", "5/weeks", "5/100"):
        with pytest.raises(ValidationError, match=f"'{bad}' is not a rate"):
            parse_rate(bad, "rate")


def test_a_rate_with_a_window_past_what_a_timedelta_holds_is_refused(dt: Ductape) -> None:
    """A limits probe: ``"1/99999999999999999ms"`` raised ``OverflowError`` from ``job.create``, ``job.update`` and
    a product's declaration (a 500 over HTTP): the window was made a timedelta before it was checked. A number past
    4,300 digits raised ``ValueError`` from ``int()`` the same way."""
    dt.job.create(job())
    past = "is not a rate: a number in it has more than 12 digits"
    for rate, rule in (
        ("1/99999999999999999ms", past),
        ("1/" + "9" * 5_000 + "ms", past),
        ("9" * 5_000 + "/s", past),
        ("1/999999999999h", "window must be between 1 ms and 1 day (86400 s), not 3.5999999999964e+15 s"),
    ):
        rejected(dt, lambda d, r=rate: d.job.create({**job(), "tag": "other", "rate": r}), "rate", rule)
        rejected(dt, lambda d, r=rate: d.job.update("report", {"rate": r}), "rate", rule)
    assert str(dt.job.update("report", {"rate": "0" * 5_000 + "2/0" + "0" * 20 + "1s"}).rate) == "2/s"  # zeros led


def test_a_resource_named_twice_is_refused(dt: Ductape) -> None:
    """A limits probe: ``resources: ["crm-api", "crm-api"]`` was taken and stored twice (bad input, written)."""
    details = {**job(), "product_tag": "shop", "resources": ["crm-api", "db", "crm-api"]}
    rejected(dt, lambda d: d.job.create(details), "resources[2]", "'crm-api' is named twice")
    dt.job.create(job())
    rejected(dt, lambda d: d.job.update("report", {"resources": ["x", "x"]}), "resources[1]", "'x' is named twice")


def test_executions_0_given_needs_intervals(dt: Ductape) -> None:
    """Seeds 000 and 002: ``executions: 0`` is unlimited, "at the specified interval". Given without intervals the
    job ran once, silently (a seed-fidelity probe). Left out, executions is 0 too and a job without intervals runs
    once, as the README says."""
    rule = "must be at least 100 (milliseconds) for executions 0 (unlimited)"
    rejected(dt, lambda d: d.job.create({**job(), "executions": 0}), "intervals", rule)
    assert dt.job.create(job()).executions == 0  # left out: runs once
    rejected(dt, lambda d: d.job.update("report", {"executions": 0}), "intervals", rule)
    dt.job.update("report", {"executions": 0, "intervals": 60_000})
    assert dt.job.update("report", {"intervals": 0}).intervals == 0  # executions not given: once, as asked
    fetched = dt.job.fetch("report")  # a job read back says what it is: made again elsewhere, not refused (a review)
    assert dt.product("shop").jobs.create(fetched).product_tag == "shop"
    assert dt.product("blog").jobs.create(fetched.model_dump(mode="json")).product_tag == "blog"  # as HTTP sends it
    asked = JobDefinition(name="N", tag="new", event_type="FUNCTION", event_tag="f", executions=0)  # a model too
    rejected(dt, lambda d: d.job.create(asked), "intervals", rule)


def test_a_job_given_intervals_says_how_many_runs(dt: Ductape) -> None:
    """Seed 002: ``executions`` is required; seeds 000 and 002: "Use unlimited executions (executions: 0) only for
    jobs that should run continuously". A job created with ``intervals`` and no ``executions`` was stored as
    ``executions: 0`` and ran for ever: unlimited was what leaving the field out gave. Now refused at ``create``,
    naming it; nothing is written (an ``update`` is partial, as the seeds' is)."""
    details = {"name": "Sync", "tag": "sync", "event_type": "FUNCTION", "event_tag": "sync"}
    with pytest.raises(ValidationError) as caught:
        dt.job.create({**details, "intervals": 60_000})
    assert (caught.value.field, caught.value.rule) == (
        "executions",
        "is required with intervals: the number of runs, or 0 for unlimited runs (a job that should run continuously)",
    )
    assert dt.job.fetch_all() == []
    assert dt.job.create(details).executions == 0  # runs once: no intervals, no executions needed
    assert dt.job.create({**details, "tag": "sync2", "intervals": 60_000, "executions": 0}).executions == 0


#: Digits that Python's int() and float() read and a caller did not write in ASCII (Arabic-Indic, fullwidth).
NOT_ASCII = [
    "\u0661\u0667\u0669\u0669\u0669\u0669\u0669\u0669\u0669\u0669",
    "\uff11\uff17\uff19\uff19\uff19\uff19\uff19\uff19\uff19\uff19",
]


@pytest.mark.parametrize("digits", NOT_ASCII)
def test_numbers_in_text_take_ascii_digits_only(jdt: Ductape, digits: str) -> None:
    """A hostile-input probe: a ``start_at`` of Arabic-Indic digits made a schedule for 2027 and such a ``rate`` was
    stored as ``1/s`` (int() and float() read any Unicode digit), while every other number of the API refused them."""
    before = snapshot(jdt)
    with pytest.raises(ValidationError) as refused:
        jdt.job.schedule(req(start_at=digits))
    assert refused.value.field == "start_at" and "is not a Unix timestamp" in str(refused.value)
    with pytest.raises(ValidationError) as refused:
        jdt.job.runs(since=digits)
    assert refused.value.field == "since"
    with pytest.raises(ValidationError) as refused:
        jdt.job.create(job("limited", rate=f"{digits[:1]}/s"))
    assert refused.value.field == "rate" and "is not a rate" in str(refused.value)
    with pytest.raises(ValidationError) as refused:
        jdt.job.schedule(req(repeat={"every": 60_000, "endDate": f"{digits[:4]}-01-01"}))
    assert refused.value.field == "repeat.endDate"
    assert snapshot(jdt) == before  # nothing written
    assert jdt.job.schedule(req(start_at="1799999999")).scheduled_at == datetime(2027, 1, 15, 7, 59, 59, tzinfo=UTC)


def test_a_stream_position_takes_ascii_digits_only() -> None:
    from ductape_jobs.lifecycle import StreamPosition

    assert StreamPosition.parse("1-2-3") == StreamPosition(1, 2, 3)
    with pytest.raises(ValidationError) as refused:
        StreamPosition.parse("\uff11-2-3", "last_event_id")
    assert refused.value.field == "last_event_id"


def test_json_text_refuses_a_name_given_twice_naming_its_path() -> None:
    """``limits.read_json``, the one reader of a caller's JSON text (HTTP bodies, the CLI's --input and files)."""
    from ductape_jobs.limits import read_json

    assert read_json('{"a": 1, "b": [{"c": 2}]}', "--input", root="--input") == {"a": 1, "b": [{"c": 2}]}
    cases = {
        '{"a": 1, "a": 2}': ("--input.a", "is given 2 times in one object; give it once"),
        '{"a": {"b": [0, {"x": 1, "y": 2, "x": 3, "x": 4}]}}': ("--input.a.b[1].x", "is given 3 times"),
        '[{"k": 1}, {"k": 1, "k": 1}]': ("--input[1].k", "is given 2 times"),
        '{"": 1, "": 2}': ("--input.(an empty name)", "is given 2 times"),
        '{"n": ' + "9" * 5000 + ', "n": 1}': ("--input.n", "is given 2 times"),  # the long integer's second read
    }
    for text, (field, rule) in cases.items():
        with pytest.raises(ValidationError) as refused:
            read_json(text, "--input", root="--input")
        assert refused.value.field == field and refused.value.rule.startswith(rule), text
    wide = "[" + "0," * 200_000 + '{"a": 1, "a": 1}]'  # found by a walk that holds the depth, not every item
    with pytest.raises(ValidationError) as refused:
        read_json(wide, "body")
    assert refused.value.field == "[200000].a"
    shown = '{"\\u001b]0;owned\\u0007": {"' + "k" * 300 + '": {"a": 1, "a": 2}}}'  # every name escaped and cut
    with pytest.raises(ValidationError) as refused:
        read_json(shown, "body")
    assert refused.value.field == "\\x1b]0;owned\\x07." + "k" * 100 + "….a"
    many = "{" + ",".join(f'"k{i}": 0' for i in range(50_000)) + ', "k49999": 1}'  # one repeated, the last
    with pytest.raises(ValidationError) as refused:
        read_json(many, "body")
    assert refused.value.field == "k49999"
    with pytest.raises(ValidationError) as refused:
        read_json("{nope", "body")
    assert refused.value.field == "body" and "is not valid JSON" in refused.value.rule


def test_the_cli_reads_its_json_by_the_same_rule(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from ductape_jobs.cli.main import app

    store = f"sqlite:///{tmp_path / 'c.db'}"
    args = ["schedule", "--event", "e", "--env", "prd", "--product-tag", "p", "--store", store]
    result = CliRunner().invoke(app, [*args, "--input", '{"to": "a", "to": "b"}'])
    assert result.exit_code == 2 and "input.to: is given 2 times in one object" in result.output, result.output
