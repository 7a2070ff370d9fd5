-- ductape-jobs schema, version 1 (PostgreSQL). The same tables and columns as the SQLite store, so the
-- shared row converters (store/codec.py) read both: times are BIGINT milliseconds since the Unix epoch
-- (UTC), JSON values are TEXT (json.dumps output, key order kept), flags are SMALLINT 0/1.

CREATE TABLE jobs (
    tag         TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    event_type  TEXT NOT NULL,
    event_tag   TEXT NOT NULL,
    executions  INTEGER NOT NULL DEFAULT 0,
    intervals   BIGINT NOT NULL DEFAULT 0,
    start_at    BIGINT,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
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
    session_claims   TEXT,               -- verified session data (JSON), never the token itself
    cron             TEXT,
    tz               TEXT NOT NULL DEFAULT 'UTC',
    every_ms         BIGINT,
    run_limit        INTEGER,
    end_date         BIGINT,
    follows_job      SMALLINT NOT NULL DEFAULT 0,
    timeout_ms       BIGINT,
    misfire          TEXT NOT NULL DEFAULT 'run_once',
    overlap          TEXT NOT NULL DEFAULT 'allow',
    pause_on_failure SMALLINT NOT NULL DEFAULT 0,
    status           TEXT NOT NULL,
    start_at         BIGINT NOT NULL,
    next_run_at      BIGINT,
    last_due_at      BIGINT,
    run_count        INTEGER NOT NULL DEFAULT 0,
    skipped_count    INTEGER NOT NULL DEFAULT 0,
    reason           TEXT,
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL
);
CREATE INDEX schedules_due ON schedules (next_run_at) WHERE status = 'active' AND next_run_at IS NOT NULL;
CREATE INDEX schedules_job ON schedules (job_tag, status);

CREATE TABLE runs (
    id               TEXT PRIMARY KEY,
    schedule_id      TEXT NOT NULL,
    scheduled_at     BIGINT NOT NULL,
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
    available_at     BIGINT,             -- NULL: held behind a running run (overlap = buffer_one)
    triggered_by     TEXT NOT NULL,
    overlap          TEXT NOT NULL DEFAULT 'allow',
    max_retries      INTEGER NOT NULL,
    retry_count      INTEGER NOT NULL DEFAULT 0,
    attempt          INTEGER NOT NULL DEFAULT 0,
    rescues          INTEGER NOT NULL DEFAULT 0,
    timeout_ms       BIGINT,
    started_at       BIGINT,
    completed_at     BIGINT,
    duration_ms      BIGINT,
    error            TEXT,
    output           TEXT,
    lease_owner      TEXT,
    lease_expires_at BIGINT,
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL,
    -- Each (schedule, due time) is at most one run, however many schedulers race to create it.
    CONSTRAINT runs_one_per_occurrence UNIQUE (schedule_id, scheduled_at)
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
    started_at  BIGINT NOT NULL,
    finished_at BIGINT,
    outcome     TEXT,
    error       TEXT,
    PRIMARY KEY (run_id, attempt)
);

CREATE TABLE cache_entries (
    key         TEXT PRIMARY KEY,
    value       TEXT,
    expires_at  BIGINT NOT NULL
);
