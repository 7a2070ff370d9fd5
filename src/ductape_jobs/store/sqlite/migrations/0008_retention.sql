-- ductape-jobs schema, version 8 (SQLite): indexes the pruner (retention.py) finds old rows by. Runs are found
-- by runs_ended and feature runs by feature_runs_time; webhook deliveries and cache entries had no index on time.
-- (Version 7 is another change's.)

CREATE INDEX webhook_deliveries_time ON webhook_deliveries (created_at);
CREATE INDEX cache_entries_expiry ON cache_entries (expires_at);
