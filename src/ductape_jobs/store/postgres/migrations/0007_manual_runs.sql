-- ductape-jobs schema, version 7 (PostgreSQL): a manual run (job.trigger) is a run of its own. The rule "at most
-- one run per (schedule, due time)" holds for the runs the scheduler makes, never for manual ones: a trigger at
-- the instant an occurrence falls due, or two triggers in one millisecond, no longer collide, and an occurrence
-- made after a manual run at its time is no longer swallowed by it.
-- The rule becomes a partial unique index (inserts name it: ON CONFLICT (schedule_id, scheduled_at) WHERE
-- triggered_by <> 'manual'); runs_schedule serves the reads by schedule, which the constraint's index did.

ALTER TABLE runs DROP CONSTRAINT runs_one_per_occurrence;
CREATE UNIQUE INDEX runs_one_per_occurrence ON runs (schedule_id, scheduled_at) WHERE triggered_by <> 'manual';
CREATE INDEX runs_schedule ON runs (schedule_id, scheduled_at);
