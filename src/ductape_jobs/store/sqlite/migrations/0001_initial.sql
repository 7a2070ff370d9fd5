-- ductape-jobs schema, version 1 (SQLite). Times are integer milliseconds since the Unix epoch, UTC.

CREATE TABLE jobs (
    tag         TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    event_type  TEXT NOT NULL,
    event_tag   TEXT NOT NULL,
    executions  INTEGER NOT NULL DEFAULT 0,
    intervals   INTEGER NOT NULL DEFAULT 0,
    start_at    INTEGER,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);

CREATE TABLE schedules (
    id               TEXT PRIMARY KEY,
    job_tag          TEXT NOT NULL,
    env              TEXT NOT NULL,
    product_tag      TEXT NOT NULL,
    input            TEXT NOT NULL,
    retries          INTEGER NOT NULL,
    app              TEXT,
    cache            TEXT,
    session_tag      TEXT,
    session_claims   TEXT,               -- verified session data as JSON, never the token itself
    cron             TEXT,
    tz               TEXT NOT NULL DEFAULT 'UTC',
    every_ms         INTEGER,
    run_limit        INTEGER,
    end_date         INTEGER,
    follows_job      INTEGER NOT NULL DEFAULT 0,
    timeout_ms       INTEGER,
    misfire          TEXT NOT NULL DEFAULT 'run_once',
    overlap          TEXT NOT NULL DEFAULT 'allow',
    pause_on_failure INTEGER NOT NULL DEFAULT 0,
    status           TEXT NOT NULL,
    start_at         INTEGER NOT NULL,
    next_run_at      INTEGER,
    last_due_at      INTEGER,
    run_count        INTEGER NOT NULL DEFAULT 0,
    skipped_count    INTEGER NOT NULL DEFAULT 0,
    reason           TEXT,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL
);
CREATE INDEX schedules_due ON schedules (next_run_at) WHERE status = 'active' AND next_run_at IS NOT NULL;
CREATE INDEX schedules_job ON schedules (job_tag, status);

CREATE TABLE runs (
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
    updated_at       INTEGER NOT NULL,
    UNIQUE (schedule_id, scheduled_at)
);
CREATE INDEX runs_pending ON runs (available_at)
    WHERE phase IN ('scheduled', 'queued', 'retry_scheduled') AND available_at IS NOT NULL;
CREATE INDEX runs_leases ON runs (lease_expires_at) WHERE phase = 'running';
CREATE INDEX runs_held ON runs (schedule_id) WHERE available_at IS NULL;
CREATE INDEX runs_active ON runs (schedule_id) WHERE phase IN ('scheduled', 'queued', 'retry_scheduled', 'running');
-- Listing by phase: the dead letters have their own index; other phases are found newest-first on runs_time
-- (pending and running ones also through runs_pending and runs_leases). A (phase, time) index would be
-- rewritten at every phase change, the hot path.
CREATE INDEX runs_failed ON runs (scheduled_at, id) WHERE phase = 'failed';
CREATE INDEX runs_time ON runs (scheduled_at, id);
CREATE INDEX runs_job ON runs (job_tag, scheduled_at, id);

CREATE TABLE attempts (
    run_id      TEXT NOT NULL,
    attempt     INTEGER NOT NULL,
    worker_id   TEXT NOT NULL,
    started_at  INTEGER NOT NULL,
    finished_at INTEGER,
    outcome     TEXT,
    error       TEXT,
    PRIMARY KEY (run_id, attempt)
) WITHOUT ROWID;

CREATE TABLE cache_entries (
    key         TEXT PRIMARY KEY,
    value       TEXT,
    expires_at  INTEGER NOT NULL
) WITHOUT ROWID;
