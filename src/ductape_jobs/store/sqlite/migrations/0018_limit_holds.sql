-- ductape-jobs schema, version 18 (SQLite): what a full limit holds is kept once per set of limits, not on every
-- run it holds (see the PostgreSQL migration of this version): `limit_holds`, one row per set found full, and
-- runs_limited_sets for next_wakeup's earliest due run of each set. The runs lose `waiting_on` and `held_until`
-- (and runs_held_by_limit, one partial index less to test on every insert and phase change of a run).
CREATE TABLE limit_holds (
    limit_keys TEXT PRIMARY KEY,
    waiting_on TEXT NOT NULL,
    held_until INTEGER NOT NULL
);
DROP INDEX runs_held_by_limit;
ALTER TABLE runs DROP COLUMN waiting_on;
ALTER TABLE runs DROP COLUMN held_until;
CREATE INDEX runs_limited_sets ON runs (limit_keys, available_at)
    WHERE limit_keys IS NOT NULL AND phase IN ('scheduled', 'queued', 'retry_scheduled') AND available_at IS NOT NULL;
