"""Pure timing: cron in a time zone across DST, fixed intervals, macros, limits, end dates and misfire planning."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest

from ductape_jobs import Ductape, ValidationError
from ductape_jobs.timing import (
    CronRecurrence,
    EveryRecurrence,
    Occurrences,
    OnceRecurrence,
    normalize_cron,
    plan_due,
    preview,
)
from ductape_jobs.timing.planning import Misfire, first_due
from ductape_jobs.timing.recurrence import PREVIEW_HORIZON, _changes

NY = "America/New_York"
LONDON = "Europe/London"
H = timedelta(hours=1)
MIN = timedelta(minutes=1)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[arg-type, misc]


def gaps(times: list[datetime]) -> set[timedelta]:
    return {b - a for a, b in pairwise(times)}


# ------------------------------------------------------------------------------------- cron across DST


def test_fixed_time_in_the_spring_gap_fires_once_right_after_it() -> None:
    # 2026-03-08 02:30 does not exist in New York (02:00 EST -> 03:00 EDT)
    times = preview(CronRecurrence("30 2 * * *", NY), utc(2026, 3, 6), 4)
    assert times == [
        utc(2026, 3, 6, 7, 30),  # 02:30 EST
        utc(2026, 3, 7, 7, 30),
        utc(2026, 3, 8, 7, 0),  # the gap: once, at 03:00 EDT
        utc(2026, 3, 9, 6, 30),  # 02:30 EDT
    ]


def test_fixed_time_repeated_by_fall_back_fires_once_the_first_time() -> None:
    # 2026-11-01 01:30 happens twice in New York (05:30 UTC as EDT, 06:30 UTC as EST)
    times = preview(CronRecurrence("30 1 * * *", NY), utc(2026, 10, 31), 4)
    assert times == [
        utc(2026, 10, 31, 5, 30),
        utc(2026, 11, 1, 5, 30),
        utc(2026, 11, 2, 6, 30),
        utc(2026, 11, 3, 6, 30),
    ]
    assert utc(2026, 11, 1, 6, 30) not in times


def test_london_fixed_times_across_both_transitions() -> None:
    # UK: spring forward 2026-03-29 01:00 UTC (01:00 GMT -> 02:00 BST), fall back 2026-10-25 01:00 UTC
    spring = preview(CronRecurrence("30 1 * * *", LONDON), utc(2026, 3, 28), 3)
    assert spring == [utc(2026, 3, 28, 1, 30), utc(2026, 3, 29, 1, 0), utc(2026, 3, 30, 0, 30)]
    autumn = preview(CronRecurrence("30 1 * * *", LONDON), utc(2026, 10, 24), 3)
    assert autumn == [utc(2026, 10, 24, 0, 30), utc(2026, 10, 25, 0, 30), utc(2026, 10, 26, 1, 30)]


@pytest.mark.parametrize(
    ("tz", "start"),
    [
        (NY, utc(2026, 3, 8, 3)),  # spring: 2026-03-08 07:00 UTC
        (NY, utc(2026, 11, 1, 2)),  # fall: 2026-11-01 06:00 UTC
        (LONDON, utc(2026, 3, 28, 20)),  # spring: 2026-03-29 01:00 UTC
        (LONDON, utc(2026, 10, 24, 20)),  # fall: 2026-10-25 01:00 UTC
    ],
)
def test_hourly_cron_fires_every_real_hour_across_dst(tz: str, start: datetime) -> None:
    times = preview(CronRecurrence("0 * * * *", tz), start, 12)
    assert len(times) == 12 and times[0] == start
    assert gaps(times) == {H}


@pytest.mark.parametrize(
    ("tz", "start"),
    [(NY, utc(2026, 3, 8, 6)), (NY, utc(2026, 11, 1, 4)), (LONDON, utc(2026, 3, 29)), (LONDON, utc(2026, 10, 25))],
)
def test_every_15_minutes_fires_every_real_quarter_hour_across_dst(tz: str, start: datetime) -> None:
    times = preview(CronRecurrence("*/15 * * * *", tz), start, 16)
    assert times[0] == start and times[-1] == start + 15 * 15 * MIN
    assert gaps(times) == {15 * MIN}


def test_lord_howe_half_hour_changes_miss_no_run() -> None:
    """Australia/Lord_Howe moves its clocks by 30 minutes: 2026-10-04 02:00+10:30 -> 02:30+11, 2026-04-05
    02:00+11 -> 01:30+10:30. Elapsed-time expressions fire at every local time that exists; a fixed time in the
    gap fires at its end."""
    spring = preview(CronRecurrence("40 * * * *", "Australia/Lord_Howe"), utc(2026, 10, 3, 14), 4)
    assert spring == [
        utc(2026, 10, 3, 14, 10),
        utc(2026, 10, 3, 15, 10),
        utc(2026, 10, 3, 15, 40),
        utc(2026, 10, 3, 16, 40),
    ]
    two_hourly = preview(CronRecurrence("0 */2 * * *", "Australia/Lord_Howe"), utc(2026, 4, 4, 12, 30), 3)
    assert two_hourly == [utc(2026, 4, 4, 13), utc(2026, 4, 4, 15, 30), utc(2026, 4, 4, 17, 30)]  # 00:00, 02:00, 04:00
    assert preview(CronRecurrence("15 2 * * *", "Australia/Lord_Howe"), utc(2026, 10, 3, 14), 1) == [
        utc(2026, 10, 3, 15, 30)  # 02:15 is skipped: at 02:30+11, the gap's end
    ]


def test_six_field_fixed_times_follow_the_same_dst_rules() -> None:
    gap = preview(CronRecurrence("0 30 2 * * *", NY), utc(2026, 3, 7, 12), 2)
    assert gap == [utc(2026, 3, 8, 7), utc(2026, 3, 9, 6, 30)]  # 03:00 EDT on the day of the gap
    repeated = preview(CronRecurrence("0 30 1 * * *", NY), utc(2026, 10, 31, 12), 2)
    assert repeated == [utc(2026, 11, 1, 5, 30), utc(2026, 11, 2, 6, 30)]  # 01:30 EDT once


def _field(spec: str, lo: int, hi: int) -> set[int]:
    values: set[int] = set()
    for part in spec.split(","):
        part, _, step = part.partition("/")
        first, _, last = part.partition("-")
        a, b = (lo, hi) if part == "*" else (int(first), int(last or (hi if step else first)))
        values.update(range(a, b + 1, int(step or 1)))
    return values


def _cronie(expr: str, tz: str, start: datetime, end: datetime) -> list[datetime]:
    """Debian cron's fire times in [start, end), minute by minute of real time: an expression with a star in its
    minute or hour field fires at every minute whose local time matches; another fires at a matching local time the
    first time it is lived, and once at the first minute after a gap for the matching local times the gap skipped."""
    minute, hour, day, month, weekday = expr.split()
    minutes, hours, days, months = _field(minute, 0, 59), _field(hour, 0, 23), _field(day, 1, 31), _field(month, 1, 12)
    weekdays = {d % 7 for d in _field(weekday, 0, 7)}
    both = day.startswith("*") or weekday.startswith("*")
    wild = minute.startswith("*") or hour.startswith("*")

    def matches(t: datetime) -> bool:
        if t.minute not in minutes or t.hour not in hours or t.month not in months:
            return False
        on_day, on_weekday = t.day in days, t.isoweekday() % 7 in weekdays
        return (on_day and on_weekday) if both else (on_day or on_weekday)

    zone, fires, u = ZoneInfo(tz), [], start
    lived = (u - MIN).astimezone(zone).replace(tzinfo=None)
    while u < end:
        local = u.astimezone(zone)
        wall = local.replace(tzinfo=None, fold=0)
        skipped = [lived + k * MIN for k in range(1, (wall - lived) // MIN)] if not wild else []
        if any(matches(t) for t in skipped) or (matches(wall) and (wild or local.fold == 0)):
            fires.append(u)
        lived, u = max(lived, wall), u + MIN
    return fires


_CHANGES = [
    (NY, utc(2026, 3, 8, 7)),
    (NY, utc(2026, 11, 1, 6)),
    (LONDON, utc(2026, 3, 29, 1)),
    (LONDON, utc(2026, 10, 25, 1)),
    ("Australia/Lord_Howe", utc(2026, 10, 3, 15, 30)),
    ("Australia/Lord_Howe", utc(2026, 4, 4, 15)),
    ("Antarctica/Troll", utc(2026, 3, 29, 1)),  # two hours at once
    ("Antarctica/Troll", utc(2026, 10, 25, 1)),
    ("America/Sao_Paulo", utc(2018, 11, 4, 3)),  # the gap at midnight
    ("America/Sao_Paulo", utc(2019, 2, 17, 2)),
]
_EXPRESSIONS = [
    "30 2 * * *", "15 2 * * *", "0,30 2 * * *", "30 1 * * *", "45 1 * * *", "0 0 * * *", "30 23 * * *",
    "0 * * * *", "30 * * * *", "40 * * * *", "*/15 * * * *", "0 */2 * * *", "*/20 1-3 * * *", "5 0-3 * * *",
]  # fmt: skip


@pytest.mark.parametrize(("tz", "change"), _CHANGES)
def test_cron_across_a_change_of_offset_is_debian_crons(tz: str, change: datetime) -> None:
    """Every expression, forwards (``preview``) and backwards (``last_at_or_before``, which the misfire rules read),
    against ``_cronie`` over the day around the change; a 6-field expression with seconds 0 as its 5-field form."""
    start, end = change - 14 * H, change + 14 * H
    for expr in _EXPRESSIONS:
        expected = _cronie(expr, tz, start, end)
        for text in (expr, f"0 {expr}"):
            recurrence = CronRecurrence(text, tz)
            assert [t for t in preview(recurrence, start, 200) if t < end] == expected, (text, tz)
            for k in range(0, 28 * 60, 7):
                at = start + k * MIN + timedelta(seconds=30)
                before = [t for t in expected if t <= at]
                assert recurrence.last_at_or_before(at) == (
                    before[-1] if before else recurrence.last_at_or_before(start)
                ), (text, tz, at)


def test_daily_cron_keeps_local_time_so_its_utc_gap_changes() -> None:
    times = preview(CronRecurrence("0 9 * * *", NY), utc(2026, 3, 7), 3)
    assert times == [utc(2026, 3, 7, 14), utc(2026, 3, 8, 13), utc(2026, 3, 9, 13)]  # 09:00 EST, then EDT
    assert [b - a for a, b in pairwise(times)] == [23 * H, 24 * H]
    autumn = preview(CronRecurrence("0 9 * * *", LONDON), utc(2026, 10, 24), 2)
    assert autumn[1] - autumn[0] == 25 * H


def test_every_is_absolute_time_across_dst() -> None:
    anchor = utc(2026, 3, 7, 14)  # 09:00 EST
    day = timedelta(milliseconds=86_400_000)
    times = preview(EveryRecurrence(day, anchor), anchor, 4)
    assert times == [anchor + i * day for i in range(4)]
    assert times[2] == utc(2026, 3, 9, 14)  # 10:00 EDT: every= does not follow the local clock
    hourly = preview(EveryRecurrence(H, utc(2026, 11, 1, 4)), utc(2026, 11, 1, 4), 6)
    assert gaps(hourly) == {H}


# -------------------------------------------------------------------------------------- cron syntax


def test_six_field_cron_has_a_leading_seconds_field() -> None:
    times = preview(CronRecurrence("*/20 * * * * *"), utc(2026, 3, 2, 12, 0, 1), 4)
    assert times == [
        utc(2026, 3, 2, 12, 0, 20),
        utc(2026, 3, 2, 12, 0, 40),
        utc(2026, 3, 2, 12, 1),
        utc(2026, 3, 2, 12, 1, 20),
    ]
    assert preview(CronRecurrence("30 0 9 * * *", NY), utc(2026, 3, 2), 1) == [utc(2026, 3, 2, 14, 0, 30)]


@pytest.mark.parametrize(
    ("macro", "first", "second"),
    [
        ("@hourly", utc(2026, 3, 2, 13), utc(2026, 3, 2, 14)),
        ("@daily", utc(2026, 3, 3), utc(2026, 3, 4)),
        ("@midnight", utc(2026, 3, 3), utc(2026, 3, 4)),
        ("@weekly", utc(2026, 3, 8), utc(2026, 3, 15)),  # Sundays
        ("@monthly", utc(2026, 4, 1), utc(2026, 5, 1)),
        ("@yearly", utc(2027, 1, 1), utc(2028, 1, 1)),
        ("@annually", utc(2027, 1, 1), utc(2028, 1, 1)),
        ("@HOURLY", utc(2026, 3, 2, 13), utc(2026, 3, 2, 14)),
    ],
)
def test_macros(macro: str, first: datetime, second: datetime) -> None:
    assert preview(CronRecurrence(macro), utc(2026, 3, 2, 12, 0, 1), 2) == [first, second]


def test_macro_in_a_time_zone_is_local_midnight() -> None:
    assert preview(CronRecurrence("@daily", NY), utc(2026, 3, 2, 12), 1) == [utc(2026, 3, 3, 5)]


@pytest.mark.parametrize(
    ("expr", "normal"),
    [
        ("0 9 * * *", "0 9 * * *"),
        ("  0\t9  * *   * ", "0 9 * * *"),
        ("@weekly", "0 0 * * 0"),
        ("@Yearly", "0 0 1 1 *"),
        ("*/5 * * * * *", "*/5 * * * * *"),
        ("0 9 * * MON-FRI", "0 9 * * MON-FRI"),
    ],
)
def test_normalize_cron(expr: str, normal: str) -> None:
    assert normalize_cron(expr) == normal


@pytest.mark.parametrize(
    ("expr", "rule"),
    [
        ("", "empty"),
        ("* * * *", "4 fields"),
        ("* * * * * * *", "7 fields"),
        ("60 * * * *", "invalid cron"),
        ("* 24 * * *", "invalid cron"),
        ("* * 32 * *", "invalid cron"),
        ("* * * 13 *", "invalid cron"),
        ("@every_minute", "unknown macro"),
        ("a b c d e", "invalid cron"),
    ],
)
def test_normalize_cron_rejects(expr: str, rule: str) -> None:
    with pytest.raises(ValueError, match=rule):
        normalize_cron(expr)


def test_unknown_time_zone_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown time zone"):
        CronRecurrence("0 9 * * *", "America/Atlantis")


# ------------------------------------------------------------------------------ recurrence boundaries


def test_cron_boundaries_are_inclusive_or_strict_as_named() -> None:
    r = CronRecurrence("0 * * * *")
    t = utc(2026, 3, 2, 12)
    assert r.first_at_or_after(t) == t
    assert r.next_after(t) == t + H
    assert r.last_at_or_before(t) == t
    assert r.last_at_or_before(t - timedelta(microseconds=1)) == t - H
    assert r.first_at_or_after(t + timedelta(microseconds=1)) == t + H
    assert r.first_at_or_after(t + timedelta(milliseconds=500)) == t + H
    assert r.next_after(t - timedelta(milliseconds=500)) == t
    assert r.last_at_or_before(t + timedelta(minutes=59, seconds=59)) == t


def test_cron_last_at_or_before_across_dst() -> None:
    r = CronRecurrence("30 2 * * *", NY)
    assert r.last_at_or_before(utc(2026, 3, 8, 12)) == utc(2026, 3, 8, 7)
    assert r.last_at_or_before(utc(2026, 3, 8, 6, 59)) == utc(2026, 3, 7, 7, 30)
    r = CronRecurrence("30 1 * * *", NY)
    assert r.last_at_or_before(utc(2026, 11, 1, 7)) == utc(2026, 11, 1, 5, 30)


def test_every_boundaries() -> None:
    anchor = utc(2026, 3, 2, 12)
    r = EveryRecurrence(timedelta(minutes=10), anchor)
    assert r.first_at_or_after(anchor - H) == anchor
    assert r.first_at_or_after(anchor) == anchor
    assert r.first_at_or_after(anchor + timedelta(minutes=10)) == anchor + timedelta(minutes=10)
    assert r.first_at_or_after(anchor + timedelta(minutes=10, microseconds=1)) == anchor + timedelta(minutes=20)
    assert r.next_after(anchor - H) == anchor
    assert r.next_after(anchor) == anchor + timedelta(minutes=10)
    assert r.next_after(anchor + timedelta(minutes=9)) == anchor + timedelta(minutes=10)
    assert r.last_at_or_before(anchor - timedelta(microseconds=1)) is None
    assert r.last_at_or_before(anchor) == anchor
    assert r.last_at_or_before(anchor + timedelta(minutes=29)) == anchor + timedelta(minutes=20)


@pytest.mark.parametrize("every", [timedelta(0), timedelta(seconds=-1)])
def test_every_must_be_positive(every: timedelta) -> None:
    with pytest.raises(ValueError, match="> 0"):
        EveryRecurrence(every, utc(2026, 3, 2))


def test_once() -> None:
    at = utc(2026, 3, 2, 12)
    r = OnceRecurrence(at)
    assert r.first_at_or_after(at - H) == at
    assert r.next_after(at - H) == at and r.next_after(at) is None
    assert r.last_at_or_before(at) == at and r.last_at_or_before(at - MIN) is None
    assert preview(r, at - H, 5) == [at]


# ---------------------------------------------------------------------------- limits and end dates


def test_preview_stops_at_count_and_end_date() -> None:
    r = CronRecurrence("0 9 * * *", NY)
    start = utc(2026, 3, 2)
    assert len(preview(r, start, 7)) == 7
    end = utc(2026, 3, 5, 14)  # exactly the 4th occurrence: included
    assert preview(r, start, 100, end) == [utc(2026, 3, d, 14) for d in (2, 3, 4, 5)]
    assert preview(r, start, 100, end - timedelta(microseconds=1)) == [utc(2026, 3, d, 14) for d in (2, 3, 4)]
    assert preview(r, start, 100, start) == []


def test_a_preview_looks_a_century_ahead_at_most() -> None:
    """A security probe: a rare cron previewed 10,000 times read every year's offsets up to 9000-01-01 (8-10 s of
    CPU, a zone at a time, for any reader of the API). Now the work is a century's, whatever the count."""
    start = utc(2026, 3, 2)
    _changes.cache_clear()
    leap_days = preview(CronRecurrence("0 0 29 2 *", NY), start, 10_000)
    assert leap_days[0] == utc(2028, 2, 29, 5) and len(leap_days) == 24  # 2028 to 2124 (2100 is no leap year)
    assert leap_days[-1] <= start + PREVIEW_HORIZON < leap_days[-1] + timedelta(days=4 * 366)
    assert _changes.cache_info().misses <= 110  # a century of years read (about 7,000 before)
    yearly = preview(CronRecurrence("0 0 1 1 *", LONDON), start, 10_000)
    assert len(yearly) == 100 and yearly[-1] == utc(2126, 1, 1)
    late = utc(8990, 1, 1)  # near the end of time: the horizon stops there
    assert preview(CronRecurrence("0 0 1 1 *", "UTC"), late, 100) == [utc(y, 1, 1) for y in range(8990, 9001)]


def test_first_due_respects_limit_and_end_date() -> None:
    r = EveryRecurrence(H, utc(2026, 3, 2, 12))
    start = utc(2026, 3, 2, 12, 30)
    assert first_due(r, start, Occurrences(None)) == utc(2026, 3, 2, 13)
    assert first_due(r, start, Occurrences(None, 0, limit=1)) == utc(2026, 3, 2, 13)
    assert first_due(r, start, Occurrences(None, 3, limit=3)) is None  # limit used up
    assert first_due(r, start, Occurrences(None, 0, end_date=utc(2026, 3, 2, 13))) == utc(2026, 3, 2, 13)
    assert first_due(r, start, Occurrences(None, 0, end_date=utc(2026, 3, 2, 12, 59))) is None


# ------------------------------------------------------------------------------------------ plan_due

T0 = utc(2026, 3, 2, 12)
EVERY_MIN = EveryRecurrence(MIN, T0)


def test_plan_nothing_due_yet() -> None:
    plan = plan_due(EVERY_MIN, Occurrences(T0 + MIN), T0)
    assert plan.due == [] and plan.next_due == T0 + MIN and not plan.finished and not plan.misfired


def test_plan_finished_schedule() -> None:
    plan = plan_due(EVERY_MIN, Occurrences(None), T0)
    assert plan.finished and plan.due == []


def test_plan_on_time_runs_and_moves_on() -> None:
    plan = plan_due(EVERY_MIN, Occurrences(T0), T0)
    assert plan.due == [T0] and plan.next_due == T0 + MIN and not plan.misfired and not plan.finished


@pytest.mark.parametrize("misfire", list(Misfire))
def test_plan_within_grace_is_not_a_misfire(misfire: Misfire) -> None:
    now = T0 + timedelta(milliseconds=900)
    plan = plan_due(EVERY_MIN, Occurrences(T0), now, misfire=misfire, grace=timedelta(seconds=1))
    assert plan.due == [T0] and plan.next_due == T0 + MIN and not plan.misfired


def test_plan_run_once_coalesces_missed_into_the_latest() -> None:
    now = T0 + timedelta(minutes=10, seconds=30)  # T0 .. T0+10m missed
    plan = plan_due(EVERY_MIN, Occurrences(T0), now, misfire=Misfire.RUN_ONCE)
    assert plan.due == [T0 + 10 * MIN]
    assert plan.next_due == T0 + 11 * MIN and plan.next_due > now
    assert plan.misfired and not plan.finished


def test_plan_skip_creates_none_and_moves_past_now() -> None:
    now = T0 + timedelta(minutes=10, seconds=30)
    plan = plan_due(EVERY_MIN, Occurrences(T0), now, misfire=Misfire.SKIP)
    assert plan.due == []
    assert plan.next_due == T0 + 11 * MIN and plan.next_due > now
    assert plan.misfired and not plan.finished


def test_plan_skip_still_runs_the_latest_if_it_is_on_time() -> None:
    now = T0 + timedelta(minutes=10, milliseconds=500)  # T0+10m is within grace; the earlier ones are missed
    plan = plan_due(EVERY_MIN, Occurrences(T0), now, misfire=Misfire.SKIP)
    assert plan.due == [T0 + 10 * MIN] and plan.next_due == T0 + 11 * MIN


@pytest.mark.parametrize("misfire", [Misfire.RUN_ONCE, Misfire.SKIP])
def test_plan_until_adds_the_occurrences_within_its_reach_to_those_due_now(misfire: Misfire) -> None:
    """A tick ahead (``until``) misses nothing it would not miss at ``now``: the occurrence within grace runs (the
    missed ones coalesce into it) and the next, due before ``until``, runs too."""
    now = T0 + timedelta(minutes=10, seconds=59, milliseconds=990)  # T0+10m is missed; T0+11m due in 10 ms
    assert plan_due(EVERY_MIN, Occurrences(T0), now, misfire=misfire).due == (
        [T0 + 10 * MIN] if misfire is Misfire.RUN_ONCE else []
    )
    plan = plan_due(EVERY_MIN, Occurrences(T0), now, misfire=misfire, until=now + timedelta(milliseconds=20))
    assert plan.due == ([T0 + 10 * MIN] if misfire is Misfire.RUN_ONCE else []) + [T0 + 11 * MIN]
    assert plan.next_due == T0 + 12 * MIN and plan.misfired
    on_time = T0 + timedelta(minutes=10, milliseconds=990)  # T0+10m within grace: it runs under either policy
    plan = plan_due(EVERY_MIN, Occurrences(T0), on_time, misfire=misfire, until=T0 + 11 * MIN)
    assert plan.due == [T0 + 10 * MIN, T0 + 11 * MIN] and plan.misfired  # (T0 to T0+9m were missed)


@pytest.mark.parametrize("misfire", [Misfire.RUN_ONCE, Misfire.SKIP])
def test_occurrences_reached_within_the_grace_each_run_after_the_missed_ones(misfire: Misfire) -> None:
    """An ``every`` shorter than the grace, the engine back after 5 s: the occurrences due in the last second were
    reached within the grace, so none is missed and each runs; those before it coalesce into the first of them
    (``run_once``) or are skipped. Every occurrence up to the engine's return was merged into one run at 5 s
    (``run_once``), or only that one ran (``skip``)."""
    every = EveryRecurrence(timedelta(milliseconds=200), T0)
    plan = plan_due(every, Occurrences(T0 + timedelta(milliseconds=200)), T0 + timedelta(seconds=5), misfire=misfire)
    on_time = [T0 + timedelta(milliseconds=ms) for ms in range(4000, 5001, 200)]  # 4.0 s is reached 1 s late: not more
    assert plan.due == on_time and plan.misfired
    assert plan.next_due == T0 + timedelta(milliseconds=5200)


def test_missed_occurrences_coalesce_into_one_reached_within_the_grace_or_else_run_as_the_latest() -> None:
    """A daily job down three days, back just after an occurrence: one run (that occurrence's), not a second for
    the missed ones before it; back later in the day: one run, for the latest missed."""
    daily = CronRecurrence("0 0 * * *", "UTC")
    occ = Occurrences(T0.replace(hour=0, minute=0) + timedelta(days=1))
    back = occ.next_due + timedelta(days=3, milliseconds=500)  # the 4th day's occurrence was reached 0.5 s late
    assert plan_due(daily, occ, back).due == [occ.next_due + timedelta(days=3)]
    later = occ.next_due + timedelta(days=3, hours=5)
    assert plan_due(daily, occ, later).due == [occ.next_due + timedelta(days=3)]
    assert plan_due(daily, occ, later, misfire=Misfire.SKIP).due == []


def test_plan_until_judges_a_misfire_at_now() -> None:
    """An occurrence due before ``until`` but within grace of ``now`` is on time, however far ``until`` reaches."""
    now = T0 - timedelta(milliseconds=10)
    plan = plan_due(EVERY_MIN, Occurrences(T0), now, misfire=Misfire.SKIP, grace=timedelta(0), until=T0 + 3 * MIN)
    assert plan.due == [T0, T0 + MIN, T0 + 2 * MIN, T0 + 3 * MIN] and not plan.misfired


def test_plan_run_all_creates_every_missed_occurrence() -> None:
    now = T0 + timedelta(minutes=10, seconds=30)
    plan = plan_due(EVERY_MIN, Occurrences(T0), now, misfire=Misfire.RUN_ALL)
    assert plan.due == [T0 + i * MIN for i in range(11)]
    assert plan.next_due == T0 + 11 * MIN and not plan.finished
    assert plan.misfired  # reported, though every occurrence still runs


def test_plan_run_all_is_capped_by_max_runs_and_resumes() -> None:
    now = T0 + timedelta(minutes=10, seconds=30)
    occ = Occurrences(T0)
    seen: list[datetime] = []
    for _ in range(4):
        plan = plan_due(EVERY_MIN, occ, now, misfire=Misfire.RUN_ALL, max_runs=4)
        assert len(plan.due) <= 4
        seen += plan.due
        occ = Occurrences(plan.next_due, occ.runs_so_far + len(plan.due))
    assert seen == [T0 + i * MIN for i in range(11)]  # 4 + 4 + 3, each once, in order
    assert occ.next_due == T0 + 11 * MIN and occ.runs_so_far == 11


def test_plan_run_all_across_spring_forward_counts_real_hours() -> None:
    r = CronRecurrence("0 * * * *", NY)
    start = utc(2026, 3, 8, 5)  # 00:00 EST; the gap is 07:00 UTC
    plan = plan_due(r, Occurrences(start), utc(2026, 3, 8, 9, 30), misfire=Misfire.RUN_ALL)
    assert plan.due == [utc(2026, 3, 8, h) for h in range(5, 10)]


def test_plan_limit_counts_runs_not_occurrences() -> None:
    now = T0 + timedelta(minutes=10, seconds=30)
    once = plan_due(EVERY_MIN, Occurrences(T0, 0, limit=3), now, misfire=Misfire.RUN_ONCE)
    assert len(once.due) == 1 and once.next_due == T0 + 11 * MIN and not once.finished
    skip = plan_due(EVERY_MIN, Occurrences(T0, 0, limit=1), now, misfire=Misfire.SKIP)
    assert skip.due == [] and skip.next_due == T0 + 11 * MIN and not skip.finished  # skipping uses none up
    last = plan_due(EVERY_MIN, Occurrences(T0, 2, limit=3), now, misfire=Misfire.RUN_ONCE)
    assert len(last.due) == 1 and last.next_due is None and last.finished
    run_all = plan_due(EVERY_MIN, Occurrences(T0, 0, limit=3), now, misfire=Misfire.RUN_ALL)
    assert run_all.due == [T0, T0 + MIN, T0 + 2 * MIN] and run_all.finished and run_all.next_due is None
    on_time = plan_due(EVERY_MIN, Occurrences(T0, 0, limit=1), T0)
    assert on_time.due == [T0] and on_time.finished


def test_plan_end_date_stops_runs() -> None:
    end = T0 + timedelta(minutes=5, seconds=30)
    now = T0 + 10 * MIN
    run_all = plan_due(EVERY_MIN, Occurrences(T0, end_date=end), now, misfire=Misfire.RUN_ALL)
    assert run_all.due == [T0 + i * MIN for i in range(6)] and run_all.finished and run_all.next_due is None
    once = plan_due(EVERY_MIN, Occurrences(T0, end_date=end), now, misfire=Misfire.RUN_ONCE)
    assert once.due == [T0 + 5 * MIN] and once.finished
    skip = plan_due(EVERY_MIN, Occurrences(T0, end_date=end), now, misfire=Misfire.SKIP)
    assert skip.due == [] and skip.finished
    after = plan_due(EVERY_MIN, Occurrences(T0 + 6 * MIN, end_date=end), now)
    assert after.due == [] and after.finished
    exact = plan_due(EVERY_MIN, Occurrences(T0, end_date=T0 + MIN), T0 + MIN, misfire=Misfire.RUN_ALL)
    assert exact.due == [T0, T0 + MIN] and exact.finished  # an occurrence at the end date itself runs


def test_plan_once_recurrence() -> None:
    plan = plan_due(OnceRecurrence(T0), Occurrences(T0), T0 + H)
    assert plan.due == [T0] and plan.finished and plan.next_due is None


def test_plan_cron_run_once_after_downtime_across_fall_back() -> None:
    r = CronRecurrence("30 1 * * *", NY)
    plan = plan_due(r, Occurrences(utc(2026, 10, 30, 5, 30)), utc(2026, 11, 1, 12))
    assert plan.due == [utc(2026, 11, 1, 5, 30)] and plan.next_due == utc(2026, 11, 2, 6, 30)


# ----------------------------------------------------------------------------------------- via the API


def test_api_preview_london(dt: Ductape) -> None:
    times = dt.job.preview({"cron": "30 2 * * *", "tz": LONDON}, start=utc(2026, 3, 27), count=10)
    assert len(times) == 10 and all(t.tzinfo is not None for t in times)
    # 02:30 GMT, then 02:30 BST = 01:30 UTC from Sunday 29 March
    assert times[:4] == [
        utc(2026, 3, 27, 2, 30),
        utc(2026, 3, 28, 2, 30),
        utc(2026, 3, 29, 1, 30),
        utc(2026, 3, 30, 1, 30),
    ]
    assert [b - a for a, b in pairwise(times)] == [24 * H, 23 * H] + [24 * H] * 7


def test_api_preview_defaults_to_now_and_takes_start_forms(dt: Ductape) -> None:
    hourly = dt.job.preview({"cron": "@hourly"}, count=3)
    assert hourly == [utc(2026, 3, 2, 12), utc(2026, 3, 2, 13), utc(2026, 3, 2, 14)]  # the fake clock's now
    assert dt.job.preview({"cron": "@hourly"}, start="2026-03-02T13:00:00Z", count=1) == [utc(2026, 3, 2, 13)]
    assert dt.job.preview({"cron": "@hourly"}, start=1772456400, count=1) == [utc(2026, 3, 2, 13)]


@pytest.mark.parametrize("count", ["5", None, 5.5, True])
def test_api_preview_count_must_be_a_whole_number(dt: Ductape, count: object) -> None:
    with pytest.raises(ValidationError) as refused:
        dt.job.preview({"every": 60_000}, count=count)  # type: ignore[arg-type]
    assert refused.value.field == "count" and "whole number" in refused.value.rule


def test_api_preview_limit_and_end_date(dt: Ductape) -> None:
    assert len(dt.job.preview({"every": 60_000, "limit": 3}, count=10)) == 3
    until = dt.job.preview({"every": 60_000, "endDate": "2026-03-02T12:05:00Z"}, count=100)
    assert until == [utc(2026, 3, 2, 12, m) for m in range(6)]


def test_api_preview_refuses_an_end_date_before_its_start_as_schedule_does(dt: Ductape) -> None:
    """A security probe: it answered no times where ``schedule()`` refuses the same ``repeat``."""
    repeat = {"cron": "@hourly", "endDate": "2026-03-01T00:00:00Z"}
    with pytest.raises(ValidationError) as refused:
        dt.job.preview(repeat, count=3)
    assert (refused.value.field, refused.value.rule) == (
        "repeat.endDate",
        "2026-03-01T00:00:00+00:00 is before the start 2026-03-02T12:00:00+00:00",
    )
    assert dt.job.preview({**repeat, "endDate": "2026-03-02T12:00:00Z"}, count=3) == [utc(2026, 3, 2, 12)]


def test_api_preview_every_across_dst(dt: Ductape) -> None:
    times = dt.job.preview({"every": 3_600_000}, start=utc(2026, 3, 8, 5), count=6)
    assert gaps(times) == {H}  # absolute time: a DST change does not move it
    with pytest.raises(ValidationError) as caught:  # so a zone would mean nothing: it is refused, not ignored
        dt.job.preview({"every": 3_600_000, "tz": NY}, start=utc(2026, 3, 8, 5), count=6)
    assert caught.value.field == "repeat.tz"


def test_a_late_one_off_still_runs_whatever_its_misfire_policy() -> None:
    """A scheduling probe: a one-off with ``misfire: "skip"`` reached past its grace (a worker down, a pause over its
    time) was dropped, its schedule completed with no run, nothing failed and nothing counted, where the docs say a
    late one-off still runs. ``skip`` skips to a later occurrence, and a one-off has none."""
    from ductape_jobs.testing import Sandbox

    for misfire in ("skip", "run_once", "run_all"):
        dt = Sandbox(start=datetime(2026, 1, 1, tzinfo=UTC))
        dt.function("f")(lambda input, ctx: None)
        dt.job.create({"name": "f", "tag": "f", "event_type": "FUNCTION", "event_tag": "f"})
        late = {"env": "dev", "product_tag": "p", "event": "f", "start_at": "2026-01-01T01:00:00Z", "misfire": misfire}
        job_id = dt.job.schedule(late).job_id
        paused = dt.job.schedule(late).job_id
        dt.job.pause(paused)
        dt.clock.set(datetime(2026, 1, 1, 1, 0, 2, tzinfo=UTC))  # 2 s late; the grace is 1 s
        dt.drain()
        dt.job.resume(paused)  # its time fell in the pause: at once, as a late one-off
        dt.drain()
        for made in (job_id, paused):
            (run,) = dt.job.runs(job_id=made)
            assert (run.phase.value, run.scheduled_at) == ("completed", datetime(2026, 1, 1, 1, tzinfo=UTC)), misfire
        dt.close()
