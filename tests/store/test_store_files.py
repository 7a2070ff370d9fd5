"""The store at rest: a new SQLite file (and its -wal/-shm) is 0600; store URLs with parameters the backend does
not know are refused; a database that cannot be written is a ``StoreError`` naming its path."""

from __future__ import annotations

import os
import stat
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from ductape_jobs import Ductape, StoreError, ValidationError
from ductape_jobs.store import open_store

JOB = {"name": "Report", "tag": "report", "event_type": "FUNCTION", "event_tag": "report"}


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def loose_umask() -> Iterator[None]:
    old = os.umask(0o022)  # what most shells have: new files would be 0644
    try:
        yield
    finally:
        os.umask(old)


def test_a_new_sqlite_file_and_its_wal_and_shm_are_private(tmp_path: Path, loose_umask: None) -> None:
    db = tmp_path / "jobs.db"
    with Ductape(f"sqlite:///{db}") as dt:
        dt.job.create(JOB)
        dt.job.list()
        wal, shm = tmp_path / "jobs.db-wal", tmp_path / "jobs.db-shm"
        assert wal.exists() and shm.exists()
        assert (mode(db), mode(wal), mode(shm)) == (0o600, 0o600, 0o600)
    assert mode(db) == 0o600


def test_an_existing_file_keeps_the_mode_its_owner_gave_it(tmp_path: Path, loose_umask: None) -> None:
    db = tmp_path / "jobs.db"
    db.touch(mode=0o640)
    db.chmod(0o640)
    with Ductape(f"sqlite:///{db}") as dt:
        dt.job.create(JOB)
    assert mode(db) == 0o640


@pytest.mark.parametrize("query", ["mode=ro", "cache=shared&mode=rwc", "timeout"])
def test_sqlite_urls_take_no_parameters(tmp_path: Path, query: str) -> None:
    url = f"sqlite:///{tmp_path / 'x.db'}?{query}"
    with pytest.raises(ValidationError) as raised:
        open_store(url)
    assert raised.value.field == "store"
    assert f"unknown parameter {query.split('=')[0]!r}" in raised.value.rule and "known: none" in raised.value.rule
    assert list(tmp_path.iterdir()) == []  # neither x.db nor "x.db?mode=ro" was created
    with pytest.raises(ValidationError):
        Ductape(url)


@pytest.mark.parametrize(
    "url",
    ["mysql://admin:Sup3rS3cretPw@db.example/jobs", "sqlite:////tmp/x.db?password=Sup3rS3cretPw&mode=ro"],
)
def test_a_refused_store_url_is_named_without_its_password(url: str) -> None:
    with pytest.raises(ValidationError) as raised:
        open_store(url)
    assert raised.value.field == "store" and "***" in str(raised.value)
    assert "Sup3rS3cretPw" not in str(raised.value)


@pytest.mark.parametrize(
    ("query", "named"),
    [
        ("sslmod=require", "'sslmod'"),
        ("schema=jobs&pool_size=4", "'pool_size'"),
        ("pool_max=lots", "pool_max='lots'"),
        ("pool_min=0", "pool_min='0'"),
        ("pool_timeout=-1", "pool_timeout='-1'"),
        # a ValueError from psycopg_pool naming neither, and a traceback from the CLI
        ("pool_min=3&pool_max=2", "pool_min=3 must be at most pool_max (2)"),
        ("pool_min=20", "pool_min=20 must be at most pool_max, 8 by default"),
        # the last one won, silently
        ("schema=jobs&schema=other", "'schema' is given more than once"),
        ("sslmode=disable&sslmode=require", "'sslmode' is given more than once"),
        # libpq reads it only in the pool (the first probe sets its own): 10 s of retries, then a vague reason
        ("connect_timeout=abc", "connect_timeout='abc' must be a whole number of seconds"),
        # a review: int() and float() read digits that are not ASCII, and underscores
        ("pool_max=\u0665", "pool_max='\u0665'"),
        ("pool_min=\uff12", "pool_min='\uff12'"),
        ("pool_timeout=\u0661\u0660", "pool_timeout='\u0661\u0660'"),
        ("pool_max=1_0", "pool_max='1_0'"),
    ],
)
def test_postgres_urls_with_unknown_or_bad_parameters_are_refused(query: str, named: str) -> None:
    pytest.importorskip("psycopg")
    url = f"postgresql://nobody@127.0.0.1:1/none?{query}"  # refused before any connection is tried
    with pytest.raises(ValidationError) as raised:
        open_store(url)
    assert raised.value.field == "store" and named in raised.value.rule
    if "unknown" in raised.value.rule:
        for known in ("schema", "pool_max", "sslmode", "connect_timeout", "application_name"):
            assert known in raised.value.rule


def test_a_pool_of_fewer_connections_at_most_than_at_least_is_refused_as_made() -> None:
    pytest.importorskip("psycopg")
    from ductape_jobs.store.postgres import PostgresStore

    for sizes in ({"min_size": 5, "max_size": 2}, {"min_size": 9}, {"min_size": -1}, {"max_size": 0}):
        with pytest.raises(ValidationError, match=r"^store: min_size=-?\d+ and max_size=-?\d+: 1 <= min_size <= max"):
            PostgresStore("postgresql://nobody@127.0.0.1:1/none", **sizes)  # before any connection


def test_a_store_under_a_file_is_a_store_error_naming_the_path(tmp_path: Path) -> None:
    (tmp_path / "plain").write_text("not a directory")
    path = tmp_path / "plain" / "jobs.db"
    with pytest.raises(StoreError, match="cannot create the SQLite store") as raised:
        Ductape(f"sqlite:///{path}")
    assert str(path) in str(raised.value)


def test_a_store_url_naming_a_directory_says_so(tmp_path: Path) -> None:
    """``sqlite:////tmp`` said "the file or its directory is read-only or not writable" (a new-user probe)."""
    with pytest.raises(StoreError) as raised:
        Ductape(f"sqlite:///{tmp_path}")
    assert str(raised.value) == f"cannot open the SQLite store {str(tmp_path)!r}: it is a directory; name a file in it"


@pytest.fixture
def read_only_dir(tmp_path: Path) -> Iterator[Path]:
    """A tmpfs holding a migrated ``jobs.db``, remounted read-only (root ignores file modes, not this)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a read-only tmpfs needs root")
    where = tmp_path / f"ro-{uuid.uuid4().hex[:6]}"
    where.mkdir()
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(where)], capture_output=True)
    if made.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {made.stderr.decode().strip()}")
    try:
        with Ductape(f"sqlite:///{where / 'jobs.db'}") as dt:
            dt.job.create(JOB)
        subprocess.run(["mount", "-o", "remount,ro", str(where)], check=True, capture_output=True)
        with pytest.raises(OSError):
            (where / "probe").touch()
        yield where
    finally:  # lazily when busy (a store that failed to close its file), so no mount outlives the test
        if subprocess.run(["umount", str(where)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(where)], check=True)


def test_a_read_only_database_is_a_store_error_naming_the_path(read_only_dir: Path) -> None:
    path = read_only_dir / "jobs.db"
    with pytest.raises(StoreError, match="read-only or not writable") as raised:
        Ductape(f"sqlite:///{path}")
    assert repr(str(path)) in str(raised.value)
    assert raised.value.__cause__ is not None


def test_a_new_database_in_a_read_only_directory_is_a_store_error_naming_the_path(read_only_dir: Path) -> None:
    path = read_only_dir / "new.db"
    with pytest.raises(StoreError, match="Read-only file system") as raised:
        Ductape(f"sqlite:///{path}")
    assert repr(str(path)) in str(raised.value)


def test_a_write_waits_for_another_process_s_write_lock_then_takes_it(tmp_path: Path) -> None:
    """SQLite's write lock is polled for (every 0.1 to 2 ms) while another connection holds it: the write goes
    through once it is released, within the busy timeout; past the timeout it is a StoreError naming the path."""
    import sqlite3
    import threading
    import time
    from datetime import UTC, datetime, timedelta

    from ductape_jobs.inputs import JobDefinition
    from ductape_jobs.store.sqlite import SQLiteStore

    path = tmp_path / "locked.db"
    store = SQLiteStore(str(path), busy_timeout=timedelta(seconds=0.5))
    store.migrate()
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")  # another process's writer, holding the lock
    threading.Timer(0.2, other.execute, ["COMMIT"]).start()
    started = time.monotonic()
    job = JobDefinition(name="a", tag="a", event_type="FUNCTION", event_tag="a")
    store.create_job(job, datetime.now(UTC))  # waits about 0.2 s, then writes
    assert 0.15 <= time.monotonic() - started < 0.5
    assert store.get_job("", "a") is not None
    other.execute("BEGIN IMMEDIATE")
    with pytest.raises(StoreError, match="locked"):
        store.create_job(job.model_copy(update={"tag": "b"}), datetime.now(UTC))
    other.execute("ROLLBACK")
    assert store.get_job("", "b") is None
    other.close()
    store.close()
