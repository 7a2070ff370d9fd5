-- ductape-jobs schema, version 22 (PostgreSQL): one index of runs by schedule instead of two. runs_one_per_occurrence
-- (unique, every run but the manual ones) and runs_schedule (every run, for the reads by schedule) held the same
-- two keys. runs_occurrence holds every run once, with a third key: a manual run's own id, '' for any other. Two
-- runs of one occurrence still cannot both be written, a manual run at an occurrence's time still can, and the
-- reads by schedule search its first two keys. Every run written changes one index fewer, and so does every
-- change of a run's phase (no such update is HOT: each writes every index whose rows it falls in).
-- Built, and the two dropped, without holding the table's writes (schema.py); the new one before the old go:
-- ductape-jobs: concurrently
CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS runs_occurrence
    ON runs (schedule_id, scheduled_at, (CASE WHEN triggered_by = 'manual' THEN id ELSE '' END));
DROP INDEX CONCURRENTLY IF EXISTS runs_one_per_occurrence;
DROP INDEX CONCURRENTLY IF EXISTS runs_schedule;
