-- ductape-jobs schema, version 18 (PostgreSQL): what a full limit holds is kept once per set of limits, not on
-- every run it holds. Before, a claim that found a set full wrote `waiting_on` and `held_until` on every due run
-- of that set, and did again each time the hold lapsed (a concurrency's every second): 100,000 runs queued behind
-- a limit of 2 were 100,000 rows rewritten a second. Now a claim writes one row of `limit_holds` per set found
-- full (why, and when to look again); next_wakeup reads each set's earliest due run (runs_limited_sets, one
-- probe per distinct set) against its hold, and the runs waiting show the hold's `waiting_on`.
CREATE TABLE limit_holds (
    limit_keys TEXT PRIMARY KEY,   -- a run's limit_keys (a sorted JSON list)
    waiting_on TEXT NOT NULL,      -- which limit holds it, as the claim found it
    held_until BIGINT NOT NULL     -- when a claim looks again (a rate's window frees; a concurrency's recheck)
);
DROP INDEX runs_held_by_limit;
DROP INDEX runs_due;
ALTER TABLE runs DROP COLUMN waiting_on, DROP COLUMN held_until;
-- next_wakeup's earliest run under no limit (runs under limits: by set, below)
CREATE INDEX runs_due ON runs (available_at)
    WHERE phase IN ('scheduled', 'queued', 'retry_scheduled') AND available_at IS NOT NULL AND limit_keys IS NULL;
CREATE INDEX runs_limited_sets ON runs (limit_keys, available_at)
    WHERE phase IN ('scheduled', 'queued', 'retry_scheduled') AND available_at IS NOT NULL AND limit_keys IS NOT NULL;
