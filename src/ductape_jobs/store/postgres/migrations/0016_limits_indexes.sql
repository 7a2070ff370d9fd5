-- ductape-jobs schema, version 16 (PostgreSQL): the runs a worker may claim when they fall due, those no limit
-- holds (held_until IS NULL), in due-time order. next_wakeup asks for the earliest of them; with only
-- runs_pending (which also holds the held runs) the planner read every pending run through a bitmap scan to
-- filter held_until (12 ms at 10,000 queued, on every worker pass), where this index answers from its first
-- entry. (On SQLite this version reorders the terms of the partial indexes of runs under a limit.)
-- Built without holding the table's writes (schema.py):
-- ductape-jobs: concurrently
CREATE INDEX CONCURRENTLY IF NOT EXISTS runs_due ON runs (available_at)
    WHERE phase IN ('scheduled', 'queued', 'retry_scheduled') AND available_at IS NOT NULL AND held_until IS NULL;
