"""Bad input never corrupts and never crashes, whatever it is: hypothesis throws arbitrary JSON-like values
(and near-miss requests built from the valid ones) at ``job.schedule``, ``job.create``, ``job.preview`` and
``feature.run``. Each call either succeeds or raises ``ValidationError`` naming a field, and after an error
the store holds exactly what it held before."""

from __future__ import annotations

import enum
import json
import os
import tempfile
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from ductape_jobs import ConflictError, Ductape, NotFoundError, ValidationError
from ductape_jobs.limits import check_json

EXAMPLES = int(os.environ.get("DUCTAPE_PROPERTY_EXAMPLES", "150"))
PROPERTIES = settings(max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])

scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
numbers = st.integers(min_value=-(2**70), max_value=2**70) | st.floats() | st.sampled_from([0, -1, 10**23, 3e14])
json_like = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)
texts = st.text(max_size=40) | st.sampled_from(
    ["$Secret{signing}", "$Input{x}", "$Session{user}{id}", "$Now", "$Concat(", "*/5 * * * *", "60 * * * *",
     "Europe/Paris", "Mars/Olympus", "9999-12-31", "2026-03-29T02:30:00", "echo", "shop", "dev"]
)  # fmt: skip
values = json_like | numbers | texts


def near_miss(valid: dict[str, Any], extra_keys: list[str]) -> st.SearchStrategy[Any]:
    """Valid requests with fields replaced, removed or added: most of them reach past the first check."""
    keys = sorted({*valid, *extra_keys})
    changes = st.dictionaries(st.sampled_from(keys), values | st.just(None), max_size=4)
    drops = st.sets(st.sampled_from(sorted(valid)), max_size=2)
    return (
        st.builds(
            lambda changed, dropped: {**{k: v for k, v in valid.items() if k not in dropped}, **changed}, changes, drops
        )
        | json_like
    )


@pytest.fixture(scope="module")
def dt() -> Iterator[Ductape]:
    d = Ductape(f"sqlite:///{tempfile.mkdtemp(prefix='ductape-props-')}/jobs.db")
    d.products.add(
        {"tag": "shop", "envs": {"dev": {"secrets": {"signing": "sig-0123456789"}}},
         "features": {"greet": {"input": {"name": "string"}, "required": ["name"], "sequence": [
             {"sequence_tag": "a", "events": [
                 {"type": "FUNCTION", "event": "echo", "input": {"n": "$Input{name}"}}]}]}}}
    )  # fmt: skip
    d.function("echo")(lambda input, ctx: input)
    d.job.create({"name": "Echo", "tag": "echo", "event_type": "FUNCTION", "event_tag": "echo"})
    yield d
    d.close()


def snapshot(dt: Ductape) -> tuple[Any, ...]:
    return (
        [(j.tag, j.name, j.event_type, j.event_tag, j.executions, j.intervals) for j in dt.job.fetch_all()],
        [(s.id, s.status, s.next_run_at) for s in dt.job.list(limit=10_000)],
        [(r.id, r.phase) for r in dt.job.runs(limit=10_000)],
        [(r.id, r.status) for r in dt.feature.runs(limit=10_000)],
    )


def attempt(dt: Ductape, call: Any) -> None:
    """Bad input is a ValidationError naming the field; a clash with what is stored (a tag taken) a
    ConflictError; an unknown tag a NotFoundError. After any of them the store is as it was."""
    before = snapshot(dt)
    try:
        call()
    except ValidationError as exc:
        assert exc.field and exc.rule and str(exc).startswith(exc.field), exc
        assert snapshot(dt) == before, f"{exc} but the store changed"
    except (ConflictError, NotFoundError) as exc:
        assert str(exc)
        assert snapshot(dt) == before, f"{exc} but the store changed"


SCHEDULE = {"env": "dev", "product_tag": "shop", "event": "echo", "input": {"a": 1}, "retries": 1,
            "start_at": 0, "repeat": {"every": 60_000, "limit": 3, "tz": "UTC"}}  # fmt: skip
SCHEDULE_KEYS = ["session", "timeout", "misfire", "overlap", "app", "cache", "pause_on_failure", "bogus"]
REPEATS = {"cron": "0 9 * * *", "tz": "Europe/Paris", "limit": 5, "endDate": "2030-01-01T00:00:00Z"}


@given(request=near_miss(SCHEDULE, SCHEDULE_KEYS), repeat=near_miss(REPEATS, ["every", "end_date"]))
@PROPERTIES
def test_schedule_takes_anything_and_only_validates(dt: Ductape, request: Any, repeat: Any) -> None:
    attempt(dt, lambda: dt.job.schedule(request))
    if isinstance(request, dict):
        attempt(dt, lambda: dt.job.schedule({**request, "repeat": repeat}))
        attempt(dt, lambda: dt.job.schedule_many([SCHEDULE, request]))


JOB = {"name": "Job", "tag": "job-a", "event_type": "FUNCTION", "event_tag": "echo", "executions": 2, "intervals": 1000}


@given(job=near_miss(JOB, ["start_at", "bogus"]), changes=near_miss({"name": "New"}, ["intervals", "tag", "bogus"]))
@PROPERTIES
def test_job_create_and_update_take_anything_and_only_validate(dt: Ductape, job: Any, changes: Any) -> None:
    attempt(dt, lambda: dt.job.create(job))
    attempt(dt, lambda: dt.job.update("echo", changes))


@given(repeat=near_miss(REPEATS, ["every"]), start=values, count=numbers)
@PROPERTIES
def test_preview_takes_anything_and_only_validates(dt: Ductape, repeat: Any, start: Any, count: Any) -> None:
    attempt(dt, lambda: dt.job.preview(repeat, start=start, count=count if isinstance(count, int) else 10))


@given(tag=texts, env=texts, product=texts, data=json_like)
@PROPERTIES
def test_feature_run_takes_anything_and_only_validates(
    dt: Ductape, tag: str, env: str, product: str, data: Any
) -> None:
    attempt(dt, lambda: dt.feature.run(tag, env=env, product_tag=product, input=data))
    attempt(dt, lambda: dt.feature.run("greet", env="dev", product_tag="shop", input=data))


def test_a_nul_character_in_a_text_is_refused_by_name_before_any_write(dt: Ductape) -> None:
    """PostgreSQL's text cannot hold NUL (SQLite's can): both stores refuse it at the door, the same way."""
    dt.job.create({"name": "Sync", "tag": "nul-sync", "event_type": "FUNCTION", "event_tag": "fn"})
    before = len(dt.job.list())
    for field in ("env", "product_tag"):
        request = {"env": "prd", "product_tag": "shop", "event": "nul-sync", field: "pr\x00d"}
        with pytest.raises(ValidationError) as err:
            dt.job.schedule(request)
        assert err.value.field == field and "NUL" in err.value.rule
    assert len(dt.job.list()) == before


#: JSON values with every kind of text (every code point, lone surrogates too) and the extreme numbers.
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(st.characters(codec=None, exclude_categories=()), max_size=30),
    lambda inner: (
        st.lists(inner, max_size=5)
        | st.dictionaries(st.text(st.characters(codec=None, exclude_categories=()), max_size=10), inner, max_size=5)
    ),
    max_leaves=30,
)


class Level(enum.IntEnum):
    LOW = -(2**63)


class Short(str):  # a str whose length lies: the encoder writes what it holds
    def __len__(self) -> int:
        return 0


@PROPERTIES
@given(value=json_values)
@example(value={"a": "\x00" * 50})  # each a 6-byte escape
@example(value={"a": '"' * 50, "\\": "\\" * 20})  # 2-byte escapes, a key too
@example(value={"": -(2**63), "f": -2.2250738585072014e-308, "g": [False, None, True]})  # the longest scalars
@example(value={"e": "\U0001f600" * 20})  # a character past the BMP: 4 bytes of UTF-8
@example(value={"level": Level.LOW, "short": Short("x" * 100)})  # subclasses: bounded past the limit
def test_the_size_an_input_is_checked_by_bounds_its_json_text(value: Any) -> None:
    """``check_object`` encodes only an input whose bound (``check_json``) is over ``MAX_INPUT_BYTES``: the bound
    is never below the bytes of the JSON text that the limit measures (UTF-8, escapes only where JSON needs them),
    or an input over the limit would be taken."""
    try:
        bound = check_json(value, "input")
    except ValidationError as exc:  # only text no UTF-8 holds is refused among these values
        assert "lone surrogate" in exc.rule
        with pytest.raises(UnicodeEncodeError):
            json.dumps(value, ensure_ascii=False).encode()
        return
    assert bound >= len(json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode())


def test_an_input_holding_a_subclass_is_measured_by_its_json_text(dt: Ductape) -> None:
    """A str subclass whose ``__len__`` lies is not bounded by what it answers: the input is encoded and measured."""
    with pytest.raises(ValidationError) as caught:
        dt.job.schedule({"env": "dev", "product_tag": "shop", "event": "echo", "input": {"s": Short("x" * 300_000)}})
    assert caught.value.field == "input" and "bytes as JSON" in caught.value.rule
