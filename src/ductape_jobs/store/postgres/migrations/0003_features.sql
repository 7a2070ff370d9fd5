-- ductape-jobs schema, version 3 (PostgreSQL): feature runs and the result of each of their events.
-- Times are BIGINT milliseconds since the Unix epoch, UTC; JSON values are TEXT.

CREATE TABLE feature_runs (
    id               TEXT PRIMARY KEY,   -- the job run's id when a job runs the feature
    product_tag      TEXT NOT NULL,
    env              TEXT NOT NULL,
    feature_tag      TEXT NOT NULL,
    input            TEXT NOT NULL,
    session_claims   TEXT,               -- verified session data, never the token itself
    status           TEXT NOT NULL,      -- running, completed, failed
    error            TEXT,
    lease_owner      TEXT,               -- the driver running it now
    lease_expires_at BIGINT,
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL,
    completed_at     BIGINT
);
CREATE INDEX feature_runs_time ON feature_runs (created_at, id);
CREATE INDEX feature_runs_feature ON feature_runs (feature_tag, created_at, id);
CREATE INDEX feature_runs_unfinished ON feature_runs (lease_expires_at) WHERE status = 'running';

CREATE TABLE feature_events (
    feature_run_id   TEXT NOT NULL,
    sequence_tag     TEXT NOT NULL,
    event_tag        TEXT NOT NULL,
    event_type       TEXT NOT NULL,
    position         INTEGER NOT NULL,   -- order in the feature's plan
    status           TEXT NOT NULL,      -- pending, running, retrying, completed, failed, skipped
    attempts         INTEGER NOT NULL DEFAULT 0,
    output           TEXT,
    job_id           TEXT,               -- a JOB event: the schedule it made (it has no output)
    error            TEXT,
    started_at       BIGINT,
    completed_at     BIGINT,
    PRIMARY KEY (feature_run_id, sequence_tag, event_tag)
);
