"""SQLite: a commit that claims runs never checkpoints the WAL into the file (the checkpoint takes tens of
milliseconds, and the runs it claimed would start that much late); the next write that claims nothing does.

WAL_PAGES is set to 1 so that every commit is past the threshold; the database file's bytes show whether a
checkpoint ran (the WAL's pages are copied into it)."""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from ductape_jobs import Ductape
from ductape_jobs.store.base import Outcome
from ductape_jobs.store.sqlite import dialect

LEASE = timedelta(seconds=30)


def file_bytes(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def three_due(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Ductape, Path]]:
    """A SQLite store past the checkpoint threshold at every commit, with three runs due."""
    monkeypatch.setattr(dialect, "WAL_PAGES", 1)
    path = tmp_path / "jobs.db"
    dt = Ductape(f"sqlite:///{path}")
    try:
        dt.job.create({"name": "n", "tag": "n", "event_type": "FUNCTION", "event_tag": "n"})
        for i in range(3):
            dt.job.schedule({"env": "prd", "product_tag": "p", "event": "n", "input": {"i": i}, "start_at": 0})
        yield dt, path
    finally:
        dt.close()


def test_a_claims_commit_leaves_the_checkpoint_to_the_next_write(three_due: tuple[Ductape, Path]) -> None:
    dt, path = three_due
    before = file_bytes(path)  # every write so far checkpointed: the file holds them

    runs = dt.store.acquire_runs("w1", 2, LEASE, datetime.now(UTC))
    assert len(runs) == 2
    assert file_bytes(path) == before  # the claim's pages are in the WAL only

    now = datetime.now(UTC)
    dt.store.finish_runs([Outcome(r.id, r.attempt, "w1", True, now, 1) for r in runs], now)
    assert file_bytes(path) != before  # this commit checkpointed, the claim's pages with its own

    after_finish = file_bytes(path)
    created, claimed = dt.store.advance_due_and_acquire(
        now, 10, lambda due: pytest.fail("no schedule is due"), "w1", 5, LEASE
    )
    assert (created, len(claimed)) == ([], 1)
    assert file_bytes(path) == after_finish  # a tick's claim does not checkpoint either


def test_claims_in_a_row_checkpoint_now_and_then_so_the_wal_stays_bounded(
    three_due: tuple[Ductape, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where nothing but claims writes, the CLAIMS_BEFORE_CHECKPOINT-th claim in a row may checkpoint."""
    monkeypatch.setattr(dialect, "CLAIMS_BEFORE_CHECKPOINT", 3)
    dt, path = three_due
    seen = [file_bytes(path)]
    for _ in range(3):
        assert len(dt.store.acquire_runs("w1", 1, LEASE, datetime.now(UTC))) == 1
        seen.append(file_bytes(path))
    assert seen[0] == seen[1] == seen[2] != seen[3]  # the third claim in a row checkpointed


def test_outcomes_recorded_with_a_refilling_claim_may_checkpoint(three_due: tuple[Ductape, Path]) -> None:
    """A worker records every batch of outcomes with the claim that refills their slots: that commit, the bulk of
    what it writes, may checkpoint, so the WAL stays at its bound while a backlog is worked off."""
    dt, path = three_due
    before = file_bytes(path)
    (run,) = dt.store.acquire_runs("w1", 1, LEASE, datetime.now(UTC))
    assert file_bytes(path) == before
    now = datetime.now(UTC)
    assert (
        len(
            dt.store.finish_and_acquire([Outcome(run.id, run.attempt, "w1", True, now, 1)], now, "w1", 1, LEASE).claimed
        )
        == 1
    )
    assert file_bytes(path) != before  # checkpointed: the claim's pages and its own


def _page_size(path: Path) -> int:
    db = sqlite3.connect(path)
    try:
        return int(db.execute("PRAGMA page_size").fetchone()[0])
    finally:
        db.close()


def _wal_frame_bytes(path: Path) -> int:
    """The bytes of one WAL frame of ``path``'s WAL: its 24-byte header and one page."""
    return 24 + _page_size(path)


def test_a_new_file_has_small_pages_so_a_schedule_writes_little_wal(tmp_path: Path) -> None:
    """A commit writes every page it changed to the WAL whole: with 1 KB pages one schedule() appends about a
    quarter of what 4 KB pages cost (both tables and their indexes change a page each)."""
    path = tmp_path / "jobs.db"
    with Ductape(f"sqlite:///{path}") as dt:
        dt.job.create({"name": "n", "tag": "n", "event_type": "FUNCTION", "event_tag": "n"})
        dt.job.schedule({"env": "prd", "product_tag": "p", "event": "n"})  # the tables' first pages exist
        before = Path(f"{path}-wal").stat().st_size
        dt.job.schedule({"env": "prd", "product_tag": "p", "event": "n"})
        appended = Path(f"{path}-wal").stat().st_size - before
    assert _page_size(path) == dialect.PAGE_SIZE == 1024
    assert appended % _wal_frame_bytes(path) == 0
    assert appended // _wal_frame_bytes(path) * 1024 < 20 * 1024  # about twelve pages of 1 KB, not of 4 KB


def test_a_file_made_with_other_pages_keeps_them_and_works(tmp_path: Path) -> None:
    """A file made before (SQLite's default 4 KB pages, in WAL mode) is opened as it is: its page size cannot
    change in WAL mode, and need not."""
    path = tmp_path / "jobs.db"
    db = sqlite3.connect(path)
    db.execute("PRAGMA page_size = 4096")
    db.execute("PRAGMA journal_mode = WAL")
    db.execute("CREATE TABLE made_before (x)")
    db.close()
    with Ductape(f"sqlite:///{path}") as dt:
        dt.job.create({"name": "n", "tag": "n", "event_type": "FUNCTION", "event_tag": "n"})
        result = dt.job.schedule({"env": "prd", "product_tag": "p", "event": "n", "input": {"k": "x" * 5000}})
        assert dt.job.get(result.job_id).input == {"k": "x" * 5000}
    assert _page_size(path) == 4096
