"""A schedule named by a ``key``: one per product and env, made once. The migration recipes run their "ensure the
schedules" step at every deploy; checking a listing first and then scheduling doubled every schedule (and so every
run) when two nodes deployed at once (a newcomer's probe: 4 of 4 tries on PostgreSQL, 3 of 3 on SQLite). With a key,
the store's unique constraint decides: every caller is answered the one schedule made, on SQLite and on PostgreSQL,
whichever process wins."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from ductape_jobs import Ductape, FakeClock, NotFoundError, ValidationError
from ductape_jobs.models import RunPhase

JOB = {"name": "Digest", "tag": "digest", "event_type": "FUNCTION", "event_tag": "digest"}
DIGEST = {"env": "prd", "product_tag": "shop", "event": "digest"}


def test_a_key_makes_one_schedule_and_answers_it_again(dt: Ductape) -> None:
    dt.job.create(JOB)
    first = dt.job.schedule({**DIGEST, "key": "weekday-digest", "repeat": {"cron": "0 9 * * 1-5"}, "input": {"n": 1}})
    again = dt.job.schedule({**DIGEST, "key": "weekday-digest", "repeat": {"every": 60_000}, "input": {"n": 2}})
    assert again == first  # the first one, as it was made: the second request changed nothing
    (made,) = dt.job.list()
    assert (made.id, made.key, made.cron, made.input) == (first.job_id, "weekday-digest", "0 9 * * 1-5", {"n": 1})

    other = dt.job.schedule({**DIGEST, "product_tag": "blog", "key": "weekday-digest", "repeat": {"every": 60_000}})
    unkeyed = dt.job.schedule({**DIGEST, "repeat": {"every": 60_000}})
    assert len({first.job_id, other.job_id, unkeyed.job_id}) == 3  # a key is its product's; none: a new one each
    assert dt.job.get(unkeyed.job_id).key is None


def test_a_keyed_one_off_runs_once_however_often_it_is_asked(dt: Ductape) -> None:
    dt.job.create(JOB)
    answers = {dt.job.schedule({**DIGEST, "key": "welcome-7", "start_at": 0}).job_id for _ in range(3)}
    assert len(answers) == 1
    assert [r.phase for r in dt.job.runs()] == [RunPhase.QUEUED]


def test_a_product_tag_holding_a_colon_keeps_its_keys_apart(dt: Ductape) -> None:
    """``a`` + ``b:c`` and ``a:b`` + ``c`` are two keys (both tags may hold ``:``)."""
    dt.job.create(JOB)
    one = dt.job.schedule({**DIGEST, "product_tag": "a", "key": "b:c", "repeat": {"every": 60_000}})
    two = dt.job.schedule({**DIGEST, "product_tag": "a:b", "key": "c", "repeat": {"every": 60_000}})
    assert one.job_id != two.job_id
    assert {(s.product_tag, s.key) for s in dt.job.list()} == {("a", "b:c"), ("a:b", "c")}


def test_a_bad_request_is_refused_even_under_a_key_already_made(dt: Ductape) -> None:
    dt.job.create(JOB)
    dt.job.schedule({**DIGEST, "key": "k", "repeat": {"every": 60_000}})
    with pytest.raises(ValidationError) as bad:
        dt.job.schedule({**DIGEST, "key": "k", "repeat": {"every": 0}})
    assert bad.value.field == "repeat.every"


@pytest.mark.parametrize("key", ["", "two words", "-leading", "x" * 129, 7, "line\nbreak"])
def test_a_key_is_a_tag(dt: Ductape, key: Any) -> None:
    dt.job.create(JOB)
    with pytest.raises(ValidationError) as bad:
        dt.job.schedule({**DIGEST, "key": key, "start_at": 0})
    assert bad.value.field == "key"
    assert dt.job.list() == []


def test_schedule_many_takes_no_key_and_writes_nothing(dt: Ductape) -> None:
    dt.job.create(JOB)
    with pytest.raises(ValidationError) as bad:
        dt.job.schedule_many([{**DIGEST, "start_at": 0}, {**DIGEST, "key": "k", "start_at": 0}])
    assert bad.value.field == "[1].key"
    assert bad.value.rule == "is taken by schedule(), one request at a time, not schedule_many"
    assert dt.job.list() == []


def test_a_product_bound_client_keys_its_own_schedules(dt: Ductape) -> None:
    dt.job.create(JOB)
    shop = dt.product("shop").jobs
    first = shop.schedule({"env": "prd", "event": "digest", "key": "k", "repeat": {"every": 60_000}})
    assert shop.schedule({"env": "prd", "event": "digest", "key": "k", "start_at": 0}) == first
    assert dt.job.get(first.job_id).product_tag == "shop"


# ---------------------------------------------------------------------------------- several nodes at once

RACER = textwrap.dedent(
    """
    import json, sys, time
    from ductape_jobs import Ductape

    store, start = sys.argv[1], float(sys.argv[2])
    dt = Ductape(store)
    time.sleep(max(0.0, start - time.time()))
    answer = dt.job.schedule({"env": "prd", "product_tag": "shop", "event": "digest", "key": "weekday-digest",
                              "repeat": {"cron": "0 9 * * 1-5", "tz": "Europe/London"}})
    print(json.dumps(answer.job_id))
    dt.close()
    """
)


@pytest.mark.slow
def test_processes_racing_one_key_make_one_schedule(store_url: str, tmp_path: Path) -> None:
    """Four processes, started together, each schedule the same keyed request at the same instant (a deploy on four
    nodes): one schedule is made, and every process is answered its id."""
    with Ductape(store_url) as dt:
        dt.job.create(JOB)
    script = tmp_path / "racer.py"
    script.write_text(RACER)
    start = time.time() + 2.0  # every process has opened the store by then
    racers = [
        subprocess.Popen([sys.executable, str(script), store_url, str(start)], stdout=subprocess.PIPE, text=True)
        for _ in range(4)
    ]
    answers = [json.loads(p.communicate(timeout=60)[0].strip().splitlines()[-1]) for p in racers]
    assert all(p.returncode == 0 for p in racers)
    with Ductape(store_url) as dt:
        made = dt.job.list(limit=1000)
    assert [s.key for s in made] == ["weekday-digest"]
    assert set(answers) == {made[0].id}


def test_a_key_is_its_envs_too(dt: Ductape) -> None:
    """Staging and production in one store, deploying the same schedules: each env has its own (a review: prd was
    answered stg's schedule, and an API key limited to one env could see and block another env's)."""
    dt.job.create(JOB)
    stg = dt.job.schedule({**DIGEST, "env": "stg", "key": "nightly", "start_at": "2030-01-01T00:00:00Z"})
    prd = dt.job.schedule({**DIGEST, "env": "prd", "key": "nightly", "repeat": {"cron": "0 2 * * *"}})
    assert stg.job_id != prd.job_id
    assert {(s.env, s.key, s.cron) for s in dt.job.list()} == {
        ("stg", "nightly", None),
        ("prd", "nightly", "0 2 * * *"),
    }


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"event": "nosuchjob"}, "event"),
        ({"session": "user:not.a.jwt"}, "session"),
        ({"repeat": {"every": 0}}, "repeat.every"),
    ],
)
def test_a_request_under_a_key_made_is_checked_as_if_it_made_one(
    dt: Ductape, change: dict[str, Any], field: str
) -> None:
    """Its job, its product's rules and its session, not its fields alone (a review: a bad session or an unknown
    event was answered the schedule made)."""
    dt.job.create(JOB)
    dt.job.schedule({**DIGEST, "key": "k", "repeat": {"every": 60_000}})
    with pytest.raises(ValidationError) as bad:
        dt.job.schedule({**DIGEST, "key": "k", "repeat": {"every": 60_000}, **change})
    assert bad.value.field.startswith(field)


def test_a_cancelled_keyed_schedule_is_answered_cancelled(dt: Ductape) -> None:
    dt.job.create(JOB)
    made = dt.job.schedule({**DIGEST, "key": "k", "repeat": {"every": 60_000}})
    dt.job.cancel(made.job_id)
    again = dt.job.schedule({**DIGEST, "key": "k", "repeat": {"every": 60_000}})
    assert (again.job_id, again.status, again.next_run_at) == (made.job_id, RunPhase.CANCELLED, None)  # said scheduled


def test_retention_keeps_a_keyed_schedule_so_its_key_stays_taken(store_url: str, clock: FakeClock) -> None:
    """Its runs are pruned, not the schedule: pruned, the next deploy made it again and its run ran twice (a
    review). On SQLite and on PostgreSQL."""
    with Ductape(store_url, clock=clock) as dt:
        _retention_keeps_a_keyed_schedule(dt, clock)


def _retention_keeps_a_keyed_schedule(dt: Ductape, clock: FakeClock) -> None:
    ran: list[int] = []

    @dt.function("digest")
    def digest(input: dict[str, Any], ctx: Any) -> None:
        ran.append(1)

    dt.job.create(JOB)
    keyed = dt.job.schedule({**DIGEST, "key": "welcome", "start_at": 0})
    plain = dt.job.schedule({**DIGEST, "start_at": 0})
    assert dt.drain().completed == 2
    clock.advance(timedelta(days=400))
    pruned = dt.prune()
    assert (pruned.runs, pruned.schedules) == (2, 1)  # the keyed schedule's run too; the plain schedule only
    assert [s.id for s in dt.job.list()] == [keyed.job_id]
    with pytest.raises(NotFoundError):
        dt.job.get(plain.job_id)
    assert dt.job.schedule({**DIGEST, "key": "welcome", "start_at": 0}).job_id == keyed.job_id
    assert dt.drain().completed == 0 and len(ran) == 2


def test_a_keyed_schedule_whose_end_date_passed_is_still_answered(dt: Ductape, clock: FakeClock) -> None:
    """The request is checked, not planned again: a deploy after a promotion's end date failed with ``endDate is
    before the start`` (a review), though its schedule was there."""
    dt.job.create(JOB)
    promo = {**DIGEST, "key": "january-promo", "repeat": {"cron": "0 9 * * *", "endDate": "2026-03-31"}}
    made = dt.job.schedule(promo)
    clock.advance(timedelta(days=45))
    assert dt.job.schedule(promo).job_id == made.job_id


def test_a_keyed_request_is_admitted_once(dt: Ductape) -> None:
    """Made or answered, a keyed request is admitted (its product's rules, its session verified) once: a new one was
    checked twice (a review: its session verified twice, at 1.85 times the cost)."""
    from unittest import mock

    from ductape_jobs import job_scheduling

    dt.job.create(JOB)
    with mock.patch.object(job_scheduling, "admit", wraps=job_scheduling.admit) as admitted:
        made = dt.job.schedule({**DIGEST, "key": "k", "repeat": {"every": 60_000}})
        assert admitted.call_count == 1
        assert dt.job.schedule({**DIGEST, "key": "k", "repeat": {"every": 60_000}}) == made
        assert admitted.call_count == 2
