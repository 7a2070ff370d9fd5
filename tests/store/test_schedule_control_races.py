"""Two nodes controlling one schedule at once (two HTTP requests, two processes): a ``cancel`` and a ``resume``,
``pause``, ``reschedule`` or ``trigger`` each checked the schedule's status in a transaction of its own and then
wrote, so both succeeded and the cancelled schedule came back (PostgreSQL: 89 of 150 rounds of cancel and resume
ended active) or kept a run waiting to start. Each now decides from the schedule as it is under its lock, in the
transaction that writes: they take turns, and a cancelled schedule stays cancelled with nothing left to start."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from storekit import PG_URL, Backend

from ductape_jobs import ConflictError, Ductape, RunPhase, ScheduleStatus
from ductape_jobs.store.base import Outcome

REQ = {"env": "test", "product_tag": "p", "event": "tick", "repeat": {"every": 3_600_000}, "start_at": 4_102_444_800}
PENDING = {RunPhase.SCHEDULED, RunPhase.QUEUED, RunPhase.RETRY_SCHEDULED}
ROUNDS = 40


@pytest.fixture
def nodes(backend: Backend) -> Iterator[tuple[Ductape, Ductape]]:
    a, b = Ductape(backend.url), Ductape(backend.url)
    a.job.create({"name": "tick", "tag": "tick", "event_type": "FUNCTION", "event_tag": "tick"})
    try:
        yield a, b
    finally:
        a.close()
        b.close()


def at_once(*calls: Callable[[], Any]) -> list[BaseException | None]:
    """The calls started together, one thread each; what each raised (``None``: it returned)."""
    barrier = threading.Barrier(len(calls))
    raised: list[BaseException | None] = [None] * len(calls)

    def one(i: int) -> None:
        barrier.wait(timeout=10)
        try:
            calls[i]()
        except BaseException as exc:
            raised[i] = exc

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(calls))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert not any(t.is_alive() for t in threads), "a call still waits after 30 s"
    return raised


def cancel_schedule(conn: psycopg.Connection[Any], job_id: str) -> None:
    """The first half of what cancel() writes, in ``conn``'s transaction: its schedule locked and cancelled."""
    conn.execute("SELECT id FROM schedules WHERE id = %s FOR UPDATE", (job_id,))
    conn.execute("UPDATE schedules SET status = 'cancelled', reason = 'cancelled' WHERE id = %s", (job_id,))


def cancel_pending_runs(conn: psycopg.Connection[Any], job_id: str) -> None:
    """The second half: its runs that have not started cancelled."""
    conn.execute(
        "UPDATE runs SET phase = 'cancelled', error = 'cancelled', available_at = NULL WHERE schedule_id = %s"
        " AND phase IN ('scheduled', 'queued', 'retry_scheduled')",
        (job_id,),
    )


@pytest.mark.parametrize("other", ["resume", "pause", "reschedule", "trigger"])
def test_a_cancel_at_once_with_another_control_call_leaves_the_schedule_cancelled(
    nodes: tuple[Ductape, Ductape], other: str
) -> None:
    a, b = nodes
    calls: dict[str, Callable[[str], Any]] = {
        "resume": b.job.resume,
        "pause": b.job.pause,
        "reschedule": lambda job_id: b.job.reschedule(job_id, {"every": 60_000}),
        "trigger": b.job.trigger,
    }
    for _ in range(ROUNDS):
        job_id = a.job.schedule(REQ).job_id
        if other == "resume":
            a.job.pause(job_id)
        raised = at_once(lambda: a.job.cancel(job_id), lambda: calls[other](job_id))  # noqa: B023
        assert raised[0] is None
        assert raised[1] is None or isinstance(raised[1], ConflictError), raised[1]
        assert a.job.get(job_id).status is ScheduleStatus.CANCELLED
        assert [r.phase for r in a.job.runs(job_id=job_id) if r.phase in PENDING] == []


def test_a_pause_whose_commit_answer_was_lost_is_not_refused_by_its_own_pause(
    pg_backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The store tries a schedule's change again after a lost connection left its commit unknown; the decision,
    now made under the lock, would see the pause it had made and refuse it (HTTP 409 for a pause that was made)."""
    dt = Ductape(pg_backend.url)
    try:
        dt.job.create({"name": "tick", "tag": "tick", "event_type": "FUNCTION", "event_tag": "tick"})
        job_id = dt.job.schedule(REQ).job_id
        db = dt.store._d._db  # type: ignore[attr-defined]
        retried, lost = db._retried, [psycopg.OperationalError("server closed the connection unexpectedly")]
        after: list[Callable[[], Any]] = []  # what another writer does before the try again

        def answer_lost(once: Callable[[Any], Any], unsafe: Callable[[], bool]) -> Any:
            def committed_then_lost(conn: Any) -> Any:
                done = once(conn)
                if lost:
                    for meanwhile in after:
                        meanwhile()
                    raise lost.pop()
                return done

            return retried(committed_then_lost, unsafe)

        monkeypatch.setattr(db, "_retried", answer_lost)
        assert dt.job.pause(job_id, reason="maintenance").status is ScheduleStatus.PAUSED
        assert lost == []  # it was lost, and tried again
        assert dt.job.resume(job_id).status is ScheduleStatus.ACTIVE  # a new call: decided afresh
        lost.append(psycopg.OperationalError("server closed the connection unexpectedly"))
        assert dt.job.pause(job_id).status is ScheduleStatus.PAUSED
        with pytest.raises(ConflictError, match="is paused; only an active one pauses"):
            dt.job.pause(job_id)  # another call's pause, made before: refused as ever
        # a resume made, its answer lost, and a worker's tick moving the schedule on before the try again
        after.append(
            lambda: pg_backend.execute(
                "UPDATE schedules SET status = 'completed', updated_at = updated_at + 3 WHERE id = %(id)s",
                {"id": job_id},
            )
        )
        lost.append(psycopg.OperationalError("server closed the connection unexpectedly"))
        assert dt.job.resume(job_id).status is ScheduleStatus.COMPLETED  # as it is: made, not refused
    finally:
        dt.close()


def test_a_retry_made_while_a_cancel_commits_waits_for_it_and_is_cancelled(pg_backend: Backend) -> None:
    """A run failed (a retry due) while its schedule's cancel was being committed: on PostgreSQL the retry was
    made from a snapshot taken before the cancel committed, and after the cancel had passed over the running run,
    so the cancelled schedule kept a retry to run. The outcome now waits for the cancel (its schedule locked FOR
    SHARE) and cancels the run instead. (SQLite's single writer runs one after the other.)"""
    dt = Ductape(pg_backend.url)
    try:
        dt.job.create({"name": "tick", "tag": "tick", "event_type": "FUNCTION", "event_tag": "tick"})
        job_id = dt.job.schedule({"env": "test", "product_tag": "p", "event": "tick", "retries": 1}).job_id
        now = datetime.now(UTC)
        (run,) = dt.store.acquire_runs("w1", 1, timedelta(seconds=30), now)
        failed = Outcome(run.id, run.attempt, "w1", False, now, 5, error="boom", retry_at=now + timedelta(seconds=1))
        finisher = threading.Thread(target=dt.store.finish_runs, args=([failed], now))
        with psycopg.connect(PG_URL, options=f"-c search_path={pg_backend.schema}") as cancel:  # a transaction
            # what cancel() writes, committed only once the outcome is being recorded
            cancel_schedule(cancel, job_id)
            cancel_pending_runs(cancel, job_id)
            finisher.start()
            finisher.join(0.5)
            waited = finisher.is_alive()
            cancel.commit()
        finisher.join(10)
        assert waited and not finisher.is_alive()
        after = dt.job.run(run.id)
        assert (after.phase, after.error) == (RunPhase.CANCELLED, "cancelled")
        assert dt.store.acquire_runs("w1", 1, timedelta(seconds=30), now + timedelta(seconds=2)) == []
    finally:
        dt.close()


@pytest.mark.parametrize("how", ["rescue", "release"])
def test_a_run_taken_back_while_a_cancel_commits_waits_for_it_and_is_cancelled(pg_backend: Backend, how: str) -> None:
    """A rescue (or a worker's release at a stop) taking back a run while its schedule's cancel was being committed:
    from a snapshot taken before the cancel committed, after the cancel had passed over the running run, it would
    queue the run of a cancelled schedule to run again. It now waits for the cancel (its schedule locked) and ends
    the run cancelled instead."""
    dt = Ductape(pg_backend.url)
    try:
        dt.job.create({"name": "tick", "tag": "tick", "event_type": "FUNCTION", "event_tag": "tick"})
        job_id = dt.job.schedule({"env": "test", "product_tag": "p", "event": "tick"}).job_id
        now = datetime.now(UTC)
        (run,) = dt.store.acquire_runs("w1", 1, timedelta(seconds=1), now)
        later = now + timedelta(seconds=5)  # its lease has lapsed
        if how == "rescue":
            taker = threading.Thread(target=dt.store.rescue_expired, args=(later, 3))
        else:
            taker = threading.Thread(target=dt.store.release_runs, args=("w1", [run.id], later))
        with psycopg.connect(PG_URL, options=f"-c search_path={pg_backend.schema}") as cancel:  # a transaction
            cancel_schedule(cancel, job_id)
            cancel_pending_runs(cancel, job_id)
            taker.start()
            taker.join(0.5)
            waited = taker.is_alive()
            cancel.commit()
        taker.join(10)
        assert waited and not taker.is_alive()
        after = dt.job.run(run.id)
        assert (after.phase, after.error) == (RunPhase.CANCELLED, "cancelled")
        assert dt.store.acquire_runs("w2", 1, timedelta(seconds=30), later) == []
    finally:
        dt.close()


def test_a_release_of_a_run_a_rescue_queued_and_a_cancel_do_not_deadlock(
    pg_backend: Backend, caplog: pytest.LogCaptureFixture
) -> None:
    """A review: a worker giving back at its stop a run the rescue had already queued again locked that queued run,
    then waited for its schedule, which a cancel held while it waited for the queued run. A release locks only the
    runs it still holds."""
    dt = Ductape(pg_backend.url)
    try:
        dt.job.create({"name": "tick", "tag": "tick", "event_type": "FUNCTION", "event_tag": "tick"})
        job_id = dt.job.schedule(REQ).job_id
        dt.job.trigger(job_id)
        now = datetime.now(UTC)
        (run,) = dt.store.acquire_runs("w1", 1, timedelta(seconds=1), now)
        later = now + timedelta(seconds=5)
        dt.store.rescue_expired(later, 3)  # queued again: the worker's lease lapsed
        released = []
        releaser = threading.Thread(target=lambda: released.append(dt.store.release_runs("w1", [run.id], later)))
        with psycopg.connect(PG_URL, options=f"-c search_path={pg_backend.schema}") as cancel:
            cancel_schedule(cancel, job_id)
            releaser.start()
            time.sleep(0.4)
            cancel_pending_runs(cancel, job_id)
            cancel.commit()
        releaser.join(20)
        assert not releaser.is_alive()
        assert [(r.queued, r.cancelled) for r in released] == [(0, 0)]  # not its run any more
        assert not [r for r in caplog.records if "deadlock" in r.getMessage()]
        assert dt.job.run(run.id).phase is RunPhase.CANCELLED
    finally:
        dt.close()


def test_two_outcome_batches_failing_runs_of_one_schedule_do_not_deadlock(
    pg_backend: Backend, caplog: pytest.LogCaptureFixture
) -> None:
    """Two workers each recorded a run to retry and a run failed for good of one pause_on_failure schedule: each
    batch held its schedule FOR SHARE (to see a cancel) and then paused it, so each waited for the other's share:
    PostgreSQL broke the deadlock after a second, and the store tried the batch again. A batch now locks the
    schedules it decides about first, as their UPDATE does: the second waits for the first."""
    dt = Ductape(pg_backend.url)
    try:
        dt.job.create({"name": "tick", "tag": "tick", "event_type": "FUNCTION", "event_tag": "tick"})
        job_id = dt.job.schedule({**REQ, "retries": 1, "pause_on_failure": True}).job_id
        for _ in range(4):
            dt.job.trigger(job_id)
        now = datetime.now(UTC)
        batches = []
        for worker in ("w1", "w2"):
            retried, failed = dt.store.acquire_runs(worker, 2, timedelta(seconds=30), now)
            batches.append(
                [
                    Outcome(retried.id, retried.attempt, worker, False, now, 5, error="boom", retry_at=now),
                    Outcome(failed.id, failed.attempt, worker, False, now, 5, error="boom"),
                ]
            )
        finishers = [threading.Thread(target=dt.store.finish_runs, args=(batch, now)) for batch in batches]
        with psycopg.connect(PG_URL, options=f"-c search_path={pg_backend.schema}") as other:
            other.execute("SELECT id FROM schedules WHERE id = %s FOR SHARE", (job_id,))  # both batches line up
            for t in finishers:
                t.start()
            time.sleep(0.5)
            other.commit()
        for t in finishers:
            t.join(30)
            assert not t.is_alive()
        assert not [r for r in caplog.records if "deadlock" in r.getMessage()]
        assert dt.job.get(job_id).status is ScheduleStatus.PAUSED
        phases = sorted(r.phase for r in dt.job.runs(job_id=job_id))
        assert phases == sorted([RunPhase.RETRY_SCHEDULED] * 2 + [RunPhase.FAILED] * 2)
    finally:
        dt.close()


@pytest.mark.parametrize("policy", [{"pause_on_failure": True}, {"overlap": "buffer_one"}], ids=["pause", "buffer"])
def test_a_late_failure_and_the_rescue_of_its_run_do_not_deadlock(
    pg_backend: Backend, caplog: pytest.LogCaptureFixture, policy: dict[str, Any]
) -> None:
    """A worker reported a run failed just as the rescue failed it for good (its lease lapsed): the batch locked the
    run's schedule and waited for the run, which the rescue held while it waited for the schedule (to pause it, or
    to release a held run). The batch now locks its failed runs before their schedules."""
    dt = Ductape(pg_backend.url)
    try:
        dt.job.create({"name": "tick", "tag": "tick", "event_type": "FUNCTION", "event_tag": "tick"})
        job_id = dt.job.schedule({**REQ, **policy}).job_id
        dt.job.trigger(job_id)
        now = datetime.now(UTC)
        (run,) = dt.store.acquire_runs("w1", 1, timedelta(seconds=1), now)
        later = now + timedelta(seconds=5)  # its lease has lapsed
        failed = Outcome(run.id, run.attempt, "w1", False, later, 5, error="boom")
        rescue = threading.Thread(target=dt.store.rescue_expired, args=(later, 0))
        finish = threading.Thread(target=dt.store.finish_runs, args=([failed], later))
        with psycopg.connect(PG_URL, options=f"-c search_path={pg_backend.schema}") as slow:
            slow.execute("SELECT 1 FROM attempts WHERE run_id = %s FOR UPDATE", (run.id,))  # the rescue, held
            rescue.start()
            time.sleep(0.4)  # the rescue holds the run, and waits
            finish.start()
            time.sleep(0.4)  # the batch: whatever it holds, it waits
            slow.commit()
        for t in (rescue, finish):
            t.join(30)
            assert not t.is_alive()
        assert not [r for r in caplog.records if "deadlock" in r.getMessage()]
        assert dt.job.run(run.id).phase is RunPhase.FAILED
    finally:
        dt.close()


@pytest.mark.parametrize("call", ["resume", "reschedule"])
def test_a_change_tried_again_after_a_rollback_is_refused_by_a_cancel_made_meanwhile(
    pg_backend: Backend, call: str
) -> None:
    """A resume waited for the schedule's lock while another node cancelled it; its connection was dropped (its try
    rolled back), the cancel committed, and the try again took the cancel's refusal as its own change made."""
    a = Ductape(pg_backend.url)
    try:
        a.job.create({"name": "tick", "tag": "tick", "event_type": "FUNCTION", "event_tag": "tick"})
        job_id = a.job.schedule(REQ).job_id
        a.job.pause(job_id)
        calls = {
            "resume": lambda: a.job.resume(job_id),
            "reschedule": lambda: a.job.reschedule(job_id, {"every": 60_000}),
        }
        got: list[object] = []

        def change() -> None:
            try:
                got.append(calls[call]())
            except ConflictError as exc:
                got.append(exc)

        waiting = threading.Thread(target=change)
        with (
            psycopg.connect(PG_URL, options=f"-c search_path={pg_backend.schema}") as other,
            psycopg.connect(PG_URL, autocommit=True) as admin,
        ):
            other.execute("SELECT 1 FROM schedules WHERE id = %s FOR UPDATE", (job_id,))
            other.execute("UPDATE schedules SET status = 'cancelled', next_run_at = NULL WHERE id = %s", (job_id,))
            waiting.start()
            pids: list[Any] = []
            for _ in range(100):
                pids = admin.execute(
                    "SELECT pid FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE '%%FOR UPDATE%%'"
                    " AND pid <> pg_backend_pid()"
                ).fetchall()
                if pids:
                    break
                time.sleep(0.05)
            assert pids
            admin.execute("SELECT pg_terminate_backend(%s)", (pids[0][0],))  # its try: rolled back
            time.sleep(0.05)
            other.commit()  # the cancel
        waiting.join(30)
        assert len(got) == 1 and isinstance(got[0], ConflictError), got
        assert a.job.get(job_id).status is ScheduleStatus.CANCELLED
    finally:
        a.close()
