-- ductape-jobs schema, version 27 (SQLite): the partial indexes of runs name their phases one by one.
-- SQLite evaluates a partial index's WHERE for every run it inserts and every run whose phase a statement changes.
-- A constant list of three or more (phase IN ('scheduled', 'queued', 'retry_scheduled')) is evaluated by building
-- a temporary b-tree of the list, once each time the statement runs: for a schedule()'s first run, three of them
-- (runs_pending, runs_active, runs_claim; bench/instructions.py: 10% of a call's instructions, memset aside). The
-- same test written as comparisons (phase = 'scheduled' OR ...) builds none. The indexes hold the same rows; every
-- query that reads one names the phases the same way (a partial index serves a query whose WHERE implies its own).
DROP INDEX runs_pending;
CREATE INDEX runs_pending ON runs (available_at)
    WHERE (phase = 'scheduled' OR phase = 'queued' OR phase = 'retry_scheduled') AND available_at IS NOT NULL;
DROP INDEX runs_active;
CREATE INDEX runs_active ON runs (schedule_id)
    WHERE (phase = 'scheduled' OR phase = 'queued' OR phase = 'retry_scheduled' OR phase = 'running');
DROP INDEX runs_claim;
CREATE INDEX runs_claim ON runs ((available_at - priority * 1000))
    WHERE (phase = 'scheduled' OR phase = 'queued' OR phase = 'retry_scheduled') AND available_at IS NOT NULL
      AND limit_keys IS NULL;
DROP INDEX runs_claim_limited;
CREATE INDEX runs_claim_limited ON runs ((available_at - priority * 1000))
    WHERE limit_keys IS NOT NULL AND (phase = 'scheduled' OR phase = 'queued' OR phase = 'retry_scheduled')
      AND available_at IS NOT NULL;
DROP INDEX runs_limited_sets;
CREATE INDEX runs_limited_sets ON runs (limit_keys, available_at)
    WHERE limit_keys IS NOT NULL AND (phase = 'scheduled' OR phase = 'queued' OR phase = 'retry_scheduled')
      AND available_at IS NOT NULL;
