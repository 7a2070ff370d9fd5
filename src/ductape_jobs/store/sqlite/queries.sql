-- SQL of the SQLite store. Times are integer milliseconds since the Unix epoch, UTC.

-- name: insert_job
INSERT INTO jobs (product_tag, tag, name, event_type, event_tag, executions, intervals, start_at, keep_completed,
    keep_failed, created_at, updated_at, resources, concurrency, rate, priority, limit_keys)
VALUES (:product_tag, :tag, :name, :event_type, :event_tag, :executions, :intervals, :start_at,
    :keep_completed, :keep_failed, :now, :now, :resources, :concurrency, :rate, :priority, :limit_keys);

-- name: update_job
UPDATE jobs SET name = :name, event_type = :event_type, event_tag = :event_tag, executions = :executions,
    intervals = :intervals, start_at = :start_at, keep_completed = :keep_completed,
    keep_failed = :keep_failed, updated_at = :now,
    resources = :resources, concurrency = :concurrency, rate = :rate, priority = :priority, limit_keys = :limit_keys
WHERE product_tag = :product_tag AND tag = :tag;

-- name: follow_job_cadence
-- Schedules without `repeat` follow their job's cadence: a changed interval moves their next occurrence
-- (re-anchored on the last occurrence, so the new interval counts from there). One that has not run keeps its next
-- occurrence (its start, or where a resume moved it past the ones its pause skipped), whatever the cadence becomes:
-- a job no longer repeating runs it once.
UPDATE schedules SET
    start_at = coalesce(last_due_at, next_run_at, start_at),
    every_ms = CASE WHEN :intervals > 0 THEN :intervals END,
    run_limit = CASE WHEN :intervals > 0 AND :executions > 0 THEN :executions END,
    next_run_at = CASE
        WHEN last_due_at IS NULL THEN coalesce(next_run_at, start_at)
        WHEN :intervals <= 0 THEN NULL
        WHEN :executions > 0 AND run_count >= :executions THEN NULL
        ELSE last_due_at + :intervals END,
    status = CASE
        WHEN status = 'active' AND (:intervals <= 0 OR (:executions > 0 AND run_count >= :executions))
            AND last_due_at IS NOT NULL THEN 'completed'
        ELSE status END,
    updated_at = :now
WHERE job_tag = :tag AND job_product = :product_tag AND follows_job = 1 AND status IN ('active', 'paused');

-- name: lock_job
-- (SQLite's single writer already excludes the others.)
SELECT * FROM jobs WHERE product_tag = :product_tag AND tag = :tag;

-- name: check_jobs
-- One of add_schedules' checks of the jobs it schedules (SQLiteTx.check_jobs compares and orders them in-process,
-- as PostgreSQL's ductape_check_jobs() of its migration 19 does in the server): the job's planning fields, no row
-- when it does not exist. A primary-key lookup; the write lock (BEGIN IMMEDIATE) keeps it true until the commit.
SELECT event_type, event_tag, executions, intervals, start_at, updated_at FROM jobs
WHERE product_tag = :product_tag AND tag = :tag;

-- name: get_job
SELECT * FROM jobs WHERE product_tag = :product_tag AND tag = :tag;

-- name: find_job
-- A product's own job of that tag, else the shared one ('' sorts first).
SELECT * FROM jobs WHERE tag = :tag AND product_tag IN (:product_tag, '') ORDER BY product_tag DESC LIMIT 1;

-- name: jobs_tagged
SELECT * FROM jobs WHERE tag = :tag ORDER BY product_tag;

-- name: list_jobs
SELECT * FROM jobs WHERE (:product_tag IS NULL OR product_tag = :product_tag) ORDER BY tag, product_tag;

-- name: live_schedules_of_job
SELECT count(*) AS n FROM schedules
WHERE job_tag = :tag AND job_product = :product_tag AND status IN ('active', 'paused');

-- name: live_schedule_targets
-- Where a job's live schedules run it (job.update checks its new event against each): few rows, by schedules_job.
SELECT DISTINCT product_tag, env, app FROM schedules
WHERE job_tag = :tag AND job_product = :product_tag AND status IN ('active', 'paused');

-- name: lock_changed_job_schedules
-- (SQLite's single writer: nothing to lock.)
SELECT 1 WHERE 0;

-- name: relimit_job_runs
-- A job's limits changed (job.update of its resources, concurrency or rate): its pending runs wait under them as
-- they are now (they were copied when each run was made, so a backlog kept the limits it was made under). Runs
-- running finish as they began, and fall under them once queued again (a retry, a rescue, a release).
-- By runs_active.
UPDATE runs SET limit_keys = :limit_keys
WHERE (phase = 'scheduled' OR phase = 'queued' OR phase = 'retry_scheduled')
  AND schedule_id IN (SELECT id FROM schedules WHERE job_tag = :tag AND job_product = :product_tag);

-- name: cancel_finished_schedules_of_job
-- A job deleted: its finished schedules whose runs have not all ended (a one-off's queued run, a retry, one running,
-- whose retry would follow) are cancelled; their runs that have not started are then (cancel_pending_runs): they ran
-- for a job that no longer was (a new-user probe). Found from the runs not ended (runs_active), not the job's history.
-- (SQLite: runs_active named, and the unary + keeps schedules_job off: by id, not by the job's history.)
UPDATE schedules SET status = 'cancelled', reason = :reason, next_run_at = NULL, updated_at = :now
WHERE +status = 'completed' AND +job_product = :product_tag AND +job_tag = :tag AND id IN (
    SELECT schedule_id FROM runs INDEXED BY runs_active
    WHERE (phase = 'scheduled' OR phase = 'queued' OR phase = 'retry_scheduled' OR phase = 'running')
      AND job_tag = :tag)
RETURNING id;

-- name: delete_job
DELETE FROM jobs WHERE product_tag = :product_tag AND tag = :tag;

-- name: insert_schedule
INSERT INTO schedules (id, job_tag, job_product, env, product_tag, input, retries, app, cache, session_tag, session_claims,
    cron, tz, every_ms, run_limit, end_date, follows_job, timeout_ms, misfire, overlap, pause_on_failure,
    status, start_at, next_run_at, last_due_at, run_count, created_at, updated_at, trace_context, priority)
VALUES (:id, :job_tag, :job_product, :env, :product_tag, :input, :retries, :app, :cache, :session_tag, :session_claims,
    :cron, :tz, :every_ms, :run_limit, :end_date, :follows_job, :timeout_ms, :misfire, :overlap,
    :pause_on_failure, :status, :start_at, :next_run_at, :last_due_at, :run_count, :created_at, :created_at, :trace_context,
    :priority);

-- name: insert_run
-- A run copies its job's event and its schedule's input. One scheduled run per (schedule, due time): a
-- second stays unwritten (and is not returned). A manual run (triggered_by = 'manual') is always a run of its own.
INSERT INTO runs (id, schedule_id, scheduled_at, job_tag, product_tag, env, event_type, event_tag, app, cache,
    session_claims, input, phase, available_at, triggered_by, overlap, max_retries, timeout_ms, created_at, updated_at,
    trace_context, priority, limit_keys)
SELECT :id, s.id, :scheduled_at, s.job_tag, s.product_tag, s.env, j.event_type, j.event_tag, s.app, s.cache,
    s.session_claims, s.input, :phase, :available_at, :triggered_by, s.overlap, s.retries, s.timeout_ms, :now, :now,
    s.trace_context, coalesce(s.priority, j.priority), j.limit_keys
FROM schedules s JOIN jobs j ON j.product_tag = s.job_product AND j.tag = s.job_tag
WHERE s.id = :schedule_id
ON CONFLICT (schedule_id, scheduled_at, (CASE WHEN triggered_by = 'manual' THEN id ELSE '' END)) DO NOTHING
RETURNING id;

-- name: insert_first_run
-- A new schedule's first run: the schedule's values as add_schedules holds them, the job's event, priority and
-- limit keys from its row (checked earlier in the transaction by check_jobs). Scalar subqueries on the jobs' key:
-- INSERT ... SELECT FROM jobs costs twice as much a row (about 48 against 30 us in executemany).
INSERT INTO runs (id, schedule_id, scheduled_at, job_tag, product_tag, env, event_type, event_tag, app, cache,
    session_claims, input, phase, available_at, triggered_by, overlap, max_retries, timeout_ms, created_at, updated_at,
    trace_context, priority, limit_keys)
VALUES (:id, :schedule_id, :scheduled_at, :job_tag, :product_tag, :env,
    (SELECT event_type FROM jobs WHERE product_tag = :job_product AND tag = :job_tag),
    (SELECT event_tag FROM jobs WHERE product_tag = :job_product AND tag = :job_tag),
    :app, :cache, :session_claims, :input, :phase, :available_at, :triggered_by, :overlap, :retries, :timeout_ms, :now,
    :now, :trace_context,
    coalesce(:priority, (SELECT priority FROM jobs WHERE product_tag = :job_product AND tag = :job_tag)),
    (SELECT limit_keys FROM jobs WHERE product_tag = :job_product AND tag = :job_tag));

-- name: get_schedule
SELECT * FROM schedules WHERE id = :id;

-- name: lock_schedule
SELECT * FROM schedules WHERE id = :id;

-- name: lock_buffer_one_schedules
-- (SQLite's single writer already excludes a scheduler deciding about these schedules: nothing to lock.)
SELECT 1 WHERE 0;

-- name: due_schedules
-- Due by :due_by (a tick ahead, WorkerOptions.ahead), but a schedule whose overlap policy looks at its previous
-- run only when due at :now: whether that run still goes is known then.
SELECT * FROM schedules
WHERE status = 'active' AND next_run_at IS NOT NULL AND next_run_at <= :due_by
  AND (next_run_at <= :now OR overlap = 'allow')
ORDER BY next_run_at LIMIT :limit;

-- name: overlap_state
SELECT schedule_id,
       count(*) FILTER (WHERE available_at IS NOT NULL OR phase = 'running') AS active,
       count(*) FILTER (WHERE available_at IS NULL AND phase = 'scheduled') AS held
FROM runs
WHERE schedule_id IN (SELECT value FROM json_each(:ids))
  AND (phase = 'scheduled' OR phase = 'queued' OR phase = 'retry_scheduled' OR phase = 'running')
GROUP BY schedule_id;

-- name: update_schedule
-- Each column changes only when its set_<column> flag is true (a ScheduleChange names it).
UPDATE schedules SET
    status = CASE WHEN :set_status THEN :status ELSE status END,
    reason = CASE WHEN :set_reason THEN :reason ELSE reason END,
    next_run_at = CASE WHEN :set_next_run_at THEN :next_run_at ELSE next_run_at END,
    cron = CASE WHEN :set_cron THEN :cron ELSE cron END,
    tz = CASE WHEN :set_tz THEN :tz ELSE tz END,
    every_ms = CASE WHEN :set_every_ms THEN :every_ms ELSE every_ms END,
    run_limit = CASE WHEN :set_run_limit THEN :run_limit ELSE run_limit END,
    end_date = CASE WHEN :set_end_date THEN :end_date ELSE end_date END,
    follows_job = CASE WHEN :set_follows_job THEN :follows_job ELSE follows_job END,
    start_at = CASE WHEN :set_start_at THEN :start_at ELSE start_at END,
    updated_at = :now
WHERE id = :id;

-- name: advance_schedule
UPDATE schedules SET
    next_run_at = :next_run_at,
    last_due_at = coalesce(:last_due_at, last_due_at),
    run_count = run_count + :created,
    skipped_count = skipped_count + :skipped,
    status = CASE WHEN :finished THEN 'completed' ELSE status END,
    updated_at = :now
WHERE id = :id AND status = 'active' AND next_run_at IS :expected_next
RETURNING id;

-- name: cancel_pending_runs
UPDATE runs SET phase = 'cancelled', error = :reason, completed_at = :now, available_at = NULL, updated_at = :now
WHERE schedule_id = :schedule_id AND (phase = 'scheduled' OR phase = 'queued' OR phase = 'retry_scheduled');

-- name: acquire_runs
-- :due_by is now, or a little after it for a worker that claims a tick's runs ahead of their due time
-- (engine/worker.py): such a run starts at its due time, which its started_at and its attempt's say.
UPDATE runs SET phase = 'running', lease_owner = :worker_id, lease_expires_at = :lease_until,
    started_at = max(coalesce(available_at, :now), :now), attempt = attempt + 1, updated_at = :now
WHERE id IN (
    SELECT id FROM runs INDEXED BY runs_claim
    WHERE (phase = 'scheduled' OR phase = 'queued' OR phase = 'retry_scheduled')
      AND available_at IS NOT NULL AND limit_keys IS NULL
      AND available_at <= :due_by
    ORDER BY (available_at - priority * 1000)
    LIMIT :limit)
RETURNING *;

-- name: insert_attempt
-- :rows: the attempts of one claim as one JSON list (SQLiteTx.many: ROWS_AS_JSON).
INSERT INTO attempts (run_id, attempt, worker_id, started_at)
SELECT r.value ->> 'run_id', r.value ->> 'attempt', r.value ->> 'worker_id', r.value ->> 'now' FROM json_each(:rows) AS r;

-- name: extend_leases
UPDATE runs SET lease_expires_at = :until
WHERE id IN (SELECT value FROM json_each(:ids)) AND lease_owner = :worker_id AND phase = 'running';

-- name: finish_attempt
-- :rows: the attempts that ended, as one JSON list (SQLiteTx.many: ROWS_AS_JSON). An attempt the rescue marked
-- lost still records what its worker reported late ("lost, then completed"), without changing its run.
UPDATE attempts SET finished_at = a.value ->> 'finished_at',
    started_at = coalesce(a.value ->> 'started_at', attempts.started_at),
    outcome = CASE WHEN attempts.finished_at IS NULL THEN a.value ->> 'outcome'
                   ELSE 'lost, then ' || (a.value ->> 'outcome') END,
    error = CASE WHEN attempts.finished_at IS NULL THEN a.value ->> 'error'
                 ELSE coalesce(a.value ->> 'error', attempts.error) END
FROM json_each(:rows) AS a
WHERE attempts.run_id = a.value ->> 'run_id' AND attempts.attempt = a.value ->> 'attempt'
  AND (attempts.finished_at IS NULL OR attempts.outcome = 'lost');

-- name: finish_attempt_bound
-- finish_attempt for one row, its values bound: SQLiteTx.many writes a row of a long error so (LARGE_TEXT).
UPDATE attempts SET finished_at = :finished_at, started_at = coalesce(:started_at, started_at),
    outcome = CASE WHEN finished_at IS NULL THEN :outcome ELSE 'lost, then ' || :outcome END,
    error = CASE WHEN finished_at IS NULL THEN :error ELSE coalesce(:error, error) END
WHERE run_id = :run_id AND attempt = :attempt AND (finished_at IS NULL OR outcome = 'lost');

-- name: complete_run
-- :rows: every completed run of the call as one JSON list (SQLiteTx.many: ROWS_AS_JSON).
UPDATE runs SET phase = 'completed', completed_at = c.value ->> 'finished_at', duration_ms = c.value ->> 'duration_ms',
    output = c.value ->> 'output', error = NULL, lease_owner = NULL, lease_expires_at = NULL,
    updated_at = c.value ->> 'now', started_at = coalesce(c.value ->> 'started_at', runs.started_at)
FROM json_each(:rows) AS c
WHERE runs.id = c.value ->> 'run_id' AND runs.lease_owner = c.value ->> 'worker_id'
  AND runs.attempt = c.value ->> 'attempt' AND runs.phase = 'running';

-- name: complete_run_bound
-- complete_run for one row, its values bound: SQLiteTx.many writes a row of a large output so (LARGE_TEXT).
UPDATE runs SET phase = 'completed', completed_at = :finished_at, duration_ms = :duration_ms, output = :output,
    error = NULL, lease_owner = NULL, lease_expires_at = NULL, updated_at = :now,
    started_at = coalesce(:started_at, started_at)
WHERE id = :run_id AND lease_owner = :worker_id AND attempt = :attempt AND phase = 'running';

-- name: schedule_retry
UPDATE runs SET phase = 'retry_scheduled', available_at = :retry_at, retry_count = retry_count + 1,
    duration_ms = :duration_ms, error = :error, lease_owner = NULL, lease_expires_at = NULL, updated_at = :now,
    started_at = coalesce(:started_at, started_at),
    limit_keys = (SELECT j.limit_keys FROM schedules s JOIN jobs j ON j.product_tag = s.job_product AND j.tag = s.job_tag
                  WHERE s.id = runs.schedule_id)
WHERE id = :run_id AND lease_owner = :worker_id AND attempt = :attempt AND phase = 'running'
  AND NOT EXISTS (SELECT 1 FROM schedules s WHERE s.id = runs.schedule_id AND s.status = 'cancelled');

-- name: lock_runs
-- (SQLite's single writer: nothing to lock.)
SELECT 1 WHERE 0;

-- name: lock_schedules_of_runs
-- (SQLite's single writer already excludes a cancel of these schedules meanwhile: nothing to lock.)
SELECT 1 WHERE 0;

-- name: lock_deciding_schedules
-- (SQLite's single writer already excludes a cancel of these schedules meanwhile: nothing to lock.)
SELECT 1 WHERE 0;

-- name: cancel_retry
-- A run that failed and would be retried, of a schedule cancelled while it ran: cancelled instead (cancel() cancelled
-- the runs that had not started, retries included); schedule_retry passed it over. Returns it: its worker says so.
UPDATE runs SET phase = 'cancelled', completed_at = :finished_at, duration_ms = :duration_ms,
    error = coalesce((SELECT s.reason FROM schedules s WHERE s.id = runs.schedule_id), 'cancelled'),
    lease_owner = NULL, lease_expires_at = NULL, available_at = NULL, updated_at = :now,
    started_at = coalesce(:started_at, started_at)
WHERE id = :run_id AND lease_owner = :worker_id AND attempt = :attempt AND phase = 'running'
  AND EXISTS (SELECT 1 FROM schedules s WHERE s.id = runs.schedule_id AND s.status = 'cancelled')
RETURNING id;

-- name: fail_run
UPDATE runs SET phase = 'failed', completed_at = :finished_at, duration_ms = :duration_ms, error = :error,
    lease_owner = NULL, lease_expires_at = NULL, updated_at = :now, started_at = coalesce(:started_at, started_at)
WHERE id = :run_id AND lease_owner = :worker_id AND attempt = :attempt AND phase = 'running'
RETURNING id, schedule_id, overlap;

-- name: release_held_runs
-- A run held behind its schedule's previous run (overlap = buffer_one) becomes due once that run ended: the
-- held runs of the buffer_one schedules of the runs that ended (run_ids). Whether one of the schedule's runs is still
-- queued or running is read among its live runs (runs_active, whose phases the test names), not its whole history.
UPDATE runs SET available_at = :now, phase = 'queued', updated_at = :now
WHERE id IN (
    SELECT h.id FROM runs h INDEXED BY runs_held
    WHERE h.schedule_id IN (SELECT schedule_id FROM runs
                            WHERE id IN (SELECT value FROM json_each(:run_ids)) AND overlap = 'buffer_one')
      AND h.available_at IS NULL AND h.phase = 'scheduled'
      AND NOT EXISTS (SELECT 1 FROM runs r INDEXED BY runs_active WHERE r.schedule_id = h.schedule_id
                      AND (r.phase = 'scheduled' OR r.phase = 'queued' OR r.phase = 'retry_scheduled'
                           OR r.phase = 'running') AND r.phase <> 'scheduled'));

-- name: pause_on_failure
UPDATE schedules SET status = 'paused', reason = :reason, updated_at = :now
WHERE id = :schedule_id AND pause_on_failure = 1 AND status = 'active';

-- name: leased_runs
-- The runs a worker holds the lease of (runs_leases: the running runs only).
SELECT * FROM runs INDEXED BY runs_leases WHERE phase = 'running' AND lease_owner = :worker_id;

-- name: release_runs
-- A run given back keeps its due time if that is still ahead (one claimed ahead of it: WorkerOptions.ahead). One
-- whose start is still to come, or that the worker never began (:unstarted: a stop that waited for other runs past
-- its due time counted an attempt for it), never started: it goes back as its claim found it, its attempt not
-- counted (its attempt row is deleted: unstarted) and no start of its own.
UPDATE runs SET phase = 'queued', available_at = max(coalesce(available_at, :now), :now), lease_owner = NULL, lease_expires_at = NULL,
    attempt = CASE WHEN (started_at > :now OR id IN (SELECT value FROM json_each(:unstarted))) THEN attempt - 1 ELSE attempt END,
    started_at = CASE WHEN (started_at > :now OR id IN (SELECT value FROM json_each(:unstarted))) THEN NULL ELSE started_at END, updated_at = :now,
    limit_keys = (SELECT j.limit_keys FROM schedules s JOIN jobs j ON j.product_tag = s.job_product AND j.tag = s.job_tag
                  WHERE s.id = runs.schedule_id)
WHERE id IN (SELECT value FROM json_each(:ids)) AND lease_owner = :worker_id AND phase = 'running'
RETURNING id, CASE WHEN started_at IS NULL THEN attempt + 1 ELSE attempt END AS attempt, started_at IS NULL AS unstarted;

-- name: cancel_released_runs
-- Runs given back whose schedule was cancelled while the worker held them: ended as cancel() ends the runs that had
-- not started, not queued to run after it (release_runs takes the others). One whose start is still to come, or
-- that the worker never began (:unstarted), never began: its attempt is not counted (its row is deleted), as
-- release_runs does.
UPDATE runs SET phase = 'cancelled', completed_at = :now, duration_ms = NULL,
    error = coalesce((SELECT s.reason FROM schedules s WHERE s.id = runs.schedule_id), 'cancelled'),
    available_at = NULL, lease_owner = NULL, lease_expires_at = NULL,
    attempt = CASE WHEN (started_at > :now OR id IN (SELECT value FROM json_each(:unstarted))) THEN attempt - 1 ELSE attempt END,
    started_at = CASE WHEN (started_at > :now OR id IN (SELECT value FROM json_each(:unstarted))) THEN NULL ELSE started_at END, updated_at = :now
WHERE id IN (SELECT value FROM json_each(:ids)) AND lease_owner = :worker_id AND phase = 'running'
  AND EXISTS (SELECT 1 FROM schedules s WHERE s.id = runs.schedule_id AND s.status = 'cancelled')
RETURNING id, CASE WHEN started_at IS NULL THEN attempt + 1 ELSE attempt END AS attempt, started_at IS NULL AS unstarted;

-- name: delete_attempt
DELETE FROM attempts WHERE run_id = :run_id AND attempt = :attempt;

-- name: expired_leases
SELECT id, attempt, lease_owner, rescues, event_type FROM runs INDEXED BY runs_leases
WHERE phase = 'running' AND lease_expires_at < :now
ORDER BY lease_expires_at LIMIT 500;

-- name: cancel_lost_runs
-- Runs whose lease expired, of a schedule cancelled while they ran: ended cancelled (no duration: the attempt was
-- lost), not queued to run after the cancel; rescue_run and fail_lost_run pass them over.
UPDATE runs SET phase = 'cancelled', completed_at = :now, duration_ms = NULL,
    error = coalesce((SELECT s.reason FROM schedules s WHERE s.id = runs.schedule_id), 'cancelled'),
    available_at = NULL, lease_owner = NULL, lease_expires_at = NULL, updated_at = :now
WHERE id IN (SELECT value FROM json_each(:ids)) AND phase = 'running' AND lease_expires_at < :now
  AND EXISTS (SELECT 1 FROM schedules s WHERE s.id = runs.schedule_id AND s.status = 'cancelled')
RETURNING id;

-- name: rescue_run
UPDATE runs SET phase = 'queued', available_at = max(coalesce(available_at, :now), :now), rescues = rescues + 1, lease_owner = NULL,
    lease_expires_at = NULL, updated_at = :now,
    limit_keys = (SELECT j.limit_keys FROM schedules s JOIN jobs j ON j.product_tag = s.job_product AND j.tag = s.job_tag
                  WHERE s.id = runs.schedule_id)
WHERE id = :id AND phase = 'running' AND lease_expires_at < :now;

-- name: fail_lost_run
-- A run lost too often: its last attempt ended with no duration (an earlier attempt's is not kept as its own).
UPDATE runs SET phase = 'failed', completed_at = :now, error = :error, duration_ms = NULL, lease_owner = NULL,
    lease_expires_at = NULL, updated_at = :now
WHERE id = :id AND phase = 'running' AND lease_expires_at < :now
RETURNING id, schedule_id, overlap;

-- name: retry_run
-- job.retry: a failed or cancelled run queued once more, a retry that counts (retry_count, the stats' first tries)
-- if it ran before (a run cancelled before it started is not retried: it runs for the first time), with none
-- automatic after it. It keeps the error that failed it until its next attempt, not that attempt's times.
UPDATE runs SET phase = 'queued', available_at = :now,
    retry_count = retry_count + (CASE WHEN attempt > 0 THEN 1 ELSE 0 END),
    max_retries = retry_count + (CASE WHEN attempt > 0 THEN 1 ELSE 0 END),
    started_at = NULL, completed_at = NULL, duration_ms = NULL, updated_at = :now
WHERE id = :id AND phase IN ('failed', 'cancelled')
RETURNING *;

-- name: get_run
-- A due run under a limit shows the hold its set is under (limit_holds), while that hold covers its due time.
SELECT r.*, h.waiting_on FROM runs r
LEFT JOIN limit_holds h ON h.limit_keys = r.limit_keys
  AND (r.phase = 'scheduled' OR r.phase = 'queued' OR r.phase = 'retry_scheduled') AND r.available_at <= h.held_until
WHERE r.id = :id;

-- name: attempts_of_run
SELECT * FROM attempts WHERE run_id = :run_id ORDER BY attempt;

-- name: list_schedules
-- Schedules, newest first; a filter left NULL keeps every value.
SELECT * FROM schedules
WHERE (:status IS NULL OR status = :status)
  AND (:job_tag IS NULL OR job_tag = :job_tag)
  AND (:job_product IS NULL OR job_product = :job_product)
  AND (:product_tag IS NULL OR product_tag = :product_tag)
  AND (:env IS NULL OR env = :env)
  AND (created_at, id) < (:after_at, :after_id)
ORDER BY created_at DESC, id DESC LIMIT :limit OFFSET :offset;

-- name: list_runs
SELECT * FROM runs
WHERE (:schedule_id IS NULL OR schedule_id = :schedule_id)
  AND (:job_tag IS NULL OR job_tag = :job_tag)
  AND (:product_tag IS NULL OR product_tag = :product_tag)
  AND (:env IS NULL OR env = :env)
  AND (:phase IS NULL OR phase = :phase)
  AND (:since IS NULL OR scheduled_at >= :since)
  AND (:until IS NULL OR scheduled_at < :until)
  AND (scheduled_at, id) < (:after_at, :after_id)
ORDER BY scheduled_at DESC, id DESC LIMIT :limit OFFSET :offset;

-- name: list_failed_runs
-- list_runs for failed runs: the phase is a literal, so the partial index on failed runs applies.
SELECT * FROM runs
WHERE phase = 'failed'
  AND (:schedule_id IS NULL OR schedule_id = :schedule_id)
  AND (:job_tag IS NULL OR job_tag = :job_tag)
  AND (:product_tag IS NULL OR product_tag = :product_tag)
  AND (:env IS NULL OR env = :env)
  AND (:since IS NULL OR scheduled_at >= :since)
  AND (:until IS NULL OR scheduled_at < :until)
  AND (scheduled_at, id) < (:after_at, :after_id)
ORDER BY scheduled_at DESC, id DESC LIMIT :limit OFFSET :offset;

-- name: list_live_runs
-- list_runs for runs not yet ended (scheduled, queued, retry_scheduled, running): found among the few live runs by
-- their partial index (runs_active; the literal phases imply its terms), then sorted, not by reading every run kept
-- newest first (which SQLite's planner chose to spare the sort: 0.5 s at a million runs).
SELECT * FROM runs INDEXED BY runs_active
WHERE (phase = 'scheduled' OR phase = 'queued' OR phase = 'retry_scheduled' OR phase = 'running') AND phase = :phase
  AND (:schedule_id IS NULL OR schedule_id = :schedule_id)
  AND (:job_tag IS NULL OR job_tag = :job_tag)
  AND (:product_tag IS NULL OR product_tag = :product_tag)
  AND (:env IS NULL OR env = :env)
  AND (:since IS NULL OR scheduled_at >= :since)
  AND (:until IS NULL OR scheduled_at < :until)
  AND (scheduled_at, id) < (:after_at, :after_id)
ORDER BY scheduled_at DESC, id DESC LIMIT :limit OFFSET :offset;

-- name: list_runs_of_schedule
-- list_runs for one schedule: a plain equality, so the (schedule_id, scheduled_at) index applies.
SELECT * FROM runs
WHERE schedule_id = :schedule_id
  AND (:job_tag IS NULL OR job_tag = :job_tag)
  AND (:product_tag IS NULL OR product_tag = :product_tag)
  AND (:env IS NULL OR env = :env)
  AND (:phase IS NULL OR phase = :phase)
  AND (:since IS NULL OR scheduled_at >= :since)
  AND (:until IS NULL OR scheduled_at < :until)
  AND (scheduled_at, id) < (:after_at, :after_id)
ORDER BY scheduled_at DESC, id DESC LIMIT :limit OFFSET :offset;

-- name: list_runs_of_job
-- list_runs for one job: a plain equality, so the (job_tag, scheduled_at, id) index applies.
SELECT * FROM runs
WHERE (:schedule_id IS NULL OR schedule_id = :schedule_id)
  AND job_tag = :job_tag
  AND (:product_tag IS NULL OR product_tag = :product_tag)
  AND (:env IS NULL OR env = :env)
  AND (:phase IS NULL OR phase = :phase)
  AND (:since IS NULL OR scheduled_at >= :since)
  AND (:until IS NULL OR scheduled_at < :until)
  AND (scheduled_at, id) < (:after_at, :after_id)
ORDER BY scheduled_at DESC, id DESC LIMIT :limit OFFSET :offset;

-- name: next_wakeup
-- run_due: the earliest run under no limit; held_due: for each set of limits that due runs fall under (one
-- probe of runs_limited_sets per distinct set, however many runs wait), its earliest run, or the set's hold
-- if that is later (limit_holds: a claim found the set full and looks again then).
SELECT
    (SELECT min(next_run_at) FROM schedules WHERE status = 'active' AND next_run_at IS NOT NULL) AS schedule_due,
    (SELECT min(available_at) FROM runs INDEXED BY runs_pending
     WHERE (phase = 'scheduled' OR phase = 'queued' OR phase = 'retry_scheduled')
       AND available_at IS NOT NULL AND limit_keys IS NULL) AS run_due,
    (WITH RECURSIVE sets(k) AS (
        SELECT (SELECT limit_keys FROM runs INDEXED BY runs_limited_sets
                WHERE limit_keys IS NOT NULL AND (phase = 'scheduled' OR phase = 'queued' OR phase = 'retry_scheduled')
                  AND available_at IS NOT NULL
                ORDER BY limit_keys LIMIT 1)
        UNION ALL
        SELECT (SELECT limit_keys FROM runs INDEXED BY runs_limited_sets
                WHERE limit_keys IS NOT NULL AND (phase = 'scheduled' OR phase = 'queued' OR phase = 'retry_scheduled')
                  AND available_at IS NOT NULL
                  AND limit_keys > sets.k
                ORDER BY limit_keys LIMIT 1)
        FROM sets WHERE sets.k IS NOT NULL
     )
     SELECT min(max(
         (SELECT min(available_at) FROM runs INDEXED BY runs_limited_sets
          WHERE limit_keys = sets.k AND (phase = 'scheduled' OR phase = 'queued' OR phase = 'retry_scheduled')
            AND available_at IS NOT NULL),
         coalesce((SELECT held_until FROM limit_holds h WHERE h.limit_keys = sets.k), 0)))
     FROM sets WHERE sets.k IS NOT NULL) AS held_due,
    (SELECT min(lease_expires_at) FROM runs INDEXED BY runs_leases WHERE phase = 'running') AS lease_expiry;

-- name: count_runs
SELECT phase, count(*) AS n FROM runs GROUP BY phase;

-- name: schedule_history
-- job.history: a schedule's counts over all its runs and its newest :limit runs, numbered from 1 in order of due
-- time (ties by id), in one statement so that counts and numbers agree. No row: no such schedule; one row whose
-- run_id is NULL: a schedule without runs. Runs pruned (retention) count through the schedule's pruned_* columns;
-- numbers are exact for the runs due after every pruned one. :max_bytes: the runs listed stop once their outputs
-- and errors pass about that many bytes, one at least (cut: how many of the newest :limit were left out), so that
-- a history of 10,000 runs of a megabyte each is not read whole (NULL: no bound).
WITH picked AS (
    SELECT id, scheduled_at, coalesce(length(output), 0) + coalesce(length(error), 0) AS size
    FROM runs WHERE schedule_id = :schedule_id
    ORDER BY scheduled_at DESC, id DESC LIMIT :limit
), sized AS (
    SELECT id, sum(size) OVER (ORDER BY scheduled_at DESC, id DESC ROWS UNBOUNDED PRECEDING) - size AS before
    FROM picked
), recent AS (
    SELECT r.id, r.scheduled_at, r.started_at, r.completed_at, r.duration_ms, r.phase, r.error, r.output,
           r.triggered_by, r.retry_count
    FROM sized z JOIN runs r ON r.id = z.id
    WHERE :max_bytes IS NULL OR z.before = 0 OR z.before < :max_bytes
), counted AS (
    SELECT count(*) AS total,
           count(*) FILTER (WHERE phase = 'completed') AS successful,
           count(*) FILTER (WHERE phase = 'failed') AS failed
    FROM runs WHERE schedule_id = :schedule_id
)
SELECT s.job_tag, c.total + s.pruned_runs AS total, c.successful + s.pruned_completed AS successful,
       c.failed + s.pruned_failed AS failed,
       c.total + s.pruned_runs + 1 - row_number() OVER (ORDER BY r.scheduled_at DESC, r.id DESC) AS number,
       r.id AS run_id, r.scheduled_at, r.started_at, r.completed_at, r.duration_ms, r.phase, r.error, r.output,
       r.triggered_by, r.retry_count, (SELECT count(*) FROM picked) - (SELECT count(*) FROM recent) AS cut
FROM schedules s CROSS JOIN counted c LEFT JOIN recent r ON true
WHERE s.id = :schedule_id
ORDER BY r.scheduled_at DESC, r.id DESC;

-- name: run_stats
-- job.stats: the runs due in [:since, :until) by phase: how many, how many never retried, and their retries
-- summed. A filter left NULL keeps every value.
-- Pruned runs are read from run_minutes (their due minute): a minute counts when it lies wholly in the window.
-- A run is in runs or in run_minutes, never both.
WITH pruned AS (
    SELECT coalesce(sum(due_completed), 0) AS completed, coalesce(sum(due_failed), 0) AS failed,
           coalesce(sum(due_cancelled), 0) AS cancelled, coalesce(sum(due_first_try), 0) AS first_try,
           coalesce(sum(due_retries), 0) AS retries
    FROM run_minutes
    WHERE (:product_tag IS NULL OR product_tag = :product_tag)
      AND (:env IS NULL OR env = :env)
      AND minute >= coalesce(:since, -9223372036854775808)
      AND minute <= coalesce(:until, 9223372036854775807) - 60000
)
SELECT phase, sum(n) AS n, sum(first_try) AS first_try, sum(retries) AS retries FROM (
    SELECT phase, count(*) AS n, count(*) FILTER (WHERE retry_count = 0) AS first_try,
           coalesce(sum(retry_count), 0) AS retries
    FROM runs  -- the window as a range (an "x IS NULL OR" filter uses no index: every run was read)
    WHERE (:product_tag IS NULL OR product_tag = :product_tag)
      AND (:env IS NULL OR env = :env)
      AND scheduled_at >= coalesce(:since, -9223372036854775808)
      AND scheduled_at < coalesce(:until, 9223372036854775807)
    GROUP BY phase
    UNION ALL SELECT 'completed', completed, first_try, 0 FROM pruned
    UNION ALL SELECT 'failed', failed, 0, retries FROM pruned
    UNION ALL SELECT 'cancelled', cancelled, 0, 0 FROM pruned
)
GROUP BY phase;

-- name: cache_get
SELECT value FROM cache_entries WHERE key = :key AND expires_at > :now;

-- name: cache_put
INSERT INTO cache_entries (key, value, expires_at) VALUES (:key, :value, :expires_at)
ON CONFLICT (key) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at;

-- name: cache_purge
DELETE FROM cache_entries WHERE expires_at <= :now;
