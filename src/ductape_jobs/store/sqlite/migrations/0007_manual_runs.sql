-- ductape-jobs schema, version 7 (SQLite): a manual run (job.trigger) is a run of its own. The rule "at most one
-- run per (schedule, due time)" holds for the runs the scheduler makes, never for manual ones: a trigger at the
-- instant an occurrence falls due, or two triggers in one millisecond, no longer collide, and an occurrence made
-- after a manual run at its time is no longer swallowed by it.
-- SQLite cannot drop a table's UNIQUE constraint, so runs is rebuilt with the same columns in the same order,
-- without it; the rule becomes a partial unique index, and runs_schedule serves the reads by schedule.

CREATE TABLE runs_v6 (
    id               TEXT PRIMARY KEY,
    schedule_id      TEXT NOT NULL,
    scheduled_at     INTEGER NOT NULL,
    job_tag          TEXT NOT NULL,
    product_tag      TEXT NOT NULL,
    env              TEXT NOT NULL,
    event_type       TEXT NOT NULL,
    event_tag        TEXT NOT NULL,
    app              TEXT,
    cache            TEXT,
    session_claims   TEXT,
    input            TEXT NOT NULL,
    phase            TEXT NOT NULL,
    available_at     INTEGER,            -- NULL: held behind a running run (overlap = buffer_one)
    triggered_by     TEXT NOT NULL,
    overlap          TEXT NOT NULL DEFAULT 'allow',
    max_retries      INTEGER NOT NULL,
    retry_count      INTEGER NOT NULL DEFAULT 0,
    attempt          INTEGER NOT NULL DEFAULT 0,
    rescues          INTEGER NOT NULL DEFAULT 0,
    timeout_ms       INTEGER,
    started_at       INTEGER,
    completed_at     INTEGER,
    duration_ms      INTEGER,
    error            TEXT,
    output           TEXT,
    lease_owner      TEXT,
    lease_expires_at INTEGER,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL
);
INSERT INTO runs_v6 SELECT * FROM runs;
DROP TABLE runs;
ALTER TABLE runs_v6 RENAME TO runs;

-- Each (schedule, due time) is at most one scheduled run, however many schedulers race to create it.
CREATE UNIQUE INDEX runs_one_per_occurrence ON runs (schedule_id, scheduled_at) WHERE triggered_by <> 'manual';
CREATE INDEX runs_schedule ON runs (schedule_id, scheduled_at);
-- The indexes of versions 1 and 2, as they were (dropped with the old table).
CREATE INDEX runs_pending ON runs (available_at)
    WHERE phase IN ('scheduled', 'queued', 'retry_scheduled') AND available_at IS NOT NULL;
CREATE INDEX runs_leases ON runs (lease_expires_at) WHERE phase = 'running';
CREATE INDEX runs_held ON runs (schedule_id) WHERE available_at IS NULL;
CREATE INDEX runs_active ON runs (schedule_id) WHERE phase IN ('scheduled', 'queued', 'retry_scheduled', 'running');
CREATE INDEX runs_failed ON runs (scheduled_at, id) WHERE phase = 'failed';
CREATE INDEX runs_time ON runs (scheduled_at, id);
CREATE INDEX runs_job ON runs (job_tag, scheduled_at, id);
CREATE INDEX runs_ended ON runs (completed_at) WHERE completed_at IS NOT NULL;
