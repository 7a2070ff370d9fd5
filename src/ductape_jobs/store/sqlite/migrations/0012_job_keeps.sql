-- ductape-jobs schema, version 12 (SQLite): a job's own retention of its runs (retention.py): how long its
-- completed / failed runs are kept ('3d') or how many of the newest ('100'); NULL: the client's Retention.
-- (Versions 9 to 11 are other changes'.)
ALTER TABLE jobs ADD COLUMN keep_completed TEXT;
ALTER TABLE jobs ADD COLUMN keep_failed TEXT;
