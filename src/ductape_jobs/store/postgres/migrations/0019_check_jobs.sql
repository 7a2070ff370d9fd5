-- ductape-jobs schema, version 19 (PostgreSQL): add_schedules' checks of the jobs it schedules, in the server, so
-- that the checks, the inserts and the NOTIFY go in one round trip as one transaction (store/postgres/connection.py,
-- Database.run_together). `checks` is a JSON list of {product_tag, tag, absent, planned, event_type, event_tag,
-- executions, intervals, start_at, updated_at}:
-- - absent false: the job must exist (it is locked FOR SHARE, in key order, until the transaction ends, so it
--   cannot be deleted before the schedules are stored); planned true: its stored planning fields must be those;
-- - absent true: no such job may exist (a product's own job made meanwhile for a schedule of a shared one).
-- The first failure, in that order (a missing job, then a job that should be absent, then a changed one; then by
-- product and tag), raises SQLSTATE DJ001 with the tag as the message and `missing` or `stale` as the detail,
-- which the store reports as NotFoundError("job", tag) or StaleJobError(tag); the transaction is aborted.
CREATE FUNCTION ductape_check_jobs(checks jsonb) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    bad record;
BEGIN
    PERFORM 1 FROM jobs
    WHERE (product_tag, tag) IN (
        SELECT c.product_tag, c.tag FROM jsonb_to_recordset(checks) AS c(product_tag text, tag text, absent boolean)
        WHERE NOT c.absent)
    ORDER BY product_tag, tag FOR SHARE;
    SELECT c.tag, CASE WHEN c.absent OR j.tag IS NOT NULL THEN 'stale' ELSE 'missing' END AS why INTO bad
    FROM jsonb_to_recordset(checks) AS c(product_tag text, tag text, absent boolean, planned boolean,
        event_type text, event_tag text, executions bigint, intervals bigint, start_at bigint, updated_at bigint)
    LEFT JOIN jobs j ON j.product_tag = c.product_tag AND j.tag = c.tag
    WHERE (NOT c.absent AND j.tag IS NULL)
       OR (c.absent AND j.tag IS NOT NULL)
       OR (NOT c.absent AND c.planned AND (j.event_type, j.event_tag, j.executions::bigint, j.intervals::bigint,
           j.start_at, j.updated_at) IS DISTINCT FROM (c.event_type, c.event_tag, c.executions, c.intervals,
           c.start_at, c.updated_at))
    ORDER BY CASE WHEN NOT c.absent AND j.tag IS NULL THEN 0 WHEN c.absent THEN 1 ELSE 2 END,
        c.product_tag COLLATE "C", c.tag COLLATE "C"  -- code point order, as SQLite's and Python's
    LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION USING ERRCODE = 'DJ001', MESSAGE = bad.tag, DETAIL = bad.why;
    END IF;
END
$$;
