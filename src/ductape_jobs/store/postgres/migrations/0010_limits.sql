-- ductape-jobs schema, version 10 (PostgreSQL): shared resources (concurrency and rate limits) and priorities.
-- (Versions 9 and 11 are other changes'.)
--
-- A resource is a row of `resources`, keyed '<product>/<name>' (a job's own limit: '<product>/job:<tag>').
-- A job names the keys its runs fall under (`limit_keys`, a sorted JSON list, NULL for none); each run
-- copies them when it is made. Runs without keys never touch the resource tables (the claim's fast path).
-- Running runs are counted against `concurrency`; recent starts (`resource_starts`) against the rate,
-- a sliding window of `rate_window_ms`.
-- `priority` (-100..100) ages: a run is claimed as though it fell due `priority` seconds earlier.

CREATE TABLE resources (
    key            TEXT PRIMARY KEY,
    product_tag    TEXT NOT NULL,
    name           TEXT NOT NULL,
    concurrency    INTEGER,
    rate_count     INTEGER,
    rate_window_ms BIGINT,
    updated_at     BIGINT NOT NULL
);

CREATE TABLE resource_starts (
    key        TEXT NOT NULL,
    started_at BIGINT NOT NULL,
    run_id     TEXT NOT NULL
);
CREATE INDEX resource_starts_key ON resource_starts (key, started_at);

ALTER TABLE jobs ADD COLUMN resources TEXT;
ALTER TABLE jobs ADD COLUMN concurrency INTEGER;
ALTER TABLE jobs ADD COLUMN rate TEXT;
ALTER TABLE jobs ADD COLUMN priority INTEGER NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN limit_keys TEXT;

ALTER TABLE schedules ADD COLUMN priority INTEGER;

ALTER TABLE runs ADD COLUMN priority INTEGER NOT NULL DEFAULT 0;
ALTER TABLE runs ADD COLUMN limit_keys TEXT;
ALTER TABLE runs ADD COLUMN waiting_on TEXT;
ALTER TABLE runs ADD COLUMN held_until BIGINT;  -- a held run's next look (next_wakeup), not before it may fit

-- The claim's order: due time aged by priority (1 point = 1 second).
CREATE INDEX runs_claim ON runs ((available_at - priority * 1000))
    WHERE phase IN ('scheduled', 'queued', 'retry_scheduled') AND available_at IS NOT NULL AND limit_keys IS NULL;
CREATE INDEX runs_claim_limited ON runs ((available_at - priority * 1000))
    WHERE phase IN ('scheduled', 'queued', 'retry_scheduled') AND available_at IS NOT NULL AND limit_keys IS NOT NULL;
CREATE INDEX runs_held_by_limit ON runs (held_until)
    WHERE phase IN ('scheduled', 'queued', 'retry_scheduled') AND held_until IS NOT NULL;
CREATE INDEX runs_limited_running ON runs (limit_keys) WHERE phase = 'running' AND limit_keys IS NOT NULL;
