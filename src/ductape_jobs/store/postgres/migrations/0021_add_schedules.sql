-- ductape-jobs schema, version 21 (PostgreSQL): add_schedules (schedule(), schedule_many) as one statement.
--
-- Version 19 sent the checks, the inserts and the NOTIFY as one pipeline; psycopg's pipeline costs more CPU in
-- the client than the statements cost the server. Now the call sends one statement with its rows as JSON: the
-- statement is its own transaction (autocommit), so all of it is stored or none. In order: the checks of the jobs
-- (ductape_check_jobs, SQLSTATE DJ001 at the first failure), the schedules, their feature keys (a JOB event's:
-- unique), their first runs (the job's event, priority and limit keys read from its row, which the checks
-- locked), and the NOTIFY that wakes listening workers at commit.
CREATE FUNCTION ductape_add_schedules(checks json, schedules json, keyed json, firsts json, channel text, payload text)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    PERFORM ductape_check_jobs(checks::jsonb);
    INSERT INTO schedules (id, job_tag, job_product, env, product_tag, input, retries, app, cache, session_tag,
        session_claims, cron, tz, every_ms, run_limit, end_date, follows_job, timeout_ms, misfire, overlap,
        pause_on_failure, status, start_at, next_run_at, last_due_at, run_count, created_at, updated_at,
        trace_context, priority)
    SELECT s.id, s.job_tag, s.job_product, s.env, s.product_tag, s.input, s.retries, s.app, s.cache, s.session_tag,
        s.session_claims, s.cron, s.tz, s.every_ms, s.run_limit, s.end_date, s.follows_job, s.timeout_ms, s.misfire,
        s.overlap, s.pause_on_failure, s.status, s.start_at, s.next_run_at, s.last_due_at, s.run_count,
        s.created_at, s.created_at, s.trace_context, s.priority
    FROM json_to_recordset(schedules) AS s(id text, job_tag text, job_product text, env text,
        product_tag text, input text, retries integer, app text, cache text, session_tag text, session_claims text,
        cron text, tz text, every_ms bigint, run_limit integer, end_date bigint, follows_job smallint,
        timeout_ms bigint, misfire text, overlap text, pause_on_failure smallint, status text, start_at bigint,
        next_run_at bigint, last_due_at bigint, run_count integer, created_at bigint, trace_context text,
        priority integer);
    UPDATE schedules SET feature_key = k.feature_key
    FROM json_to_recordset(keyed) AS k(id text, feature_key text)
    WHERE schedules.id = k.id;
    INSERT INTO runs (id, schedule_id, scheduled_at, job_tag, product_tag, env, event_type, event_tag, app, cache,
        session_claims, input, phase, available_at, triggered_by, overlap, max_retries, timeout_ms, created_at,
        updated_at, trace_context, priority, limit_keys)
    SELECT r.id, r.schedule_id, r.scheduled_at, r.job_tag, r.product_tag, r.env, j.event_type, j.event_tag, r.app,
        r.cache, r.session_claims, r.input, r.phase, r.available_at, r.triggered_by, r.overlap, r.retries,
        r.timeout_ms, r.now, r.now, r.trace_context, coalesce(r.priority, j.priority), j.limit_keys
    FROM json_to_recordset(firsts) AS r(id text, schedule_id text, scheduled_at bigint,
        job_tag text, job_product text, product_tag text, env text, app text, cache text, session_claims text,
        input text, phase text, available_at bigint, triggered_by text, overlap text, retries integer,
        timeout_ms bigint, now bigint, trace_context text, priority integer)
    JOIN jobs j ON j.product_tag = r.job_product AND j.tag = r.job_tag;
    PERFORM pg_notify(channel, payload);
END
$$;
