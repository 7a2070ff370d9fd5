-- ductape-jobs schema, version 26 (PostgreSQL): schedules newest first by an index.
-- Schedules newest first (job.list, GET /schedules, the dashboard) by an index: at a million schedules every page
-- read and sorted them all (4 s on SQLite, 0.5 s on PostgreSQL a page, 30 s and 9 s for a page of 10,000).
-- Built without holding the table's writes (schema.py):
-- ductape-jobs: concurrently
CREATE INDEX CONCURRENTLY IF NOT EXISTS schedules_time ON schedules (created_at, id);
