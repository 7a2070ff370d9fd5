"""``Store.promptly``: the calls a worker makes on its event loop. On SQLite a transaction is made at once or refused
(``WouldWait``) before it changes anything: when another process holds the write lock, when another thread is in
a transaction on the same connection, or when a checkpoint is owed. Once a call has written, its later
transactions wait as usual, so a caller that makes a refused call again elsewhere repeats nothing committed. On
PostgreSQL every call waits for the server: ``promptly`` refuses at once."""

from __future__ import annotations

import hashlib
import sqlite3
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from storekit import Backend

from ductape_jobs import Ductape
from ductape_jobs.errors import WouldWait
from ductape_jobs.store.base import Outcome
from ductape_jobs.store.sqlite import dialect

LEASE = timedelta(seconds=30)
JOB = {"name": "n", "tag": "n", "event_type": "FUNCTION", "event_tag": "n"}


def schedule(dt: Ductape, n: int) -> None:
    for i in range(n):
        dt.job.schedule({"env": "prd", "product_tag": "p", "event": "n", "input": {"i": i}, "start_at": 0})


@pytest.fixture
def sqlite_dt(tmp_path: Path) -> Iterator[tuple[Ductape, Path]]:
    path = tmp_path / "jobs.db"
    dt = Ductape(f"sqlite:///{path}")
    try:
        dt.job.create(JOB)
        yield dt, path
    finally:
        dt.close()


class WriteLock:
    """The write lock of the SQLite file at ``path``, held by another connection (as another process would)."""

    def __init__(self, path: Path) -> None:
        self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)

    def take(self) -> None:
        self.db.execute("BEGIN IMMEDIATE")

    def release(self) -> None:
        self.db.execute("ROLLBACK")

    def close(self) -> None:
        self.db.close()


def phases(path: Path) -> list[str]:
    db = sqlite3.connect(path)
    try:
        return sorted(r[0] for r in db.execute("SELECT phase FROM runs"))
    finally:
        db.close()


def test_a_write_is_refused_before_it_changes_anything_while_another_process_holds_the_lock(
    sqlite_dt: tuple[Ductape, Path],
) -> None:
    dt, path = sqlite_dt
    schedule(dt, 2)
    lock = WriteLock(path)
    lock.take()
    try:
        started = time.monotonic()
        with pytest.raises(WouldWait), dt.store.promptly():
            dt.store.acquire_runs("w1", 2, LEASE, datetime.now(UTC))
        assert time.monotonic() - started < 0.5  # refused, not waited for (busy_timeout is 30 s)
        with dt.store.promptly():  # WAL: a read waits for no writer
            assert dt.store.next_wakeup().run_due is not None
    finally:
        lock.release()
        lock.close()
    assert phases(path) == ["queued", "queued"]
    with dt.store.promptly():  # the lock is free: made at once
        assert len(dt.store.acquire_runs("w1", 2, LEASE, datetime.now(UTC))) == 2
    assert phases(path) == ["running", "running"]


def test_a_call_is_refused_while_another_thread_is_in_a_transaction_on_the_connection(
    sqlite_dt: tuple[Ductape, Path],
) -> None:
    dt, path = sqlite_dt
    schedule(dt, 1)
    inside, leave = threading.Event(), threading.Event()

    def hold(tx: object) -> None:
        inside.set()
        leave.wait(5)

    d = dt.store._d  # type: ignore[attr-defined]
    other = threading.Thread(target=lambda: d.transact(hold, write=False))
    other.start()
    try:
        assert inside.wait(5)
        with pytest.raises(WouldWait), dt.store.promptly():
            dt.store.next_wakeup()
    finally:
        leave.set()
        other.join(5)
    assert phases(path) == ["queued"]


def test_once_a_call_wrote_its_later_transactions_wait_rather_than_refuse(sqlite_dt: tuple[Ductape, Path]) -> None:
    """Refusing the second would have the caller make the whole call again, the first write with it."""
    dt, path = sqlite_dt
    schedule(dt, 2)
    lock = WriteLock(path)
    try:
        with dt.store.promptly():
            (first,) = dt.store.acquire_runs("w1", 1, LEASE, datetime.now(UTC))
            lock.take()  # another process writes now, for 0.2 s
            started = time.monotonic()
            release = threading.Timer(0.2, lock.release)
            release.start()
            (second,) = dt.store.acquire_runs("w1", 1, LEASE, datetime.now(UTC))
            waited = time.monotonic() - started
            release.join()
    finally:
        lock.close()
    assert first.id != second.id and waited >= 0.15
    assert phases(path) == ["running", "running"]


def file_bytes(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_prompt_writes_never_checkpoint_and_one_is_refused_when_a_checkpoint_is_owed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A checkpoint copies the WAL into the file and syncs it, tens of milliseconds that would hold the event loop:
    a prompt write leaves it, a batch of outcomes too, and after PROMPT_WRITES_BEFORE_CHECKPOINT of them the next is
    refused, so that it is made where its COMMIT may checkpoint (a claim included); the write after that one may
    start the WAL again (a sync), so it is refused too."""
    monkeypatch.setattr(dialect, "WAL_PAGES", 1)  # every commit is past the threshold
    monkeypatch.setattr(dialect, "PROMPT_WRITES_BEFORE_CHECKPOINT", 2)
    path = tmp_path / "jobs.db"
    with Ductape(f"sqlite:///{path}") as dt:
        dt.job.create(JOB)
        schedule(dt, 5)
        before = file_bytes(path)
        with dt.store.promptly():
            (run,) = dt.store.acquire_runs("w1", 1, LEASE, datetime.now(UTC))
        with dt.store.promptly():  # outcomes and a refilling claim: a commit that may checkpoint, but not promptly
            now = datetime.now(UTC)
            done = [Outcome(run.id, run.attempt, "w1", True, now, 1)]
            assert len(dt.store.finish_and_acquire(done, now, "w1", 1, LEASE).claimed) == 1
        assert file_bytes(path) == before  # in the WAL only
        with pytest.raises(WouldWait, match="checkpoint is owed"), dt.store.promptly():
            dt.store.acquire_runs("w1", 1, LEASE, datetime.now(UTC))
        assert phases(path).count("running") == 1  # as before the refused call (the file: the WAL's pages too)
        assert len(dt.store.acquire_runs("w1", 1, LEASE, datetime.now(UTC))) == 1  # as its store thread makes it
        assert file_bytes(path) != before  # a claim, yet it checkpointed: one was owed
        with pytest.raises(WouldWait, match="start the WAL again"), dt.store.promptly():
            dt.store.acquire_runs("w1", 1, LEASE, datetime.now(UTC))
        assert len(dt.store.acquire_runs("w1", 1, LEASE, datetime.now(UTC))) == 1
        with dt.store.promptly():  # owed no longer
            assert len(dt.store.acquire_runs("w1", 1, LEASE, datetime.now(UTC))) == 1
        assert sorted(phases(path)) == ["completed", "running", "running", "running", "running"]


@pytest.mark.parametrize("bound", ["PROMPT_WRITES_BEFORE_CHECKPOINT", "PROMPT_CHANGES_BEFORE_CHECKPOINT"])
def test_prompt_writes_are_bounded_by_count_and_by_rows_changed(
    sqlite_dt: tuple[Ductape, Path], monkeypatch: pytest.MonkeyPatch, bound: str
) -> None:
    """A schedule() changes 2 rows (about 17 pages of WAL), a worker's batch about 200 (about a hundred pages): both
    bounds keep the WAL near its size before a write is made where it may checkpoint."""
    monkeypatch.setattr(dialect, bound, 4)  # 4 writes, or 4 rows changed: two schedule() calls
    dt, _ = sqlite_dt
    request = {"env": "prd", "product_tag": "p", "event": "n"}
    made = 0
    for _ in range(6):
        try:
            with dt.store.promptly():
                dt.job.schedule(request)
            made += 1
        except WouldWait:
            break
    assert made == (4 if bound == "PROMPT_WRITES_BEFORE_CHECKPOINT" else 2)
    assert len(dt.store.list_schedules()) == made  # the refused one wrote nothing


def test_a_prompt_write_that_would_send_large_rows_is_rolled_back_and_refused(
    sqlite_dt: tuple[Ductape, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Large outputs would hold the event loop for the milliseconds their rows take to send and write: refused
    once the write sees them, before it sends any of its rows (a large one goes by a statement of its own, the
    rest as one JSON list: both are counted first), and rolled back, so the caller makes it elsewhere and nothing is
    recorded twice."""
    monkeypatch.setattr(dialect, "PROMPT_BYTES_A_WRITE", 10_000)
    dt, path = sqlite_dt
    schedule(dt, 8)
    runs = dt.store.acquire_runs("w1", 8, LEASE, datetime.now(UTC))
    now = datetime.now(UTC)
    # two outputs over LARGE_TEXT (bound, 4 KB) and six under it (one JSON list, 6 KB): under the budget apart
    texts = ["x" * 2_000] * 2 + ["y" * 1_000] * 6
    done = [Outcome(r.id, r.attempt, "w1", True, now, 1, output=t) for r, t in zip(runs, texts, strict=True)]
    sent: list[str] = []
    db: sqlite3.Connection = dt.store._d._db  # type: ignore[attr-defined]
    db.set_trace_callback(sent.append)
    try:
        with pytest.raises(WouldWait, match="more than a prompt write sends"), dt.store.promptly():
            dt.store.finish_runs(done, now)
    finally:
        db.set_trace_callback(None)
    assert not [q for q in sent if "UPDATE" in q]  # refused before any row was sent
    assert phases(path) == ["running"] * 8  # none: the transaction was rolled back
    dt.store.finish_runs(done, now)  # as the store thread makes it
    assert phases(path) == ["completed"] * 8
    assert [dt.store.get_run(r.id).output for r in runs] == texts  # type: ignore[union-attr]


def test_a_prompt_schedule_with_a_large_input_is_rolled_back_and_refused(
    sqlite_dt: tuple[Ductape, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A schedule's input is written twice (the schedule and its first run): large ones would hold the loop and
    fill the WAL, so their texts count against a prompt write's budget as outputs do."""
    monkeypatch.setattr(dialect, "PROMPT_BYTES_A_WRITE", 10_000)
    dt, _ = sqlite_dt
    request = {"env": "prd", "product_tag": "p", "event": "n"}
    with dt.store.promptly():
        dt.job.schedule({**request, "input": {"k": "x" * 1_000}})
    with pytest.raises(WouldWait, match="more than a prompt write sends"), dt.store.promptly():
        dt.job.schedule({**request, "input": {"k": "x" * 6_000}})
    assert len(dt.store.list_schedules()) == 1
    dt.job.schedule({**request, "input": {"k": "x" * 6_000}})  # as a thread makes it
    assert len(dt.store.list_schedules()) == 2


def test_a_read_that_meets_a_lock_is_refused_and_busy_timeout_is_back_for_the_next_ordinary_read(
    sqlite_dt: tuple[Ductape, Path],
) -> None:
    """In WAL mode a read meets a lock only for a moment (another connection recovering the WAL, or a checkpoint
    resetting it), which no test can time: the driver's error stands for it. A prompt read runs with busy_timeout
    0 (refused at once); an ordinary read has it back."""
    dt, _ = sqlite_dt
    d = dt.store._d  # type: ignore[attr-defined]

    def locked(tx: object) -> None:
        raise sqlite3.OperationalError("database is locked")

    with pytest.raises(WouldWait, match="locked"), dt.store.promptly():
        d.transact(locked, write=False)
    assert next(iter(d._db.execute("PRAGMA busy_timeout").fetchone().values())) == 0
    assert not d._db.in_transaction
    dt.store.next_wakeup()
    assert next(iter(d._db.execute("PRAGMA busy_timeout").fetchone().values())) == 30_000


def test_postgresql_refuses_at_once_so_a_worker_makes_every_call_in_its_store_thread(pg_backend: Backend) -> None:
    store = pg_backend.open()
    try:
        assert not store.capabilities.prompt
        with pytest.raises(WouldWait), store.promptly():
            pytest.fail("the block must not run")
    finally:
        store.close()
    with Ductape(pg_backend.url) as dt:
        dt.job.create(JOB)
        dt.function("n")(lambda input, ctx: None)
        schedule(dt, 3)
        threads: list[threading.Thread] = []
        for name in ("next_wakeup", "acquire_runs", "finish_runs", "finish_and_acquire"):
            real = getattr(dt.store, name)

            def spy(*args: object, _real: Any = real) -> Any:
                threads.append(threading.current_thread())
                return _real(*args)

            setattr(dt.store, name, spy)
        assert dt.drain().completed == 3
    assert threads and all(t.name.startswith("ductape-store ") for t in threads)
