"""What a run returns and what a session claims are checked: a FUNCTION result that is not JSON fails the
attempt (not retried) with an error naming its type; a signed session whose time claims are malformed is a
ValidationError naming the claim, never a ValueError or OverflowError from the depths."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import jwt
import pytest

from ductape_jobs import Ductape, FakeClock, ValidationError
from ductape_jobs.models import RunPhase

SECRET = "session-secret-for-tests-0123456789abcdef"
PRODUCT = {
    "tag": "shop",
    "envs": {"prd": {"session_secret": SECRET}},
    "sessions": {"user-session": {"name": "User", "schema": {"user": "object"}, "selector": "$Session{user}{id}"}},
}


@dataclasses.dataclass
class Point:
    x: int


def run_once(dt: Ductape, result: Any) -> Any:
    dt.function("make")(lambda input, ctx: result)
    dt.job.create({"name": "Make", "tag": "make", "event_type": "FUNCTION", "event_tag": "make"})
    dt.job.schedule({"env": "prd", "product_tag": "shop", "event": "make", "retries": 3})
    dt.drain()
    (run,) = dt.job.runs()
    return run


def _deep(levels: int) -> list[Any]:
    value: list[Any] = []
    for _ in range(levels - 1):
        value = [value]
    return value


_CYCLE: list[Any] = []
_CYCLE.append(_CYCLE)


@pytest.mark.parametrize(
    ("result", "named"),
    [
        (object(), "output is of type object"),
        ({"rows": [1, {"at": object()}]}, "output.rows[1].at is of type object"),
        (Point(1), "output is of type Point"),
        ({1, 2}, "output is of type set"),
        (b"raw", "output is of type bytes"),
        ({(1, 2): "pair"}, "output has a key of type tuple"),
        (_CYCLE, "output[0][0]"),  # a list that contains itself: refused at the depth bound, not walked forever
        (_deep(101), "nests deeper than 100 levels"),
        ({"ratio": float("nan")}, "output.ratio is nan, which JSON has no number for"),
        ([float("-inf")], "output[0] is -inf"),
        ({"big": 10**5000}, "output.big is an integer of more than 3,900 digits"),
        ({"s": "caf\udce9"}, "output.s is text with a lone surrogate"),
        ({"\ud800": 1}, "output has a key that is text with a lone surrogate"),
    ],
)
def test_a_function_result_that_is_not_json_fails_the_attempt_for_good(
    dt: Ductape, clock: FakeClock, result: Any, named: str
) -> None:
    run = run_once(dt, result)
    assert run.phase == RunPhase.FAILED and run.output is None
    assert run.error.startswith("ResultError: FUNCTION 'make' returned a value that is not JSON")
    assert named in run.error
    clock.advance(hours=1)
    assert dt.drain().ran == 0  # not retried: the function would return the same


def test_a_result_nested_to_the_bound_completes(dt: Ductape) -> None:
    run = run_once(dt, _deep(100))
    assert run.phase == RunPhase.COMPLETED, run.error


def test_json_results_and_the_types_kept_as_text_complete(dt: Ductape) -> None:
    at = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
    key = uuid.UUID(int=7)
    result = {"n": 1, "x": 0.5, "ok": True, "none": None, "list": [1, "a"], "tuple": (1, 2), "at": at,
              "day": date(2026, 3, 2), "price": Decimal("9.99"), "id": key, "3": "numeric key"}  # fmt: skip
    run = run_once(dt, result)
    assert run.phase == RunPhase.COMPLETED, run.error
    assert run.output["price"] == "9.99" and run.output["id"] == str(key) and run.output["tuple"] == [1, 2]


def token(claims: dict[str, Any]) -> str:
    base = {"tag": "user-session", "product": "shop", "env": "prd", "data": {"user": {"id": "u-1"}}}
    return "user-session:" + jwt.encode({**base, **claims}, SECRET, algorithm="HS256")


@pytest.mark.parametrize(
    ("claims", "claim"),
    [
        ({"exp": "abc"}, "exp"),
        ({"exp": 1e20}, "exp"),
        ({"exp": -5}, "exp"),
        ({"exp": True}, "exp"),
        ({"exp": [1]}, "exp"),
        ({"exp": 10**30}, "exp"),
        ({"exp": 2_000_000_000, "nbf": "soon"}, "nbf"),
        ({"exp": 2_000_000_000, "nbf": 1e300}, "nbf"),
        ({"exp": 2_000_000_000, "iat": "yesterday"}, "iat"),
        ({"exp": 2_000_000_000, "iat": -1e20}, "iat"),
    ],
)
def test_a_signed_session_with_malformed_time_claims_is_a_validation_error(
    dt: Ductape, claims: dict[str, Any], claim: str
) -> None:
    dt.products.add(PRODUCT)
    with pytest.raises(ValidationError) as raised:
        dt.session.verify(token(claims), env="prd", product_tag="shop")
    assert raised.value.field == "session.token" and f"claim {claim!r}" in raised.value.rule


def test_non_finite_claims_in_the_json_are_a_validation_error(dt: Ductape) -> None:
    """Python's JSON reader takes ``Infinity`` and ``NaN``: a token carrying them is refused, not a crash."""
    dt.products.add(PRODUCT)
    for claims in ({"exp": float("inf")}, {"exp": float("nan")}, {"exp": 2_000_000_000, "iat": float("inf")}):
        with pytest.raises(ValidationError) as raised:
            dt.session.verify(token(claims), env="prd", product_tag="shop")
        assert raised.value.field == "session.token"


def test_time_claims_are_judged_by_the_clients_clock(dt: Ductape, clock: FakeClock) -> None:
    dt.products.add(PRODUCT)
    now = int(clock.now().timestamp())
    good = token({"exp": now + 60, "iat": now, "nbf": now - 1})
    assert dt.session.verify(good, env="prd", product_tag="shop") == {"user": {"id": "u-1"}}
    with pytest.raises(ValidationError, match="not valid before"):
        dt.session.verify(token({"exp": now + 60, "nbf": now + 30}), env="prd", product_tag="shop")
    clock.advance(seconds=61)
    with pytest.raises(ValidationError, match="expired at"):
        dt.session.verify(good, env="prd", product_tag="shop")
