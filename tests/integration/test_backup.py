"""``ductape backup``: a SQLite store copied while another process writes to it, opened (restored) as the docs
say; an existing file and a PostgreSQL store refused."""

from __future__ import annotations

import os
import secrets
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psycopg
import pytest
from typer.testing import CliRunner, Result

from ductape_jobs import Ductape, ValidationError
from ductape_jobs.cli.main import app
from support import require_service

WRITER = textwrap.dedent(
    """
    import sys
    from ductape_jobs import Ductape

    with Ductape(sys.argv[1]) as dt:
        while True:
            dt.job.schedule({"env": "e", "product_tag": "p", "event": "x", "start_at": 0})
    """
)


def cli(*args: str) -> Result:
    env = {"DUCTAPE_APP": None, "DUCTAPE_STORE": None, "DUCTAPE_PRODUCT_FILE": None}
    return CliRunner().invoke(app, list(args), env=env)


def schedules(path: Path) -> int:
    db = sqlite3.connect(path)
    try:
        return int(db.execute("SELECT count(*) FROM schedules").fetchone()[0])
    finally:
        db.close()


def test_a_backup_taken_while_another_process_writes_is_whole_and_restores(tmp_path: Path) -> None:
    live, copy = tmp_path / "jobs.db", tmp_path / "backup.db"
    with Ductape(f"sqlite:///{live}") as dt:
        dt.job.create({"name": "x", "tag": "x", "event_type": "FUNCTION", "event_tag": "x"})
    (tmp_path / "writer.py").write_text(WRITER)
    writer = subprocess.Popen([sys.executable, str(tmp_path / "writer.py"), f"sqlite:///{live}"])
    try:
        deadline = time.monotonic() + 20
        while schedules(live) < 200 and time.monotonic() < deadline:
            time.sleep(0.05)
        before = schedules(live)
        result = cli("backup", str(copy), "--store", f"sqlite:///{live}", "--json")
        after = schedules(live)
    finally:
        writer.kill()
        writer.wait(10)
    assert result.exit_code == 0, (result.output, result.exception)
    assert 200 <= before <= schedules(copy) <= after  # one transaction's view: what was committed when it began
    assert oct(os.stat(copy).st_mode & 0o777) == "0o600"  # it holds what the store holds
    db = sqlite3.connect(copy)
    try:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    finally:
        db.close()
    # restored as docs/how-to/backup.md says: the copy in the store's place, the old -wal and -shm deleted
    os.replace(copy, live)
    for suffix in ("-wal", "-shm"):
        (tmp_path / f"jobs.db{suffix}").unlink(missing_ok=True)
    with Ductape(f"sqlite:///{live}") as dt:
        assert len(dt.job.list(limit=1000)) == min(1000, schedules(live))
        dt.job.schedule({"env": "e", "product_tag": "p", "event": "x"})


def test_a_backup_never_overwrites_and_postgresql_is_pg_dumps(tmp_path: Path) -> None:
    live, taken = tmp_path / "jobs.db", tmp_path / "taken.db"
    Ductape(f"sqlite:///{live}").close()
    taken.write_text("mine")
    refused = cli("backup", str(taken), "--store", f"sqlite:///{live}")
    assert refused.exit_code == 2 and refused.stderr == f"error: to: {str(taken)!r} exists; name a new file\n"
    assert taken.read_text() == "mine" and sorted(p.name for p in tmp_path.iterdir()) == ["jobs.db", "taken.db"]
    require_service("PostgreSQL", "127.0.0.1", 5432)
    schema = f"backup_{secrets.token_hex(6)}"  # a store of its own: the database's public schema holds none
    url = f"postgresql://postgres@127.0.0.1:5432/test?schema={schema}"
    try:
        Ductape(url).close()
        pg = cli("backup", str(tmp_path / "pg.db"), "--store", url)
    finally:
        with psycopg.connect("postgresql://postgres@127.0.0.1:5432/test", autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
    assert pg.exit_code == 2 and "back PostgreSQL up with pg_dump" in pg.stderr
    assert not (tmp_path / "pg.db").exists()


def test_a_backup_to_no_file_or_of_an_in_memory_store_is_refused_naming_it(tmp_path: Path) -> None:
    """An empty name, a NUL, a number or a missing folder raised what the OS call raised (a bare ValueError, a
    TypeError) or a StoreError quoting the temporary file; an in-memory store was "backed up" as an empty file."""
    with Ductape(f"sqlite:///{tmp_path / 'jobs.db'}") as dt:
        for to, rule in (
            ("", "must name a file: text, not empty, without a NUL character"),
            ("a\x00b.db", "must name a file: text, not empty, without a NUL character"),
            (123, "must name a file: text, not empty, without a NUL character"),
            (str(tmp_path / "nowhere" / "b.db"), f"{str(tmp_path / 'nowhere' / 'b.db')!r}: its folder "
             f"{str(tmp_path / 'nowhere')!r} does not exist"),
        ):  # fmt: skip
            with pytest.raises(ValidationError) as err:
                dt.store.backup(to)  # type: ignore[arg-type]
            assert (err.value.field, err.value.rule) == ("to", rule)
        assert dt.store.backup(tmp_path / "as-a-path.db") > 0  # a Path is a name too
    with Ductape("sqlite:///:memory:") as dt, pytest.raises(ValidationError) as err:
        dt.store.backup(str(tmp_path / "memory.db"))
    assert (err.value.field, err.value.rule) == ("store", "an in-memory store has no file to back up")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["as-a-path.db", "jobs.db"]


def test_a_backup_holds_the_live_pages_only_and_the_wal_is_cut_back(tmp_path: Path) -> None:
    """A probe's store after a prune of 2.27 million runs: 3 GB of file, 2 GB of it free pages, which every backup
    carried, and a WAL of 935 MB kept for good. A backup is packed (``VACUUM INTO``); a checkpoint that starts the WAL
    over cuts its file back to ``WAL_KEPT_BYTES``."""
    from ductape_jobs.store.sqlite import dialect

    live, copy = tmp_path / "jobs.db", tmp_path / "backup.db"
    with Ductape(f"sqlite:///{live}") as dt:
        dt.job.create({"name": "x", "tag": "x", "event_type": "FUNCTION", "event_tag": "x"})
        dt.job.schedule_many([{"env": "e", "product_tag": "p", "event": "x", "input": {"pad": "x" * 2000}}] * 2000)
        kept = dt.job.schedule({"env": "e", "product_tag": "p", "event": "x"}).job_id
        for s in dt.job.list(limit=10_000):
            if s.id != kept:
                dt.job.cancel(s.id)
    db = sqlite3.connect(live)
    try:
        db.execute("DELETE FROM runs WHERE schedule_id <> ?", (kept,))  # as a prune leaves the file: pages freed
        db.execute("DELETE FROM schedules WHERE id <> ?", (kept,))
        db.commit()
        assert db.execute("PRAGMA freelist_count").fetchone()[0] > 4_000
        assert db.execute("PRAGMA journal_size_limit").fetchone()[0] == -1  # a connection of its own: the default
    finally:
        db.close()
    result = cli("backup", str(copy), "--store", f"sqlite:///{live}", "--json")
    assert result.exit_code == 0, (result.output, result.exception)
    assert os.path.getsize(copy) < os.path.getsize(live) / 4
    assert schedules(copy) == 1
    store = dialect.SQLiteDialect(str(live))
    try:
        assert store._db.execute("PRAGMA journal_size_limit").fetchone()["journal_size_limit"] == dialect.WAL_KEPT_BYTES
    finally:
        store.close()
