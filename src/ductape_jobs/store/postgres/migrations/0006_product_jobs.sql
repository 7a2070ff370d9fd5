-- ductape-jobs schema, version 6 (PostgreSQL): a job belongs to a product, as in the seeds (a tag is unique
-- within its product). product_tag '' is a shared job, usable by every product's schedules: the jobs stored
-- before this version stay shared, so they keep working. A schedule records which job it runs
-- (job_product, job_tag).

ALTER TABLE jobs ADD COLUMN product_tag TEXT NOT NULL DEFAULT '';
ALTER TABLE jobs DROP CONSTRAINT jobs_pkey;
ALTER TABLE jobs ADD PRIMARY KEY (product_tag, tag);
CREATE INDEX jobs_tag ON jobs (tag);

ALTER TABLE schedules ADD COLUMN job_product TEXT NOT NULL DEFAULT '';
DROP INDEX schedules_job;
CREATE INDEX schedules_job ON schedules (job_tag, job_product, status);
