-- SQL of the PostgreSQL store. Times are BIGINT milliseconds since the Unix epoch, UTC; parameters are
-- psycopg's %(name)s. Statements that several schedulers or workers race on lock with SKIP LOCKED, so
-- each takes a different share of the work instead of queueing behind the others.

-- name: insert_job
INSERT INTO jobs (product_tag, tag, name, event_type, event_tag, executions, intervals, start_at, keep_completed,
    keep_failed, created_at, updated_at, resources, concurrency, rate, priority, limit_keys)
VALUES (%(product_tag)s, %(tag)s, %(name)s, %(event_type)s, %(event_tag)s, %(executions)s, %(intervals)s, %(start_at)s::bigint,
    %(keep_completed)s, %(keep_failed)s, %(now)s, %(now)s, %(resources)s::text, %(concurrency)s::integer, %(rate)s::text,
    %(priority)s, %(limit_keys)s::text);

-- name: lock_job
SELECT * FROM jobs WHERE product_tag = %(product_tag)s AND tag = %(tag)s FOR UPDATE;

-- name: add_schedules
-- schedule() and schedule_many in one statement (its own transaction): ductape_add_schedules() (migration 21)
-- checks the jobs, inserts the schedules, their feature keys and first runs, and notifies, in the server.
SELECT ductape_add_schedules(%(checks)s::json, %(schedules)s::json, %(keyed)s::json, %(firsts)s::json,
    %(channel)s, %(payload)s);

-- name: update_job
UPDATE jobs SET name = %(name)s, event_type = %(event_type)s, event_tag = %(event_tag)s,
    executions = %(executions)s, intervals = %(intervals)s, start_at = %(start_at)s::bigint,
    keep_completed = %(keep_completed)s, keep_failed = %(keep_failed)s, updated_at = %(now)s,
    resources = %(resources)s::text, concurrency = %(concurrency)s::integer, rate = %(rate)s::text,
    priority = %(priority)s, limit_keys = %(limit_keys)s::text
WHERE product_tag = %(product_tag)s AND tag = %(tag)s;

-- name: follow_job_cadence
-- Schedules without `repeat` follow their job's cadence: a changed interval moves their next occurrence
-- (re-anchored on the last occurrence, so the new interval counts from there). One that has not run keeps its next
-- occurrence (its start, or where a resume moved it past the ones its pause skipped), whatever the cadence becomes:
-- a job no longer repeating runs it once.
UPDATE schedules SET
    start_at = coalesce(last_due_at, next_run_at, start_at),
    every_ms = CASE WHEN %(intervals)s > 0 THEN %(intervals)s END,
    run_limit = CASE WHEN %(intervals)s > 0 AND %(executions)s > 0 THEN %(executions)s END,
    next_run_at = CASE
        WHEN last_due_at IS NULL THEN coalesce(next_run_at, start_at)
        WHEN %(intervals)s <= 0 THEN NULL
        WHEN %(executions)s > 0 AND run_count >= %(executions)s THEN NULL
        ELSE last_due_at + %(intervals)s END,
    status = CASE
        WHEN status = 'active' AND (%(intervals)s <= 0 OR (%(executions)s > 0 AND run_count >= %(executions)s))
            AND last_due_at IS NOT NULL THEN 'completed'
        ELSE status END,
    updated_at = %(now)s
WHERE job_tag = %(tag)s AND job_product = %(product_tag)s AND follows_job = 1 AND status IN ('active', 'paused');

-- name: get_job
SELECT * FROM jobs WHERE product_tag = %(product_tag)s AND tag = %(tag)s;

-- name: find_job
-- A product's own job of that tag, else the shared one ('' sorts first).
SELECT * FROM jobs WHERE tag = %(tag)s AND product_tag IN (%(product_tag)s, '')
ORDER BY product_tag DESC LIMIT 1;

-- name: jobs_tagged
SELECT * FROM jobs WHERE tag = %(tag)s ORDER BY product_tag;

-- name: list_jobs
SELECT * FROM jobs WHERE (%(product_tag)s::text IS NULL OR product_tag = %(product_tag)s) ORDER BY tag, product_tag;

-- name: live_schedules_of_job
SELECT count(*) AS n FROM schedules
WHERE job_tag = %(tag)s AND job_product = %(product_tag)s AND status IN ('active', 'paused');

-- name: live_schedule_targets
-- Where a job's live schedules run it (job.update checks its new event against each): few rows, by schedules_job.
SELECT DISTINCT product_tag, env, app FROM schedules
WHERE job_tag = %(tag)s AND job_product = %(product_tag)s AND status IN ('active', 'paused');

-- name: lock_changed_job_schedules
-- A job's limits or cadence changed: every schedule the update changes or whose pending runs it changes, locked in
-- the order of their ids before any of them (or those runs) is written, as an outcome batch locks the schedules it
-- decides about, and as a cancel and a batch's release of held runs lock a schedule before its pending runs.
SELECT s.id FROM schedules s
WHERE s.job_tag = %(tag)s AND s.job_product = %(product_tag)s
  AND ((%(cadence)s AND s.follows_job = 1 AND s.status IN ('active', 'paused'))
       OR (%(limits)s AND EXISTS (SELECT 1 FROM runs r WHERE r.schedule_id = s.id
                                  AND r.phase IN ('scheduled', 'queued', 'retry_scheduled'))))
ORDER BY s.id
FOR NO KEY UPDATE OF s;

-- name: relimit_job_runs
-- A job's limits changed (job.update of its resources, concurrency or rate): its pending runs wait under them as
-- they are now (they were copied when each run was made, so a backlog kept the limits it was made under). Runs
-- running finish as they began, and fall under them once queued again (a retry, a rescue, a release).
-- By runs_active, their schedules locked first (lock_changed_job_schedules).
UPDATE runs SET limit_keys = %(limit_keys)s
WHERE phase IN ('scheduled', 'queued', 'retry_scheduled')
  AND schedule_id IN (SELECT id FROM schedules WHERE job_tag = %(tag)s AND job_product = %(product_tag)s);

-- name: cancel_finished_schedules_of_job
-- A job deleted: its finished schedules whose runs have not all ended (a one-off's queued run, a retry, one running,
-- whose retry would follow) are cancelled; their runs that have not started are then (cancel_pending_runs): they ran
-- for a job that no longer was (a new-user probe). Found from the runs not ended (runs_active), not the job's history.
UPDATE schedules SET status = 'cancelled', reason = %(reason)s, next_run_at = NULL, updated_at = %(now)s
WHERE status = 'completed' AND job_product = %(product_tag)s AND job_tag = %(tag)s AND id IN (
    SELECT schedule_id FROM runs
    WHERE phase IN ('scheduled', 'queued', 'retry_scheduled', 'running') AND job_tag = %(tag)s)
RETURNING id;

-- name: delete_job
DELETE FROM jobs WHERE product_tag = %(product_tag)s AND tag = %(tag)s;

-- name: insert_run
-- A run copies its job's event and its schedule's input. One scheduled run per (schedule, due time): a
-- second stays unwritten (and is not returned). A manual run (triggered_by = 'manual') is always a run of its own.
INSERT INTO runs (id, schedule_id, scheduled_at, job_tag, product_tag, env, event_type, event_tag, app, cache,
    session_claims, input, phase, available_at, triggered_by, overlap, max_retries, timeout_ms, created_at,
    updated_at, trace_context, priority, limit_keys)
SELECT %(id)s::text, s.id, %(scheduled_at)s::bigint, s.job_tag, s.product_tag, s.env, j.event_type, j.event_tag,
    s.app, s.cache, s.session_claims, s.input, %(phase)s::text, %(available_at)s::bigint, %(triggered_by)s::text,
    s.overlap, s.retries, s.timeout_ms, %(now)s::bigint, %(now)s::bigint, s.trace_context,
    coalesce(s.priority, j.priority), j.limit_keys
FROM schedules s JOIN jobs j ON j.product_tag = s.job_product AND j.tag = s.job_tag
WHERE s.id = %(schedule_id)s
ON CONFLICT (schedule_id, scheduled_at, (CASE WHEN triggered_by = 'manual' THEN id ELSE '' END)) DO NOTHING
RETURNING id;

-- name: get_schedule
SELECT * FROM schedules WHERE id = %(id)s;

-- name: lock_schedule
SELECT * FROM schedules WHERE id = %(id)s FOR UPDATE;

-- name: lock_buffer_one_schedules
-- The buffer_one schedules of runs that ended, locked FOR SHARE before their held runs are released (the
-- next statement, release_held_runs, takes its snapshot once these locks are granted): waits for a scheduler
-- that is deciding about these schedules (it holds them FOR UPDATE), so a run it holds back behind a run that
-- is ending now is seen and released. Nothing is read back: both go in the finishing round trip.
SELECT id FROM schedules
WHERE id IN (SELECT schedule_id FROM runs WHERE id = ANY(%(run_ids)s) AND overlap = 'buffer_one')
ORDER BY id FOR SHARE;

-- name: due_schedules
-- Several schedulers split the due schedules between them: each locks its own and skips the others'. Due by
-- %(due_by)s (a tick ahead, WorkerOptions.ahead), but a schedule whose overlap policy looks at its previous run
-- only when due at %(now)s: whether that run still goes is known then.
SELECT * FROM schedules
WHERE status = 'active' AND next_run_at IS NOT NULL AND next_run_at <= %(due_by)s
  AND (next_run_at <= %(now)s OR overlap = 'allow')
ORDER BY next_run_at LIMIT %(limit)s
FOR UPDATE SKIP LOCKED;

-- name: overlap_state
SELECT schedule_id,
       count(*) FILTER (WHERE available_at IS NOT NULL OR phase = 'running') AS active,
       count(*) FILTER (WHERE available_at IS NULL AND phase = 'scheduled') AS held
FROM runs
WHERE schedule_id = ANY(%(ids)s) AND phase IN ('scheduled', 'queued', 'retry_scheduled', 'running')
GROUP BY schedule_id;

-- name: update_schedule
-- Each column changes only when its set_<column> flag is true (a ScheduleChange names it).
UPDATE schedules SET
    status = CASE WHEN %(set_status)s THEN %(status)s::text ELSE status END,
    reason = CASE WHEN %(set_reason)s THEN %(reason)s::text ELSE reason END,
    next_run_at = CASE WHEN %(set_next_run_at)s THEN %(next_run_at)s::bigint ELSE next_run_at END,
    cron = CASE WHEN %(set_cron)s THEN %(cron)s::text ELSE cron END,
    tz = CASE WHEN %(set_tz)s THEN %(tz)s::text ELSE tz END,
    every_ms = CASE WHEN %(set_every_ms)s THEN %(every_ms)s::bigint ELSE every_ms END,
    run_limit = CASE WHEN %(set_run_limit)s THEN %(run_limit)s::integer ELSE run_limit END,
    end_date = CASE WHEN %(set_end_date)s THEN %(end_date)s::bigint ELSE end_date END,
    follows_job = CASE WHEN %(set_follows_job)s THEN %(follows_job)s::smallint ELSE follows_job END,
    start_at = CASE WHEN %(set_start_at)s THEN %(start_at)s::bigint ELSE start_at END,
    updated_at = %(now)s
WHERE id = %(id)s;

-- name: advance_schedule
UPDATE schedules SET
    next_run_at = %(next_run_at)s::bigint,
    last_due_at = coalesce(%(last_due_at)s::bigint, last_due_at),
    run_count = run_count + %(created)s,
    skipped_count = skipped_count + %(skipped)s,
    status = CASE WHEN %(finished)s THEN 'completed' ELSE status END,
    updated_at = %(now)s
WHERE id = %(id)s AND status = 'active' AND next_run_at IS NOT DISTINCT FROM %(expected_next)s::bigint
RETURNING id;

-- name: cancel_pending_runs
UPDATE runs SET phase = 'cancelled', error = %(reason)s, completed_at = %(now)s, available_at = NULL,
    updated_at = %(now)s
WHERE schedule_id = %(schedule_id)s AND phase IN ('scheduled', 'queued', 'retry_scheduled');

-- name: acquire_runs
-- Claim and record the attempts in one statement. SKIP LOCKED: racing workers take different runs.
-- Only runs under no limit (runs_claim); `limited` says whether a run under a limit is due (store/limits_core.py
-- claims those). One row with a NULL id when nothing was claimed. %(due_by)s is now, or a little after it for a
-- worker that claims a tick's runs ahead of their due time (engine/worker.py): such a run starts at its due time,
-- which its started_at and its attempt's say.
WITH picked AS (
    SELECT id FROM runs
    WHERE phase IN ('scheduled', 'queued', 'retry_scheduled') AND available_at IS NOT NULL AND limit_keys IS NULL
      AND available_at <= %(due_by)s
    ORDER BY (available_at - priority * 1000)
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
), claimed AS (
    UPDATE runs r SET phase = 'running', lease_owner = %(worker_id)s, lease_expires_at = %(lease_until)s,
        started_at = GREATEST(r.available_at, %(now)s), attempt = r.attempt + 1, updated_at = %(now)s
    FROM picked WHERE r.id = picked.id
    RETURNING r.*
), recorded AS (
    INSERT INTO attempts (run_id, attempt, worker_id, started_at)
    SELECT id, attempt, %(worker_id)s::text, started_at FROM claimed
)
SELECT c.*, w.limited FROM (
    -- On runs_claim_limited (empty while no run is under a limit): a priority is at most 100 s, so a due run's
    -- claim key is at most now + 100 s, a bound that index takes (runs_pending would scan every due run).
    SELECT EXISTS (
        SELECT 1 FROM runs
        WHERE phase IN ('scheduled', 'queued', 'retry_scheduled') AND available_at IS NOT NULL
          AND limit_keys IS NOT NULL AND (available_at - priority * 1000) <= %(now)s::bigint + 100000
          AND available_at <= %(now)s) AS limited
) w LEFT JOIN claimed c ON true;

-- name: extend_leases
UPDATE runs SET lease_expires_at = %(until)s
WHERE id = ANY(%(ids)s) AND lease_owner = %(worker_id)s AND phase = 'running';

-- name: finish_attempt
-- An attempt the rescue marked lost still records what its worker reported late ("lost, then completed"),
-- without changing its run. One statement per attempt: a JSON list joined in one statement made the planner
-- guess 100 rows and scan the whole attempts table (10 ms at 20,000 attempts), where this is one index lookup.
UPDATE attempts SET finished_at = %(finished_at)s, started_at = coalesce(%(started_at)s::bigint, started_at),
    outcome = CASE WHEN finished_at IS NULL THEN %(outcome)s::text ELSE 'lost, then ' || %(outcome)s::text END,
    error = CASE WHEN finished_at IS NULL THEN %(error)s::text ELSE coalesce(%(error)s::text, error) END
WHERE run_id = %(run_id)s AND attempt = %(attempt)s AND (finished_at IS NULL OR outcome = 'lost');

-- name: complete_run
-- %(rows)s: every completed run of the call as one JSON list (PostgresTx.many: one statement, where one per
-- run costs the client more than the server; the plan probes the running runs by index).
UPDATE runs SET phase = 'completed', completed_at = c.finished_at, duration_ms = c.duration_ms,
    output = c.output, error = NULL, lease_owner = NULL, lease_expires_at = NULL, updated_at = c.now,
    started_at = coalesce(c.started_at, runs.started_at)
FROM json_to_recordset(%(rows)s::json)
    AS c(run_id text, attempt integer, worker_id text, finished_at bigint, duration_ms bigint, output text, now bigint,
         started_at bigint)
WHERE runs.id = c.run_id AND runs.lease_owner = c.worker_id AND runs.attempt = c.attempt AND runs.phase = 'running';

-- name: schedule_retry
UPDATE runs SET phase = 'retry_scheduled', available_at = %(retry_at)s, retry_count = retry_count + 1,
    duration_ms = %(duration_ms)s, error = %(error)s, lease_owner = NULL, lease_expires_at = NULL,
    updated_at = %(now)s, started_at = coalesce(%(started_at)s::bigint, started_at),
    limit_keys = (SELECT j.limit_keys FROM schedules s JOIN jobs j ON j.product_tag = s.job_product AND j.tag = s.job_tag
                  WHERE s.id = runs.schedule_id)
WHERE id = %(run_id)s AND lease_owner = %(worker_id)s AND attempt = %(attempt)s AND phase = 'running'
  AND NOT EXISTS (SELECT 1 FROM schedules s WHERE s.id = runs.schedule_id AND s.status = 'cancelled');

-- name: lock_runs
-- Runs locked before their schedules (lock_deciding_schedules, lock_schedules_of_runs), in the order of their ids:
-- the failed runs of an outcome batch, the runs a worker gives back. A rescue of one of them (it holds the run, then
-- locks its schedule) ends first, rather than waiting for a schedule this transaction would hold while it waits for
-- the run. Nothing is read back.
SELECT id FROM runs
WHERE id = ANY(%(ids)s) AND phase = 'running' AND (%(worker_id)s::text IS NULL OR lease_owner = %(worker_id)s)
ORDER BY id FOR NO KEY UPDATE;

-- name: lock_schedules_of_runs
-- The schedules of runs a rescue takes back or a worker gives back, locked (after the runs) in the order of their ids,
-- as an UPDATE of them locks them: a cancel meanwhile (it holds its schedule FOR UPDATE) ends first, and the
-- statements after see it; a cancel after waits for this transaction, then cancels the runs it queued.
SELECT id FROM schedules
WHERE id IN (SELECT schedule_id FROM runs WHERE id = ANY(%(ids)s))
ORDER BY id
FOR NO KEY UPDATE;

-- name: lock_deciding_schedules
-- The schedules an outcome batch with failures decides about or changes, locked first, in the order of their ids,
-- as an UPDATE of them locks them (FOR NO KEY UPDATE): those of the runs that failed (a retry is made only if the
-- schedule is not cancelled; pause_on_failure pauses it) and the buffer_one ones of the runs that ended (their held
-- runs released). A cancel meanwhile (it holds its schedule FOR UPDATE) ends first, and the statements after see
-- it (each takes its snapshot once these locks are granted); a cancel after waits for this transaction. Each lock
-- such a batch takes on schedules is taken here, in one order: two batches never wait for each other in a cycle.
SELECT id FROM schedules
WHERE id IN (SELECT schedule_id FROM runs WHERE id = ANY(%(failed)s)
             UNION SELECT schedule_id FROM runs WHERE id = ANY(%(ended)s) AND overlap = 'buffer_one')
ORDER BY id
FOR NO KEY UPDATE;

-- name: cancel_retry
-- A run that failed and would be retried, of a schedule cancelled while it ran: cancelled instead (cancel() cancelled
-- the runs that had not started, retries included); schedule_retry passed it over. Returns it: its worker says so.
UPDATE runs r SET phase = 'cancelled', completed_at = %(finished_at)s, duration_ms = %(duration_ms)s,
    error = coalesce(s.reason, 'cancelled'), lease_owner = NULL, lease_expires_at = NULL, available_at = NULL,
    updated_at = %(now)s, started_at = coalesce(%(started_at)s::bigint, r.started_at)
FROM schedules s
WHERE r.id = %(run_id)s AND r.lease_owner = %(worker_id)s AND r.attempt = %(attempt)s AND r.phase = 'running'
  AND s.id = r.schedule_id AND s.status = 'cancelled'
RETURNING r.id;

-- name: fail_run
UPDATE runs SET phase = 'failed', completed_at = %(finished_at)s, duration_ms = %(duration_ms)s,
    error = %(error)s, lease_owner = NULL, lease_expires_at = NULL, updated_at = %(now)s,
    started_at = coalesce(%(started_at)s::bigint, started_at)
WHERE id = %(run_id)s AND lease_owner = %(worker_id)s AND attempt = %(attempt)s AND phase = 'running'
RETURNING id, schedule_id, overlap;

-- name: release_held_runs
-- A run held behind its schedule's previous run (overlap = buffer_one) becomes due once that run ended: the
-- held runs of the buffer_one schedules of the runs that ended (run_ids).
UPDATE runs SET available_at = %(now)s, phase = 'queued', updated_at = %(now)s
WHERE id IN (
    SELECT h.id FROM runs h
    WHERE h.schedule_id IN (SELECT schedule_id FROM runs WHERE id = ANY(%(run_ids)s) AND overlap = 'buffer_one')
      AND h.available_at IS NULL AND h.phase = 'scheduled'
      AND NOT EXISTS (SELECT 1 FROM runs r WHERE r.schedule_id = h.schedule_id
                      AND r.phase IN ('queued', 'retry_scheduled', 'running')));

-- name: pause_on_failure
UPDATE schedules SET status = 'paused', reason = %(reason)s, updated_at = %(now)s
WHERE id = %(schedule_id)s AND pause_on_failure = 1 AND status = 'active';

-- name: leased_runs
-- The runs a worker holds the lease of (runs_leases: the running runs only).
SELECT * FROM runs WHERE phase = 'running' AND lease_owner = %(worker_id)s;

-- name: release_runs
-- A run given back keeps its due time if that is still ahead (one claimed ahead of it: WorkerOptions.ahead). One
-- whose start is still to come, or that the worker never began (unstarted: a stop that waited for other runs past
-- its due time counted an attempt for it), never started: it goes back as its claim found it, its attempt not
-- counted (its attempt row is deleted: unstarted) and no start of its own.
UPDATE runs SET phase = 'queued', available_at = GREATEST(available_at, %(now)s), lease_owner = NULL, lease_expires_at = NULL,
    attempt = CASE WHEN (started_at > %(now)s OR id = ANY(%(unstarted)s::text[])) THEN attempt - 1 ELSE attempt END,
    started_at = CASE WHEN (started_at > %(now)s OR id = ANY(%(unstarted)s::text[])) THEN NULL ELSE started_at END, updated_at = %(now)s,
    limit_keys = (SELECT j.limit_keys FROM schedules s JOIN jobs j ON j.product_tag = s.job_product AND j.tag = s.job_tag
                  WHERE s.id = runs.schedule_id)
WHERE id = ANY(%(ids)s) AND lease_owner = %(worker_id)s AND phase = 'running'
RETURNING id, CASE WHEN started_at IS NULL THEN attempt + 1 ELSE attempt END AS attempt, started_at IS NULL AS unstarted;

-- name: cancel_released_runs
-- Runs given back whose schedule was cancelled while the worker held them: ended as cancel() ends the runs that had
-- not started, not queued to run after it (release_runs takes the others). One whose start is still to come, or
-- that the worker never began (unstarted), never began: its attempt is not counted (its row is deleted), as
-- release_runs does.
UPDATE runs r SET phase = 'cancelled', completed_at = %(now)s, duration_ms = NULL,
    error = coalesce(s.reason, 'cancelled'), available_at = NULL, lease_owner = NULL, lease_expires_at = NULL,
    attempt = CASE WHEN (r.started_at > %(now)s OR r.id = ANY(%(unstarted)s::text[])) THEN r.attempt - 1 ELSE r.attempt END,
    started_at = CASE WHEN (r.started_at > %(now)s OR r.id = ANY(%(unstarted)s::text[])) THEN NULL ELSE r.started_at END, updated_at = %(now)s
FROM schedules s
WHERE r.id = ANY(%(ids)s) AND r.lease_owner = %(worker_id)s AND r.phase = 'running'
  AND s.id = r.schedule_id AND s.status = 'cancelled'
RETURNING r.id, CASE WHEN r.started_at IS NULL THEN r.attempt + 1 ELSE r.attempt END AS attempt,
    r.started_at IS NULL AS unstarted;

-- name: delete_attempt
DELETE FROM attempts WHERE run_id = %(run_id)s AND attempt = %(attempt)s;

-- name: expired_leases
-- Racing rescuers skip each other's rows (and a run whose worker is finishing it right now).
SELECT id, attempt, lease_owner, rescues, event_type FROM runs
WHERE phase = 'running' AND lease_expires_at < %(now)s
ORDER BY lease_expires_at LIMIT 500
FOR UPDATE SKIP LOCKED;

-- name: cancel_lost_runs
-- Runs whose lease expired, of a schedule cancelled while they ran: ended cancelled (no duration: the attempt was
-- lost), not queued to run after the cancel; rescue_run and fail_lost_run pass them over.
UPDATE runs r SET phase = 'cancelled', completed_at = %(now)s, duration_ms = NULL, error = coalesce(s.reason, 'cancelled'),
    available_at = NULL, lease_owner = NULL, lease_expires_at = NULL, updated_at = %(now)s
FROM schedules s
WHERE r.id = ANY(%(ids)s) AND r.phase = 'running' AND r.lease_expires_at < %(now)s
  AND s.id = r.schedule_id AND s.status = 'cancelled'
RETURNING r.id;

-- name: rescue_run
UPDATE runs SET phase = 'queued', available_at = GREATEST(available_at, %(now)s), rescues = rescues + 1, lease_owner = NULL,
    lease_expires_at = NULL, updated_at = %(now)s,
    limit_keys = (SELECT j.limit_keys FROM schedules s JOIN jobs j ON j.product_tag = s.job_product AND j.tag = s.job_tag
                  WHERE s.id = runs.schedule_id)
WHERE id = %(id)s AND phase = 'running' AND lease_expires_at < %(now)s;

-- name: fail_lost_run
-- A run lost too often: its last attempt ended with no duration (an earlier attempt's is not kept as its own).
UPDATE runs SET phase = 'failed', completed_at = %(now)s, error = %(error)s, duration_ms = NULL, lease_owner = NULL,
    lease_expires_at = NULL, updated_at = %(now)s
WHERE id = %(id)s AND phase = 'running' AND lease_expires_at < %(now)s
RETURNING id, schedule_id, overlap;

-- name: retry_run
-- job.retry: a failed or cancelled run queued once more, a retry that counts (retry_count, the stats' first tries)
-- if it ran before (a run cancelled before it started is not retried: it runs for the first time), with none
-- automatic after it. It keeps the error that failed it until its next attempt, not that attempt's times.
UPDATE runs SET phase = 'queued', available_at = %(now)s,
    retry_count = retry_count + (CASE WHEN attempt > 0 THEN 1 ELSE 0 END),
    max_retries = retry_count + (CASE WHEN attempt > 0 THEN 1 ELSE 0 END),
    started_at = NULL, completed_at = NULL, duration_ms = NULL, updated_at = %(now)s
WHERE id = %(id)s AND phase IN ('failed', 'cancelled')
RETURNING *;

-- name: get_run
-- A due run under a limit shows the hold its set is under (limit_holds), while that hold covers its due time.
SELECT r.*, h.waiting_on FROM runs r
LEFT JOIN limit_holds h ON h.limit_keys = r.limit_keys AND r.phase IN ('scheduled', 'queued', 'retry_scheduled') AND r.available_at <= h.held_until
WHERE r.id = %(id)s;

-- name: attempts_of_run
SELECT * FROM attempts WHERE run_id = %(run_id)s ORDER BY attempt;

-- name: list_schedules
-- Schedules, newest first; a filter left NULL keeps every value.
SELECT * FROM schedules
WHERE (%(status)s::text IS NULL OR status = %(status)s)
  AND (%(job_tag)s::text IS NULL OR job_tag = %(job_tag)s)
  AND (%(job_product)s::text IS NULL OR job_product = %(job_product)s)
  AND (%(product_tag)s::text IS NULL OR product_tag = %(product_tag)s)
  AND (%(env)s::text IS NULL OR env = %(env)s)
  AND (created_at, id) < (%(after_at)s::bigint, %(after_id)s::text)
ORDER BY created_at DESC, id DESC LIMIT %(limit)s OFFSET %(offset)s;

-- name: list_runs
SELECT * FROM runs
WHERE (%(schedule_id)s::text IS NULL OR schedule_id = %(schedule_id)s)
  AND (%(job_tag)s::text IS NULL OR job_tag = %(job_tag)s)
  AND (%(product_tag)s::text IS NULL OR product_tag = %(product_tag)s)
  AND (%(env)s::text IS NULL OR env = %(env)s)
  AND (%(phase)s::text IS NULL OR phase = %(phase)s)
  AND (%(since)s::bigint IS NULL OR scheduled_at >= %(since)s)
  AND (%(until)s::bigint IS NULL OR scheduled_at < %(until)s)
  AND (scheduled_at, id) < (%(after_at)s::bigint, %(after_id)s::text)
ORDER BY scheduled_at DESC, id DESC LIMIT %(limit)s OFFSET %(offset)s;

-- name: list_failed_runs
-- list_runs for failed runs: the phase is a literal, so the partial index on failed runs applies.
SELECT * FROM runs
WHERE phase = 'failed'
  AND (%(schedule_id)s::text IS NULL OR schedule_id = %(schedule_id)s)
  AND (%(job_tag)s::text IS NULL OR job_tag = %(job_tag)s)
  AND (%(product_tag)s::text IS NULL OR product_tag = %(product_tag)s)
  AND (%(env)s::text IS NULL OR env = %(env)s)
  AND (%(since)s::bigint IS NULL OR scheduled_at >= %(since)s)
  AND (%(until)s::bigint IS NULL OR scheduled_at < %(until)s)
  AND (scheduled_at, id) < (%(after_at)s::bigint, %(after_id)s::text)
ORDER BY scheduled_at DESC, id DESC LIMIT %(limit)s OFFSET %(offset)s;

-- name: list_live_runs
-- list_runs for runs not yet ended: the literal IN implies the partial index on them (runs_active).
SELECT * FROM runs
WHERE phase IN ('scheduled', 'queued', 'retry_scheduled', 'running') AND phase = %(phase)s
  AND (%(schedule_id)s::text IS NULL OR schedule_id = %(schedule_id)s)
  AND (%(job_tag)s::text IS NULL OR job_tag = %(job_tag)s)
  AND (%(product_tag)s::text IS NULL OR product_tag = %(product_tag)s)
  AND (%(env)s::text IS NULL OR env = %(env)s)
  AND (%(since)s::bigint IS NULL OR scheduled_at >= %(since)s)
  AND (%(until)s::bigint IS NULL OR scheduled_at < %(until)s)
  AND (scheduled_at, id) < (%(after_at)s::bigint, %(after_id)s::text)
ORDER BY scheduled_at DESC, id DESC LIMIT %(limit)s OFFSET %(offset)s;

-- name: list_runs_of_schedule
-- list_runs for one schedule: a plain equality, so the (schedule_id, scheduled_at) index applies.
SELECT * FROM runs
WHERE schedule_id = %(schedule_id)s
  AND (%(job_tag)s::text IS NULL OR job_tag = %(job_tag)s)
  AND (%(product_tag)s::text IS NULL OR product_tag = %(product_tag)s)
  AND (%(env)s::text IS NULL OR env = %(env)s)
  AND (%(phase)s::text IS NULL OR phase = %(phase)s)
  AND (%(since)s::bigint IS NULL OR scheduled_at >= %(since)s)
  AND (%(until)s::bigint IS NULL OR scheduled_at < %(until)s)
  AND (scheduled_at, id) < (%(after_at)s::bigint, %(after_id)s::text)
ORDER BY scheduled_at DESC, id DESC LIMIT %(limit)s OFFSET %(offset)s;

-- name: list_runs_of_job
-- list_runs for one job: a plain equality, so the (job_tag, scheduled_at, id) index applies.
SELECT * FROM runs
WHERE (%(schedule_id)s::text IS NULL OR schedule_id = %(schedule_id)s)
  AND job_tag = %(job_tag)s
  AND (%(product_tag)s::text IS NULL OR product_tag = %(product_tag)s)
  AND (%(env)s::text IS NULL OR env = %(env)s)
  AND (%(phase)s::text IS NULL OR phase = %(phase)s)
  AND (%(since)s::bigint IS NULL OR scheduled_at >= %(since)s)
  AND (%(until)s::bigint IS NULL OR scheduled_at < %(until)s)
  AND (scheduled_at, id) < (%(after_at)s::bigint, %(after_id)s::text)
ORDER BY scheduled_at DESC, id DESC LIMIT %(limit)s OFFSET %(offset)s;

-- name: next_wakeup
-- run_due: the earliest run under no limit; held_due: for each set of limits that due runs fall under (one
-- probe of runs_limited_sets per distinct set, however many runs wait), its earliest run, or the set's hold
-- if that is later (limit_holds: a claim found the set full and looks again then).
SELECT
    (SELECT min(next_run_at) FROM schedules WHERE status = 'active' AND next_run_at IS NOT NULL) AS schedule_due,
    (SELECT available_at FROM runs
     WHERE phase IN ('scheduled', 'queued', 'retry_scheduled') AND available_at IS NOT NULL AND limit_keys IS NULL
     ORDER BY available_at LIMIT 1) AS run_due,
    (WITH RECURSIVE sets(k) AS (
        (SELECT limit_keys FROM runs
         WHERE phase IN ('scheduled', 'queued', 'retry_scheduled') AND available_at IS NOT NULL AND limit_keys IS NOT NULL
         ORDER BY limit_keys LIMIT 1)
        UNION ALL
        SELECT (SELECT limit_keys FROM runs
                WHERE phase IN ('scheduled', 'queued', 'retry_scheduled') AND available_at IS NOT NULL AND limit_keys IS NOT NULL
                  AND limit_keys > sets.k
                ORDER BY limit_keys LIMIT 1)
        FROM sets WHERE sets.k IS NOT NULL
     )
     SELECT min(GREATEST(
         (SELECT min(available_at) FROM runs
          WHERE phase IN ('scheduled', 'queued', 'retry_scheduled') AND available_at IS NOT NULL AND limit_keys = sets.k),
         (SELECT held_until FROM limit_holds h WHERE h.limit_keys = sets.k)))
     FROM sets WHERE sets.k IS NOT NULL) AS held_due,
    (SELECT min(lease_expires_at) FROM runs WHERE phase = 'running') AS lease_expiry;

-- name: count_runs
SELECT phase, count(*) AS n FROM runs GROUP BY phase;

-- name: schedule_history
-- job.history: a schedule's counts over all its runs and its newest %(limit)s runs, numbered from 1 in order of due
-- time (ties by id), in one statement so that counts and numbers agree. No row: no such schedule; one row whose
-- run_id is NULL: a schedule without runs. Runs pruned (retention) count through the schedule's pruned_* columns;
-- numbers are exact for the runs due after every pruned one. %(max_bytes)s: the runs listed stop once their outputs
-- and errors pass about that many bytes, one at least (cut: how many of the newest %(limit)s were left out), so that
-- a history of 10,000 runs of a megabyte each is not read whole (NULL: no bound).
WITH picked AS (
    SELECT id, scheduled_at, coalesce(octet_length(output), 0) + coalesce(octet_length(error), 0) AS size
    FROM runs WHERE schedule_id = %(schedule_id)s
    ORDER BY scheduled_at DESC, id DESC LIMIT %(limit)s
), sized AS (
    SELECT id, sum(size) OVER (ORDER BY scheduled_at DESC, id DESC ROWS UNBOUNDED PRECEDING) - size AS before
    FROM picked
), recent AS (
    SELECT r.id, r.scheduled_at, r.started_at, r.completed_at, r.duration_ms, r.phase, r.error, r.output,
           r.triggered_by, r.retry_count
    FROM sized z JOIN runs r ON r.id = z.id
    WHERE %(max_bytes)s::bigint IS NULL OR z.before = 0 OR z.before < %(max_bytes)s
), counted AS (
    SELECT count(*) AS total,
           count(*) FILTER (WHERE phase = 'completed') AS successful,
           count(*) FILTER (WHERE phase = 'failed') AS failed
    FROM runs WHERE schedule_id = %(schedule_id)s
)
SELECT s.job_tag, c.total + s.pruned_runs AS total, c.successful + s.pruned_completed AS successful,
       c.failed + s.pruned_failed AS failed,
       c.total + s.pruned_runs + 1 - row_number() OVER (ORDER BY r.scheduled_at DESC, r.id DESC) AS number,
       r.id AS run_id, r.scheduled_at, r.started_at, r.completed_at, r.duration_ms, r.phase, r.error, r.output,
       r.triggered_by, r.retry_count, (SELECT count(*) FROM picked) - (SELECT count(*) FROM recent) AS cut
FROM schedules s CROSS JOIN counted c LEFT JOIN recent r ON true
WHERE s.id = %(schedule_id)s
ORDER BY r.scheduled_at DESC, r.id DESC;

-- name: run_stats
-- job.stats: the runs due in [since, until) by phase: how many, how many never retried, and their retries
-- summed. A filter left NULL keeps every value.
-- Pruned runs are read from run_minutes (their due minute): a minute counts when it lies wholly in the window.
-- A run is in runs or in run_minutes, never both.
WITH pruned AS (
    SELECT coalesce(sum(due_completed), 0) AS completed, coalesce(sum(due_failed), 0) AS failed,
           coalesce(sum(due_cancelled), 0) AS cancelled, coalesce(sum(due_first_try), 0) AS first_try,
           coalesce(sum(due_retries), 0) AS retries
    FROM run_minutes
    WHERE (%(product_tag)s::text IS NULL OR product_tag = %(product_tag)s)
      AND (%(env)s::text IS NULL OR env = %(env)s)
      AND minute >= coalesce(%(since)s::bigint, -9223372036854775808)
      AND minute <= coalesce(%(until)s::bigint, 9223372036854775807) - 60000
)
SELECT phase, sum(n) AS n, sum(first_try) AS first_try, sum(retries) AS retries FROM (
    SELECT phase, count(*) AS n, count(*) FILTER (WHERE retry_count = 0) AS first_try,
           coalesce(sum(retry_count), 0) AS retries
    FROM runs
    WHERE (%(product_tag)s::text IS NULL OR product_tag = %(product_tag)s)
      AND (%(env)s::text IS NULL OR env = %(env)s)
      AND scheduled_at >= coalesce(%(since)s::bigint, -9223372036854775808)  -- a range: runs_time applies
      AND scheduled_at < coalesce(%(until)s::bigint, 9223372036854775807)
    GROUP BY phase
    UNION ALL SELECT 'completed', completed, first_try, 0 FROM pruned
    UNION ALL SELECT 'failed', failed, 0, retries FROM pruned
    UNION ALL SELECT 'cancelled', cancelled, 0, 0 FROM pruned
) counted
GROUP BY phase;

-- name: cache_get
SELECT value FROM cache_entries WHERE key = %(key)s AND expires_at > %(now)s;

-- name: cache_put
INSERT INTO cache_entries (key, value, expires_at) VALUES (%(key)s, %(value)s, %(expires_at)s)
ON CONFLICT (key) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at;

-- name: cache_purge
DELETE FROM cache_entries WHERE expires_at <= %(now)s;

-- name: notify
-- Delivered at commit to the store's LISTENers: runs may be due now.
SELECT pg_notify(%(channel)s, %(payload)s);

-- name: server_time
-- The database's clock: every node judges due times by it (StoreClock), whatever its own clock says.
SELECT clock_timestamp() AS now;
