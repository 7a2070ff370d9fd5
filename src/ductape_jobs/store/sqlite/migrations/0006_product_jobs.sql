-- ductape-jobs schema, version 6 (SQLite): a job belongs to a product, as in the seeds (a tag is unique within
-- its product). product_tag '' is a shared job, usable by every product's schedules: the jobs stored before
-- this version stay shared, so they keep working. A schedule records which job it runs (job_product, job_tag).

CREATE TABLE jobs_v6 (
    tag         TEXT NOT NULL,
    name        TEXT NOT NULL,
    event_type  TEXT NOT NULL,
    event_tag   TEXT NOT NULL,
    executions  INTEGER NOT NULL DEFAULT 0,
    intervals   INTEGER NOT NULL DEFAULT 0,
    start_at    INTEGER,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    product_tag TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (product_tag, tag)
);
INSERT INTO jobs_v6 (tag, name, event_type, event_tag, executions, intervals, start_at, created_at, updated_at,
    product_tag)
SELECT tag, name, event_type, event_tag, executions, intervals, start_at, created_at, updated_at, '' FROM jobs;
DROP TABLE jobs;
ALTER TABLE jobs_v6 RENAME TO jobs;
CREATE INDEX jobs_tag ON jobs (tag);

ALTER TABLE schedules ADD COLUMN job_product TEXT NOT NULL DEFAULT '';
DROP INDEX schedules_job;
CREATE INDEX schedules_job ON schedules (job_tag, job_product, status);
