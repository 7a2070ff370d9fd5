-- ductape-jobs schema, version 8 (PostgreSQL): indexes the pruner (retention.py) finds old rows by. Failed runs
-- are found by runs_failed and feature runs by feature_runs_time; the others had no index to find them by age.
-- (Version 7 is another change's.) And what a schedule's pruned runs were, counted on the schedule, so that
-- job.history's counts and numbers still count them.

-- Completed and cancelled runs by their end: failed ones are kept longer, and a batch must not scan past them.
CREATE INDEX runs_done ON runs (completed_at) WHERE phase IN ('completed', 'cancelled');
CREATE INDEX webhook_deliveries_time ON webhook_deliveries (created_at);
CREATE INDEX cache_entries_expiry ON cache_entries (expires_at);

ALTER TABLE schedules ADD COLUMN pruned_runs BIGINT NOT NULL DEFAULT 0;
ALTER TABLE schedules ADD COLUMN pruned_completed BIGINT NOT NULL DEFAULT 0;
ALTER TABLE schedules ADD COLUMN pruned_failed BIGINT NOT NULL DEFAULT 0;
