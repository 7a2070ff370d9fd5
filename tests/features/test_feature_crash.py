"""A crash between events: a real process running a feature is killed with SIGKILL inside its second event;
``resume`` in another process carries on there, never running the finished first event again."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import feature_steps
import pytest
from feature_kit import seq, shop

from ductape_jobs import ConflictError, Ductape, FakeClock
from ductape_jobs.features import EventStatus, FeatureRunStatus
from ductape_jobs.products import Products

HERE = Path(__file__).parent
ROOT = HERE.parent.parent

FEATURE = {
    "onboard": {
        "input": {"name": "string"},
        "required": ["name"],
        "sequence": [
            seq("one", {"type": "FUNCTION", "event": "first", "input": {"name": "$Input{name}"}}),
            seq("two", {"type": "FUNCTION", "event": "second", "input": {}}, parents=["one"]),
            seq(
                "three",
                {
                    "type": "FUNCTION",
                    "event": "third",
                    "input": {"token": "$Sequence{one}{first}{token}", "ok": "$Sequence{two}{second}{ok}"},
                },
                parents=["two"],
            ),
        ],
    }
}
PRODUCT = shop(
    FEATURE,
    functions={"first": "feature_steps:first", "second": "feature_steps:second", "third": "feature_steps:third"},
)

CHILD = textwrap.dedent(
    """
    import json, sys
    sys.path[:0] = [sys.argv[3], sys.argv[4]]
    from ductape_jobs import Ductape
    from ductape_jobs.products import Products

    dt = Ductape(sys.argv[1], products=Products([json.loads(sys.argv[2])]))
    dt.feature.run("onboard", env="dev", product_tag="shop", input={"name": "ada"})
    print("the feature finished: the test expected a kill", flush=True)
    """
)


def _wait_for(path: Path, proc: subprocess.Popen[Any], seconds: float = 60.0) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists():
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"the child exited ({proc.returncode}) before reaching the second event: {out} {err}")
        if time.monotonic() > deadline:
            pytest.fail("the child did not reach the second event in time")
        time.sleep(0.02)


@pytest.mark.slow
def test_a_feature_killed_mid_run_resumes_without_repeating_finished_events(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = f"sqlite:///{tmp_path / 'jobs.db'}"
    log, hang = tmp_path / "steps.log", tmp_path / "in-second"
    monkeypatch.setenv("FEATURE_STEPS_LOG", str(log))
    env = {**os.environ, "FEATURE_STEPS_HANG": str(hang), "DUCTAPE_STORE": store}
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, store, json.dumps(PRODUCT), str(HERE), str(ROOT / "src")],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _wait_for(hang, child)
        os.kill(child.pid, signal.SIGKILL)  # a real crash: no cleanup, no finally, nothing flushed
        assert child.wait(timeout=30) == -signal.SIGKILL
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        child.stdout.close()  # type: ignore[union-attr]
        child.stderr.close()  # type: ignore[union-attr]
    assert feature_steps.logged() == ["first", "second"]

    products = Products([PRODUCT])  # type: ignore[list-item]
    with Ductape(store, products=products) as now_dt:
        (crashed,) = now_dt.feature.runs()
        crashed = now_dt.feature.get(crashed.id)
        assert crashed.status is FeatureRunStatus.RUNNING
        assert [(e.event_tag, e.status, e.attempts) for e in crashed.events] == [
            ("first", EventStatus.COMPLETED, 1),
            ("second", EventStatus.RUNNING, 1),  # interrupted: its outcome was never recorded
            ("third", EventStatus.PENDING, 0),
        ]
        with pytest.raises(ConflictError):  # the dead driver's lease has not expired yet
            now_dt.feature.resume(crashed.id)
        later = FakeClock(now_dt.clock.now() + timedelta(minutes=1))

    with Ductape(store, products=products, clock=later) as dt:  # "a minute later": the lease has expired
        resumed = dt.feature.resume(crashed.id)
    assert resumed.status is FeatureRunStatus.COMPLETED, resumed.error
    assert feature_steps.logged() == ["first", "second", "second", "third"]  # first never ran again
    assert feature_steps.logged(os.getpid()) == ["second", "third"]
    assert [(e.event_tag, e.status, e.attempts) for e in resumed.events] == [
        ("first", EventStatus.COMPLETED, 1),
        ("second", EventStatus.COMPLETED, 2),
        ("third", EventStatus.COMPLETED, 1),
    ]
    # the third event piped from the first one's result, recorded by the process that died
    assert resumed.output["three"]["third"] == {"got": {"token": "tok-ada", "ok": True}}


def test_an_abort_inside_an_event_leaves_the_run_resumable(tmp_path: Path) -> None:
    """The in-process variant: an event that raises ``KeyboardInterrupt`` stops the driver the way a crash
    does (nothing more is recorded); a fresh ``Ductape`` resumes at that event."""
    store = f"sqlite:///{tmp_path / 'jobs.db'}"
    ran: list[str] = []
    products = Products([shop({"f": {"sequence": [seq("a", _fn("one")), seq("b", _fn("two"), parents=["a"])]}})])  # type: ignore[list-item]
    clock = FakeClock()
    with Ductape(store, products=products, clock=clock) as dt:
        dt.function("one")(lambda input, ctx: ran.append("one") or 1)

        async def abort(input: dict[str, Any], ctx: Any) -> None:  # Ctrl-C while the loop runs the event
            ran.append("two")
            raise KeyboardInterrupt

        dt.function("two")(abort)
        with pytest.raises(KeyboardInterrupt):
            dt.feature.run("f", env="dev", product_tag="shop")
        (run,) = dt.feature.runs()
    clock.advance(minutes=1)
    with Ductape(store, products=products, clock=clock) as fresh:
        fresh.function("one")(lambda input, ctx: ran.append("one again") or 1)
        fresh.function("two")(lambda input, ctx: ran.append("two again") or 2)
        resumed = fresh.feature.resume(run.id)
    assert resumed.status is FeatureRunStatus.COMPLETED
    assert ran == ["one", "two", "two again"]
    assert resumed.output == {"a": {"one": 1}, "b": {"two": 2}}


def _fn(tag: str) -> dict[str, Any]:
    return {"type": "FUNCTION", "event": tag, "input": {}}


def _looks_for_orphans(dt: Ductape) -> list[object]:
    """The times ``dt``'s store is asked for feature runs whose driver died, as it is asked (the store answers)."""
    looked: list[object] = []
    real = dt.store.orphaned_feature_runs

    def orphaned(now: object, limit: int) -> list[str]:
        looked.append(now)
        return real(now, limit)

    dt.store.orphaned_feature_runs = orphaned  # type: ignore[method-assign]
    return looked


def test_feature_runs_are_not_taken_as_orphaned_while_the_workers_clock_has_just_jumped(dt: Ductape) -> None:
    """A review: a worker whose clock jumped ahead takes no job run's lease as lapsed for a lease (``_judge_step``),
    but the feature runs whose driver died were looked for by the same clock meanwhile: live ones were resumed a
    second time beside their driver. ``adopt_orphans`` asks the worker (``may_rescue``) first."""
    import asyncio

    looked = _looks_for_orphans(dt)

    async def run_for_a_while(allowed: bool) -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(
            dt.feature.engine.adopt_orphans(stop, timedelta(milliseconds=10), lambda now: allowed)
        )
        await asyncio.sleep(0.1)
        stop.set()
        await task

    asyncio.run(run_for_a_while(False))
    assert looked == []
    asyncio.run(run_for_a_while(True))
    assert looked


def test_a_worker_looks_for_feature_runs_whose_driver_died_once_it_knows_a_product(tmp_path: Path) -> None:
    """Features are a product's: a worker that knows no product resumes no feature run, so it neither looks for
    those whose driver died nor makes the feature engine (a worker of plain FUNCTIONs loads none of it). A product
    added while it runs starts the look."""
    import asyncio

    dt = Ductape(f"sqlite:///{tmp_path / 'jobs.db'}")
    looked = _looks_for_orphans(dt)

    async def run() -> tuple[bool, int]:
        stop = asyncio.Event()
        worker = asyncio.create_task(dt.run_worker(stop, rescue_every=timedelta(milliseconds=10)))
        await asyncio.sleep(0.2)
        before = ("feature" in dt._parts, len(looked))  # the feature engine made (``Ductape._part``) or not
        dt.products.add(PRODUCT)
        for _ in range(200):
            if looked:
                break
            await asyncio.sleep(0.01)
        stop.set()
        await worker
        return before

    try:
        assert asyncio.run(run()) == (False, 0)
        assert looked
    finally:
        dt.close()
