-- ductape-jobs schema, version 23 (PostgreSQL): a schedule made without `repeat` follows its job's cadence whatever that was
-- when it was made. Before, one made while its job had no intervals was a one-off of its own: a job.update that
-- gave the job intervals did not make it repeat. Such a schedule has neither cron nor every (a `repeat` has one).
UPDATE schedules SET follows_job = 1
WHERE follows_job = 0 AND cron IS NULL AND every_ms IS NULL AND status IN ('active', 'paused');
-- and those an update to intervals 0 left with nothing due before it was fixed (no run yet, no next one: they never
-- ran) are due at their start again (a paused one when resumed).
UPDATE schedules SET next_run_at = start_at
WHERE follows_job = 1 AND status IN ('active', 'paused') AND last_due_at IS NULL AND next_run_at IS NULL
  AND cron IS NULL AND every_ms IS NULL;
