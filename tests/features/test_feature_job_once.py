"""A JOB event schedules its job once, even across a crash. A real process driving a direct ``feature.run`` is
SIGKILLed right after its JOB event's schedule is written (before the event records it); a worker process, as it
rescues job runs, resumes the orphaned feature run, which finds that schedule by its key
(``<feature run>:<sequence>:<event>``, unique in the store) instead of scheduling the job again. The job keeps the
feature's verified session."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
from feature_kit import seq, shop

from ductape_jobs import Ductape
from ductape_jobs.features import EventStatus, FeatureRunStatus
from ductape_jobs.products import Products

HERE = Path(__file__).parent
ROOT = HERE.parent.parent

JOB_EVENT = {"type": "JOB", "event": "report", "input": {"text": "$Input{name}"}, "retries": 0, "allow_fail": False}
PRODUCT = shop(
    {"remind": {"input": {"name": "string"}, "required": ["name"], "sequence": [seq("later", JOB_EVENT)]}},
    functions={"report": "feature_steps:upper"},
)

DRIVER = textwrap.dedent(
    """
    import json, pathlib, sys, time
    from datetime import timedelta
    sys.path[:0] = [sys.argv[3], sys.argv[4]]
    from ductape_jobs import Ductape
    from ductape_jobs.products import Products

    dt = Ductape(sys.argv[1], products=Products([json.loads(sys.argv[2])]), lease=timedelta(seconds=1))
    written = dt.store.add_schedule_parts

    def then_hang(*args, **kwargs):  # the JOB event's schedule is committed; the event has not recorded it
        written(*args, **kwargs)
        pathlib.Path(sys.argv[5]).write_text("scheduled")
        time.sleep(110)

    dt.store.add_schedule_parts = then_hang
    token = dt.session.start("user-session", {"user": {"id": "u1"}}, env="dev", product_tag="shop")
    dt.feature.run("remind", env="dev", product_tag="shop", input={"name": "ada"}, session=str(token))
    print("the feature finished: the test expected a kill", flush=True)
    """
)

WORKER = textwrap.dedent(
    """
    import json, sys
    from datetime import timedelta
    sys.path[:0] = [sys.argv[3], sys.argv[4]]
    from ductape_jobs import Ductape
    from ductape_jobs.products import Products

    dt = Ductape(
        sys.argv[1],
        products=Products([json.loads(sys.argv[2])]),
        lease=timedelta(seconds=1),
        poll=timedelta(milliseconds=50),
    )
    dt.worker()
    """
)


def _start(script: str, store: str, *extra: str) -> subprocess.Popen[str]:
    args = [sys.executable, "-c", script, store, json.dumps(PRODUCT), str(HERE), str(ROOT / "src"), *extra]
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.communicate(timeout=30)


def _wait(what: str, cond: Any, proc: subprocess.Popen[str], seconds: float = 60.0) -> None:
    deadline = time.monotonic() + seconds
    while not cond():
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"the process exited ({proc.returncode}) before {what}: {out} {err}")
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.05)


@pytest.mark.slow
def test_a_driver_killed_after_its_job_event_scheduled_is_resumed_by_a_worker_with_one_schedule(
    tmp_path: Path,
) -> None:
    store = f"sqlite:///{tmp_path / 'jobs.db'}"
    products = Products([PRODUCT])  # type: ignore[list-item]
    with Ductape(store, products=products) as dt:
        dt.job.create({"name": "report", "tag": "report", "event_type": "FUNCTION", "event_tag": "report"})

        marker = tmp_path / "scheduled"
        driver = _start(DRIVER, store, str(marker))
        try:
            _wait("the JOB event's schedule to be written", marker.exists, driver)
            os.kill(driver.pid, signal.SIGKILL)  # a real crash: nothing more is recorded
            assert driver.wait(timeout=30) == -signal.SIGKILL
        finally:
            _stop(driver)

        (crashed,) = dt.feature.runs()
        crashed = dt.feature.get(crashed.id)
        (event,) = crashed.events
        assert crashed.status is FeatureRunStatus.RUNNING
        assert (event.status, event.attempts, event.job_id) == (EventStatus.RUNNING, 1, None)  # not recorded
        (made,) = dt.job.list(job_tag="report")
        assert made.feature_key == f"{crashed.id}:later:report"
        assert made.session == {"user": {"id": "u1"}}  # the feature's verified session, no token kept

        worker = _start(WORKER, store)
        try:  # the worker adopts the orphaned run once its lease expired, and runs the job it scheduled
            _wait(
                "a worker to resume the feature run",
                lambda: dt.feature.get(crashed.id).status is not FeatureRunStatus.RUNNING,
                worker,
            )
        finally:
            _stop(worker)

        resumed = dt.feature.get(crashed.id)
        assert resumed.status is FeatureRunStatus.COMPLETED, resumed.error
        (event,) = resumed.events
        assert (event.status, event.attempts, event.job_id) == (EventStatus.COMPLETED, 2, made.id)
        assert [s.id for s in dt.job.list(job_tag="report")] == [made.id]  # one schedule, not two
        (run,) = dt.job.runs(job_id=made.id)
        assert run.session == {"user": {"id": "u1"}}
