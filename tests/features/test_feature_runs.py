"""``ductape.feature.run``: piping, allow_fail, retries, concurrency within a sequence, validation, resume."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from feature_kit import App, fn, seq

from ductape_jobs import AsyncDuctape, Backoff, ConflictError, Ductape, ExecutionError, NotFoundError, ValidationError
from ductape_jobs.features import EventResult, EventStatus, FeatureRun, FeatureRunStatus
from ductape_jobs.limits import MAX_OUTPUT_BYTES

MakeApp = Callable[..., App]


def statuses(run: Any) -> dict[str, str]:
    return {f"{e.sequence_tag}/{e.event_tag}": e.status.value for e in run.events}


# ------------------------------------------------------------------------------------------ piping


def test_input_sequence_and_session_values_are_piped(make_app: MakeApp) -> None:
    app = make_app(
        {
            "signup": {
                "input": {"name": "string", "plan": "string"},
                "required": ["name"],
                "sequence": [
                    seq("account", fn("create_user", {"name": "$Input{name}", "by": "$Session{user}{id}"})),
                    seq(
                        "welcome",
                        fn("greet", {"user": "$Sequence{account}{create_user}{id}", "text": "Hi $Input{name}"}),
                        parents=["account"],
                    ),
                ],
            }
        }
    )
    seen: list[tuple[str, dict[str, Any]]] = []

    @app.dt.function("create_user")
    def create_user(input: dict[str, Any], ctx: Any) -> dict[str, Any]:
        seen.append(("create_user", input))
        assert ctx.product_tag == "shop" and ctx.env == "dev" and ctx.attempt == 1
        return {"id": "u-42", "name": input["name"]}

    @app.dt.function("greet")
    def greet(input: dict[str, Any], ctx: Any) -> str:
        seen.append(("greet", input))
        return "sent"

    token = app.dt.session.start("user-session", {"user": {"id": "admin-1"}}, env="dev", product_tag="shop")
    run = app.dt.feature.run("signup", env="dev", product_tag="shop", input={"name": "Ada"}, session=str(token))
    assert run.status is FeatureRunStatus.COMPLETED and run.error is None
    assert seen == [
        ("create_user", {"name": "Ada", "by": "admin-1"}),
        ("greet", {"user": "u-42", "text": "Hi Ada"}),
    ]
    assert run.output == {"account": {"create_user": {"id": "u-42", "name": "Ada"}}, "welcome": {"greet": "sent"}}
    assert all(e.attempts == 1 and e.completed_at is not None for e in run.events)
    assert run.session == {"user": {"id": "admin-1"}} and token.token not in repr(run)
    assert app.dt.feature.get(run.id) == run


# ---------------------------------------------------------------------------------------- allow_fail


def _failing(app: App) -> list[str]:
    ran: list[str] = []
    for tag in ("one", "two", "three", "four"):
        app.dt.function(tag)(lambda input, ctx, tag=tag: ran.append(tag) or {"tag": tag})

    def broken(input: dict[str, Any], ctx: Any) -> None:
        ran.append("broken")
        raise RuntimeError("the card was declined")

    app.dt.function("broken")(broken)
    return ran


def test_allow_fail_true_lets_the_feature_go_on(make_app: MakeApp) -> None:
    app = make_app(
        {
            "f": {
                "sequence": [
                    seq("a", fn("one"), fn("broken", allow_fail=True)),
                    seq("b", fn("two"), parents=["a"]),
                ]
            }
        }
    )
    ran = _failing(app)
    run = app.run("f")
    assert run.status is FeatureRunStatus.COMPLETED
    assert statuses(run) == {"a/one": "completed", "a/broken": "failed", "b/two": "completed"}
    assert "the card was declined" in (run.event("a", "broken").error or "")
    assert sorted(ran) == ["broken", "one", "two"]


def test_allow_fail_false_stops_the_feature_and_skips_what_had_not_started(make_app: MakeApp) -> None:
    app = make_app(
        {
            "f": {
                "sequence": [
                    seq("a", fn("one")),
                    seq("b", fn("broken"), fn("two"), fn("three", {"x": "$Sequence{b}{broken}"}), parents=["a"]),
                    seq("c", fn("four"), parents=["b"]),
                ]
            }
        }
    )
    ran = _failing(app)
    run = app.run("f")
    assert run.status is FeatureRunStatus.FAILED
    assert run.error is not None and run.error.startswith("event b/broken failed: RuntimeError: the card was declined")
    assert statuses(run) == {
        "a/one": "completed",
        "b/broken": "failed",
        "b/two": "completed",  # independent of broken: it was already running alongside
        "b/three": "skipped",  # waits for broken, which failed
        "c/four": "skipped",
    }
    assert "three" not in ran and "four" not in ran
    assert run.lease_owner is None and run.completed_at is not None


def test_a_value_piped_from_an_allowed_failure_fails_the_event_that_needs_it(make_app: MakeApp) -> None:
    app = make_app(
        {
            "f": {
                "sequence": [
                    seq("a", fn("broken", allow_fail=True)),
                    seq("b", fn("one", {"x": "$Sequence{a}{broken}{id}"}), parents=["a"]),
                ]
            }
        }
    )
    _failing(app)
    run = app.run("f")
    assert run.status is FeatureRunStatus.FAILED
    assert "event a/broken failed, so it has no output to pipe" in (run.event("b", "one").error or "")


# ------------------------------------------------------------------------------------------- retries


def test_retries_wait_the_engines_backoff_and_count_attempts(make_app: MakeApp) -> None:
    app = make_app({"f": {"sequence": [seq("a", fn("flaky", retries=3), fn("fine"))]}})
    calls: list[int] = []

    @app.dt.function("flaky")
    def flaky(input: dict[str, Any], ctx: Any) -> str:
        calls.append(ctx.attempt)
        if len(calls) < 3:
            raise ConnectionError(f"attempt {len(calls)} refused")
        return "ok"

    app.dt.function("fine")(lambda input, ctx: "fine")
    run = app.run("f")
    assert run.status is FeatureRunStatus.COMPLETED
    assert calls == [1, 2, 3]
    flaky_event = run.event("a", "flaky")
    assert (flaky_event.status, flaky_event.attempts, flaky_event.output, flaky_event.error) == (
        EventStatus.COMPLETED,
        3,
        "ok",
        None,
    )
    assert app.waits == [1.0, 2.0]  # Backoff(jitter=0): 1 s, then 2 s; through the sleeper, never really


def test_an_event_that_keeps_failing_fails_after_its_retries(make_app: MakeApp) -> None:
    app = make_app({"f": {"sequence": [seq("a", fn("broken", retries=2))]}})
    ran = _failing(app)
    run = app.run("f")
    assert run.status is FeatureRunStatus.FAILED
    assert ran == ["broken", "broken", "broken"] and run.event("a", "broken").attempts == 3
    assert app.waits == [1.0, 2.0]


def test_a_failure_retrying_cannot_help_is_not_retried(make_app: MakeApp) -> None:
    app = make_app({"f": {"sequence": [seq("a", fn("strict", retries=5))]}})

    @app.dt.function("strict")
    def strict(input: dict[str, Any], ctx: Any) -> None:
        error = ExecutionError("the order is closed")
        error.retryable = False
        raise error

    run = app.run("f")
    assert run.status is FeatureRunStatus.FAILED and run.event("a", "strict").attempts == 1 and app.waits == []


def test_an_event_whose_exception_cannot_be_read_fails_and_the_feature_goes_on(make_app: MakeApp) -> None:
    """An exception whose ``__str__`` raises (or whose ``retryable`` does) fails its event, named by its type: turning
    it into text raised, out of the driver: ``feature.run`` raised ``ValueError``, the run left ``running``."""
    app = make_app({"f": {"sequence": [seq("a", fn("odd", allow_fail=True), fn("unsure", retries=5), fn("ok"))]}})

    class Unreadable(Exception):
        def __str__(self) -> str:
            raise ValueError("no str")

    class Unsure(Exception):
        @property
        def retryable(self) -> bool:
            raise RuntimeError("no answer")

    @app.dt.function("odd")
    def odd(input: dict[str, Any], ctx: Any) -> None:
        raise Unreadable()

    @app.dt.function("unsure")
    def unsure(input: dict[str, Any], ctx: Any) -> None:
        raise Unsure("cannot say")

    @app.dt.function("ok")
    def ok(input: dict[str, Any], ctx: Any) -> int:
        return 1

    run = app.run("f")
    assert run.status is FeatureRunStatus.FAILED
    assert statuses(run) == {"a/odd": "failed", "a/unsure": "failed", "a/ok": "completed"}
    errors = {tag: (run.event("a", tag).error or "").splitlines()[0] for tag in ("odd", "unsure")}
    assert errors == {
        "odd": "Unreadable: its text could not be read (str() raised ValueError)",
        "unsure": "Unsure: cannot say",
    }
    assert run.event("a", "unsure").attempts == 1  # what it says of retrying cannot be read: not retried


def test_an_event_output_past_the_bound_fails_it_for_good_as_a_runs_does(
    make_app: MakeApp, caplog: pytest.LogCaptureFixture
) -> None:
    """A feature event's output is bounded as a run's is (``MAX_OUTPUT_BYTES`` of JSON): it was stored whole."""
    app = make_app({"f": {"sequence": [seq("a", fn("big", retries=5))]}})

    @app.dt.function("big")
    def big(input: dict[str, Any], ctx: Any) -> dict[str, str]:
        return {"s": "x" * MAX_OUTPUT_BYTES}

    with caplog.at_level("WARNING"):
        run = app.run("f")
    event = run.event("a", "big")
    (logged,) = [r.getMessage() for r in caplog.records if "failed for good" in r.getMessage()]
    assert logged == f"feature event a/big failed for good: {event.error}"  # as stored: masked, cut, one line
    assert run.status is FeatureRunStatus.FAILED and event.attempts == 1 and app.waits == []
    assert event.output is None and event.error is not None
    assert event.error.startswith(f"ResultError: the output is {MAX_OUTPUT_BYTES + 8:,} bytes of JSON; at most")


def test_zero_backoff_retries_at_once_without_a_replaced_sleeper(make_app: MakeApp) -> None:
    app = make_app({"f": {"sequence": [seq("a", fn("flaky", retries=1))]}})
    app.dt.feature.engine.backoff = Backoff(base=timedelta(0), jitter=0.0)
    app.dt.feature.sleep = asyncio.sleep
    calls: list[int] = []
    app.dt.function("flaky")(lambda input, ctx: calls.append(1) or (1 / (len(calls) - 1)))
    started = time.monotonic()
    run = app.run("f")
    assert run.status is FeatureRunStatus.COMPLETED and len(calls) == 2
    assert time.monotonic() - started < 1.0


# --------------------------------------------------------------------------------------- concurrency


def test_independent_events_of_a_sequence_overlap_and_a_piped_one_waits(make_app: MakeApp) -> None:
    app = make_app(
        {
            "f": {
                "sequence": [
                    seq(
                        "s",
                        fn("left"),
                        fn("right"),
                        fn("after_left", {"from": "$Sequence{s}{left}{side}"}),
                    )
                ]
            }
        }
    )
    both_running = threading.Barrier(2, timeout=5)  # passes only while left and right run at the same time
    times: dict[str, tuple[float, float]] = {}

    def side(name: str) -> Callable[[dict[str, Any], Any], dict[str, str]]:
        def run(input: dict[str, Any], ctx: Any) -> dict[str, str]:
            start = time.monotonic()
            both_running.wait()
            time.sleep(0.05)
            times[name] = (start, time.monotonic())
            return {"side": name}

        return run

    app.dt.function("left")(side("left"))
    app.dt.function("right")(side("right"))

    @app.dt.function("after_left")
    def after_left(input: dict[str, Any], ctx: Any) -> Any:
        times["after_left"] = (time.monotonic(), time.monotonic())
        return input

    run = app.run("f")
    assert run.status is FeatureRunStatus.COMPLETED, run
    left, right = times["left"], times["right"]
    assert left[0] < right[1] and right[0] < left[1]  # overlapped
    assert times["after_left"][0] >= left[1]  # started only once left had finished
    assert run.output["s"]["after_left"] == {"from": "left"}


def test_sequences_run_after_their_parents(make_app: MakeApp) -> None:
    app = make_app(
        {
            "f": {
                "sequence": [
                    seq("c", fn("third"), parents=["a", "b"]),
                    seq("b", fn("second"), parents=["a"]),
                    seq("a", fn("first")),
                ]
            }
        }
    )
    order: list[str] = []
    for tag in ("first", "second", "third"):
        app.dt.function(tag)(lambda input, ctx, tag=tag: order.append(tag))
    assert app.run("f").status is FeatureRunStatus.COMPLETED
    assert order == ["first", "second", "third"]


# ---------------------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("tag", "kwargs", "field"),
    [
        ("nope", {}, "feature"),
        ("f", {"input": {}}, "input.email"),
        ("f", {"input": {"email": 42}}, "input.email"),
        ("f", {"input": {"email": "a@b.c", "count": True}}, "input.count"),
        ("f", {"input": {"email": "a@b.c"}, "env": "prd"}, "env"),
        ("f", {"input": {"email": "a@b.c"}, "product_tag": "other"}, "product_tag"),
        ("f", {"input": {"email": "a@b.c"}, "session": "user-session:not-a-jwt"}, "session.token"),
        ("needs_session", {"input": {}}, "input"),
        ("job_feature", {"input": {}}, "products.shop.features.job_feature.sequence[0].events[0].event"),
    ],
)
def test_a_bad_request_is_refused_and_nothing_is_stored(
    make_app: MakeApp, tag: str, kwargs: dict[str, Any], field: str
) -> None:
    app = make_app(
        {
            "f": {
                "input": {"email": "string", "count": "integer"},
                "required": ["email"],
                "sequence": [seq("a", fn("one", {"to": "$Input{email}"}))],
            },
            "needs_session": {"sequence": [seq("a", fn("one", {"who": "$Session{user}{id}"}))]},
            "job_feature": {"sequence": [seq("a", {"type": "JOB", "event": "no-such-job"})]},
        }
    )
    request: dict[str, Any] = {"env": "dev", "product_tag": "shop", **kwargs}
    with pytest.raises(ValidationError) as err:
        app.dt.feature.run(tag, **request)
    assert err.value.field == field, err.value
    assert app.dt.feature.runs() == []


def test_without_any_product_a_feature_cannot_run(tmp_path: Path) -> None:
    with Ductape(f"sqlite:///{tmp_path / 'j.db'}") as dt, pytest.raises(ValidationError) as err:
        dt.feature.run("f", env="dev", product_tag="shop")
    assert err.value.field == "product_tag"


def test_runs_listing_and_lookups(make_app: MakeApp) -> None:
    app = make_app({"f": {"sequence": [seq("a", fn("one"))]}, "g": {"sequence": [seq("a", fn("broken"))]}})
    _failing(app)
    first = app.run("f")
    second = app.run("g")
    assert [r.id for r in app.dt.feature.runs()] == [second.id, first.id]
    assert [r.id for r in app.dt.feature.runs(status="failed")] == [second.id]
    assert [r.id for r in app.dt.feature.runs(feature_tag="f")] == [first.id]
    with pytest.raises(ValidationError):
        app.dt.feature.runs(status="done")
    with pytest.raises(NotFoundError):
        app.dt.feature.get("feat_nope")


# ------------------------------------------------------------------------------------- resume, retry


def test_resume_returns_a_finished_run_and_refuses_one_held_by_a_live_driver(make_app: MakeApp) -> None:
    app = make_app({"f": {"sequence": [seq("a", fn("one"))]}})
    app.dt.function("one")(lambda input, ctx: 1)
    run = app.run("f")
    assert app.dt.feature.resume(run.id) == run
    # a run another driver holds (its lease has not expired) is not taken
    now = app.clock.now()
    held = FeatureRun(
        "feat_held", "shop", "dev", "f", {}, FeatureRunStatus.RUNNING, now, now,
        lease_owner="other-host:1:abc", lease_expires_at=now + timedelta(seconds=30),
        events=[EventResult("a", "one", "function", 0)],
    )  # fmt: skip
    app.dt.store.create_feature_run(held)
    with pytest.raises(ConflictError) as err:
        app.dt.feature.resume("feat_held")
    assert "other-host:1:abc" in str(err.value)
    app.clock.advance(seconds=31)  # its lease expired: this driver takes it over
    resumed = app.dt.feature.resume("feat_held")
    assert resumed.status is FeatureRunStatus.COMPLETED and resumed.output == {"a": {"one": 1}}


def test_retry_runs_the_failed_and_skipped_events_again_and_keeps_the_completed(make_app: MakeApp) -> None:
    app = make_app(
        {
            "f": {
                "sequence": [
                    seq("a", fn("one")),
                    seq("b", fn("shaky"), parents=["a"]),
                    seq("c", fn("two"), parents=["b"]),
                ]
            }
        }
    )
    ran: list[str] = []
    app.dt.function("one")(lambda input, ctx: ran.append("one"))
    app.dt.function("two")(lambda input, ctx: ran.append("two"))

    @app.dt.function("shaky")
    def shaky(input: dict[str, Any], ctx: Any) -> None:
        ran.append("shaky")
        if ran.count("shaky") == 1:
            raise RuntimeError("down")

    failed = app.run("f")
    assert failed.status is FeatureRunStatus.FAILED and statuses(failed)["c/two"] == "skipped"
    with pytest.raises(NotFoundError):
        app.dt.feature.retry("feat_nope")
    again = app.dt.feature.retry(failed.id)
    assert again.status is FeatureRunStatus.COMPLETED and again.id == failed.id
    assert ran == ["one", "shaky", "shaky", "two"]  # one did not run again
    assert again.event("b", "shaky").attempts == 2
    with pytest.raises(ConflictError):
        app.dt.feature.retry(failed.id)  # completed: nothing to retry


# ------------------------------------------------------------------------------------ nested, async


def test_a_feature_event_runs_another_feature_and_pipes_its_results(make_app: MakeApp) -> None:
    app = make_app(
        {
            "charge": {
                "input": {"amount": "number"},
                "sequence": [seq("pay", fn("bill", {"cents": "$Input{amount}"}))],
            },
            "checkout": {
                "sequence": [
                    seq("order", {"type": "FEATURE", "event": "charge", "input": {"amount": "$Input{total}"}}),
                    seq("mail", fn("receipt", {"paid": "$Sequence{order}{charge}{pay}{bill}"}), parents=["order"]),
                ]
            },
        }
    )
    app.dt.function("bill")(lambda input, ctx: {"charged": input["cents"]})
    app.dt.function("receipt")(lambda input, ctx: input)
    run = app.run("checkout", total=1200)
    assert run.status is FeatureRunStatus.COMPLETED
    assert run.output["mail"]["receipt"] == {"paid": {"charged": 1200}}
    child = app.dt.feature.get(f"{run.id}/order/charge")
    assert child.feature_tag == "charge" and child.status is FeatureRunStatus.COMPLETED


def test_async_ductape_awaits_the_same_api(make_app: MakeApp, tmp_path: Path) -> None:
    app = make_app({"f": {"sequence": [seq("a", fn("one", {"v": "$Input{v}"}))]}})

    async def main() -> None:
        adt = AsyncDuctape(f"sqlite:///{tmp_path / 'async.db'}", clock=app.clock, products=app.dt.products)

        @adt.function("one")
        async def one(input: dict[str, Any], ctx: Any) -> Any:
            await asyncio.sleep(0)
            return input["v"] * 2

        run = await adt.feature.run("f", env="dev", product_tag="shop", input={"v": 21})
        assert run.status is FeatureRunStatus.COMPLETED and run.output == {"a": {"one": 42}}
        assert (await adt.feature.get(run.id)).id == run.id
        assert [r.id for r in await adt.feature.runs()] == [run.id]
        assert (await adt.feature.resume(run.id)).status is FeatureRunStatus.COMPLETED
        await adt.close()

    asyncio.run(main())
