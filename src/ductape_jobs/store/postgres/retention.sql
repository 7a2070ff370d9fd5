-- SQL of the PostgreSQL store's pruner (retention.py). Times are BIGINT milliseconds since the Unix epoch, UTC.
-- Each prunable_* picks and locks one batch, oldest first, skipping rows another pruner holds (SKIP LOCKED):
-- racing pruners delete different rows and never wait for each other's rows; the store deletes the batch by key
-- in the same short transaction, and counts the pruned runs on their schedules (in id order: no deadlock; two
-- pruners of one schedule's runs wait there briefly for each other).
-- before is the latest of the cutoffs, so the index on the time column bounds the scan.

-- name: prunable_done_runs
-- Completed and cancelled runs older than their keep, by their completion time (runs_done: failed runs, kept
-- longer, are not in it, so a batch never scans past them). Unfinished runs are in no such phase.
SELECT id FROM runs
WHERE phase IN ('completed', 'cancelled') AND completed_at < %(done_before)s
  AND ((phase = 'completed' AND completed_at < %(completed_before)s)
    OR (phase = 'cancelled' AND completed_at < %(cancelled_before)s))
  AND NOT (phase = 'completed' AND job_tag = ANY(%(own_completed)s::text[]))
ORDER BY completed_at LIMIT %(limit)s
FOR UPDATE SKIP LOCKED;

-- name: prunable_failed_runs
-- Failed runs older than their keep, found on runs_failed: a run ends after it is due, so a run that failed
-- before failed_before was due before it too, and scheduled_at bounds the scan.
SELECT id FROM runs
WHERE phase = 'failed' AND scheduled_at < %(failed_before)s AND completed_at < %(failed_before)s
  AND NOT job_tag = ANY(%(own_failed)s::text[])
ORDER BY scheduled_at, id LIMIT %(limit)s
FOR UPDATE SKIP LOCKED;

-- name: count_prunable_runs
SELECT count(*) AS runs,
       coalesce(sum((SELECT count(*) FROM attempts a WHERE a.run_id = r.id)), 0) AS attempts
FROM runs r
WHERE completed_at IS NOT NULL AND completed_at < %(before)s
  AND ((phase = 'completed' AND completed_at < %(completed_before)s)
    OR (phase = 'failed' AND completed_at < %(failed_before)s)
    OR (phase = 'cancelled' AND completed_at < %(cancelled_before)s))
  AND NOT (phase = 'completed' AND job_tag = ANY(%(own_completed)s::text[]))
  AND NOT (phase = 'failed' AND job_tag = ANY(%(own_failed)s::text[]));

-- name: delete_attempts_of_runs
DELETE FROM attempts WHERE run_id = ANY(%(ids)s);

-- name: delete_runs
DELETE FROM runs WHERE id = ANY(%(ids)s) AND phase IN ('completed', 'failed', 'cancelled')
RETURNING schedule_id, phase, product_tag, env, scheduled_at, completed_at, retry_count;

-- name: count_pruned_runs
-- A schedule keeps the count of its pruned runs (job.history adds them to what is left).
UPDATE schedules SET pruned_runs = pruned_runs + %(runs)s, pruned_completed = pruned_completed + %(completed)s,
    pruned_failed = pruned_failed + %(failed)s
WHERE id = %(schedule_id)s;

-- name: jobs_with_keeps
-- The jobs that keep their own runs (keep_completed / keep_failed): few, read once per prune.
SELECT product_tag, tag, keep_completed, keep_failed FROM jobs
WHERE keep_completed IS NOT NULL OR keep_failed IS NOT NULL
ORDER BY tag, product_tag;

-- name: nth_newest_run_of_jobs
-- A job that keeps its newest N runs of an outcome: the newest one past them (offset N), by due time on runs_job.
SELECT scheduled_at, id FROM runs
WHERE job_tag = %(tag)s AND phase = %(phase)s AND schedule_id IN (SELECT id FROM schedules WHERE job_tag = %(tag)s AND job_product = ANY(%(products)s::text[]))
ORDER BY scheduled_at DESC, id DESC LIMIT 1 OFFSET %(offset)s;

-- name: prunable_runs_of_jobs
-- Runs of one outcome of the jobs (tag, products), due up to (at, id) and finished before :before, oldest first:
-- a job's own keep (a duration: at = before; a count: (at, id) is the newest run past the count).
SELECT id FROM runs
WHERE job_tag = %(tag)s AND phase = %(phase)s AND (scheduled_at, id) <= (%(at)s::bigint, %(id)s::text)
  AND completed_at < %(before)s AND schedule_id IN (SELECT id FROM schedules WHERE job_tag = %(tag)s AND job_product = ANY(%(products)s::text[]))
ORDER BY scheduled_at, id LIMIT %(limit)s
FOR UPDATE SKIP LOCKED;

-- name: prunable_runs_of_other_jobs
-- Runs of one outcome with that tag but of none of the jobs (tag, products) that keep their own: the client's
-- keep applies to them (a job of another product, a deleted job).
SELECT id FROM runs
WHERE job_tag = %(tag)s AND phase = %(phase)s AND scheduled_at < %(before)s AND completed_at < %(before)s
  AND schedule_id NOT IN (SELECT id FROM schedules WHERE job_tag = %(tag)s AND job_product = ANY(%(products)s::text[]))
ORDER BY scheduled_at, id LIMIT %(limit)s
FOR UPDATE SKIP LOCKED;

-- name: count_runs_of_jobs
SELECT count(*) AS runs,
       coalesce(sum((SELECT count(*) FROM attempts a WHERE a.run_id = r.id)), 0) AS attempts
FROM runs r
WHERE job_tag = %(tag)s AND phase = %(phase)s AND (scheduled_at, id) <= (%(at)s::bigint, %(id)s::text)
  AND completed_at < %(before)s AND schedule_id IN (SELECT id FROM schedules WHERE job_tag = %(tag)s AND job_product = ANY(%(products)s::text[]));

-- name: count_runs_of_other_jobs
SELECT count(*) AS runs,
       coalesce(sum((SELECT count(*) FROM attempts a WHERE a.run_id = r.id)), 0) AS attempts
FROM runs r
WHERE job_tag = %(tag)s AND phase = %(phase)s AND scheduled_at < %(before)s AND completed_at < %(before)s
  AND schedule_id NOT IN (SELECT id FROM schedules WHERE job_tag = %(tag)s AND job_product = ANY(%(products)s::text[]));

-- name: prunable_feature_runs
-- A feature run ends after it starts, so created_at < before bounds the scan on feature_runs_time.
SELECT id FROM feature_runs
WHERE created_at < %(before)s AND completed_at IS NOT NULL
  AND ((status = 'completed' AND completed_at < %(completed_before)s)
    OR (status = 'failed' AND completed_at < %(failed_before)s))
ORDER BY created_at LIMIT %(limit)s
FOR UPDATE SKIP LOCKED;

-- name: count_prunable_feature_runs
SELECT count(*) AS feature_runs,
       coalesce(sum((SELECT count(*) FROM feature_events e WHERE e.feature_run_id = f.id)), 0) AS feature_events
FROM feature_runs f
WHERE created_at < %(before)s AND completed_at IS NOT NULL
  AND ((status = 'completed' AND completed_at < %(completed_before)s)
    OR (status = 'failed' AND completed_at < %(failed_before)s));

-- name: delete_events_of_feature_runs
DELETE FROM feature_events WHERE feature_run_id = ANY(%(ids)s);

-- name: delete_feature_runs
DELETE FROM feature_runs WHERE id = ANY(%(ids)s) AND status IN ('completed', 'failed');

-- name: prunable_deliveries
-- Deliveries that ended (delivered, or failed for good), by the time of their event (webhook_deliveries_time).
SELECT id FROM webhook_deliveries
WHERE created_at < %(before)s
  AND ((status = 'delivered' AND created_at < %(completed_before)s)
    OR (status = 'failed' AND created_at < %(failed_before)s))
ORDER BY created_at LIMIT %(limit)s
FOR UPDATE SKIP LOCKED;

-- name: count_prunable_deliveries
SELECT count(*) AS webhook_deliveries FROM webhook_deliveries
WHERE created_at < %(before)s
  AND ((status = 'delivered' AND created_at < %(completed_before)s)
    OR (status = 'failed' AND created_at < %(failed_before)s));

-- name: delete_deliveries
DELETE FROM webhook_deliveries
WHERE id = ANY(%(ids)s) AND status IN ('delivered', 'failed');

-- name: prunable_cache_entries
SELECT key FROM cache_entries WHERE expires_at <= %(now)s ORDER BY expires_at LIMIT %(limit)s
FOR UPDATE SKIP LOCKED;

-- name: count_prunable_cache_entries
SELECT count(*) AS cache_entries FROM cache_entries WHERE expires_at <= %(now)s;

-- name: delete_cache_entries
DELETE FROM cache_entries WHERE key = ANY(%(ids)s) AND expires_at <= %(now)s;

-- name: prunable_outbox
-- Outbox events every reader has read: at or before the slowest cursor of a live stream whose lease has not lapsed
-- and, while some webhook exists, of a durable consumer (the webhooks' relay; none yet: none pruned). Without a
-- reader, every event: nobody will read them (a stream opened later starts at the newest event, a webhook created
-- later takes only later changes). The caller holds lock_outbox_marks (outbox.sql): a stream opening meanwhile is
-- either seen here or sees this prune's mark.
SELECT seq FROM outbox
WHERE (txid, seq) <= (
    SELECT txid, seq FROM (
        SELECT txid, seq FROM outbox_consumers
        WHERE lease_until >= %(now)s OR (lease_until IS NULL AND EXISTS (SELECT 1 FROM webhooks))
        UNION ALL
        SELECT 0, 0 WHERE EXISTS (SELECT 1 FROM webhooks)
                      AND NOT EXISTS (SELECT 1 FROM outbox_consumers WHERE lease_until IS NULL)
        UNION ALL
        SELECT 9223372036854775807, 9223372036854775807
    ) readers ORDER BY txid, seq LIMIT 1)
ORDER BY txid, seq LIMIT %(limit)s
FOR UPDATE SKIP LOCKED;

-- name: count_prunable_outbox
SELECT count(*) AS outbox FROM outbox
WHERE (txid, seq) <= (
    SELECT txid, seq FROM (
        SELECT txid, seq FROM outbox_consumers
        WHERE lease_until >= %(now)s OR (lease_until IS NULL AND EXISTS (SELECT 1 FROM webhooks))
        UNION ALL
        SELECT 0, 0 WHERE EXISTS (SELECT 1 FROM webhooks)
                      AND NOT EXISTS (SELECT 1 FROM outbox_consumers WHERE lease_until IS NULL)
        UNION ALL
        SELECT 9223372036854775807, 9223372036854775807
    ) readers ORDER BY txid, seq LIMIT 1);

-- name: mark_outbox_pruned
-- The newest event of a batch about to be deleted, as the pruned mark (streams resume only after it).
UPDATE outbox_marks m SET pruned_txid = g.txid, pruned_seq = g.seq
FROM (SELECT txid, seq FROM outbox WHERE seq = ANY(%(ids)s) ORDER BY txid DESC, seq DESC LIMIT 1) g
WHERE m.id = 1 AND (g.txid, g.seq) > (m.pruned_txid, m.pruned_seq);

-- name: delete_outbox
DELETE FROM outbox WHERE seq = ANY(%(ids)s);

-- name: add_run_minutes
-- Pruned runs added to their minutes' statistics (run_minutes; migration 14), in the transaction that deletes
-- them; the rows come in key order, so racing pruners lock them in one order.
INSERT INTO run_minutes (minute, product_tag, env, ended_completed, ended_failed, due_completed, due_failed,
                         due_cancelled, due_first_try, due_retries)
VALUES (%(minute)s, %(product_tag)s, %(env)s, %(ended_completed)s, %(ended_failed)s, %(due_completed)s, %(due_failed)s,
        %(due_cancelled)s, %(due_first_try)s, %(due_retries)s)
ON CONFLICT (minute, product_tag, env) DO UPDATE SET
    ended_completed = run_minutes.ended_completed + excluded.ended_completed,
    ended_failed = run_minutes.ended_failed + excluded.ended_failed,
    due_completed = run_minutes.due_completed + excluded.due_completed,
    due_failed = run_minutes.due_failed + excluded.due_failed,
    due_cancelled = run_minutes.due_cancelled + excluded.due_cancelled,
    due_first_try = run_minutes.due_first_try + excluded.due_first_try,
    due_retries = run_minutes.due_retries + excluded.due_retries;

-- name: prunable_run_minutes
-- Rows of the statistics' minutes older than their keep (Retention.keep_stats), oldest first, on the
-- primary key; picked by ctid (the rows stay locked, so it holds until the delete).
SELECT ctid::text AS row FROM run_minutes WHERE minute < %(stats_before)s
ORDER BY minute, product_tag, env LIMIT %(limit)s
FOR UPDATE SKIP LOCKED;

-- name: count_prunable_run_minutes
SELECT count(*) AS run_minutes FROM run_minutes WHERE minute < %(stats_before)s;

-- name: delete_run_minutes
DELETE FROM run_minutes WHERE ctid = ANY(%(ids)s::tid[]) AND minute < %(stats_before)s;

-- name: schedules_after
-- The sweep's next batch of schedules, by id (ids sort by creation), after %(after)s: the ended schedules that no
-- run's prune took with it (cancelled before their first run, ended after their runs were pruned, kept by an older
-- release).
SELECT id FROM schedules WHERE id > %(after)s ORDER BY id LIMIT %(limit)s;

-- name: lock_ended_schedules
-- The sweep's ended schedules locked, in id order, before delete_ended_schedules reads their runs in a statement of
-- its own: a trigger() of one (it locks the schedule, then makes its run) has committed, and is seen, or waits and
-- then finds it gone. (A run prune's schedules are locked already: count_pruned_runs.)
SELECT id FROM schedules
WHERE id = ANY(%(ids)s)
  AND ((status = 'completed' AND updated_at < %(completed_before)s)
    OR (status = 'cancelled' AND updated_at < %(cancelled_before)s))
ORDER BY id
FOR UPDATE SKIP LOCKED;

-- name: delete_ended_schedules
-- Of the schedules %(ids)s, those that ended (completed, cancelled) before their keep and hold no run any more.
-- Nothing reads an ended schedule but job.fetch and its history, all of it pruned; kept, a queue's one-offs grew the
-- table by a row, its input with it, for every schedule(), for ever. A JOB event's schedule stays while its feature
-- run is kept unless completed (a run resumed after a crash, or a failed one retried, looks it up by its key,
-- <feature run>:<sequence>:<event>, and would schedule its job again). A schedule a caller keyed (key:...) stays: its
-- key stays taken, and the deploy that asks for it again is answered it, not given a new one.
DELETE FROM schedules s
WHERE s.id = ANY(%(ids)s)
  AND ((s.status = 'completed' AND s.updated_at < %(completed_before)s)
    OR (s.status = 'cancelled' AND s.updated_at < %(cancelled_before)s))
  AND NOT EXISTS (SELECT 1 FROM runs r WHERE r.schedule_id = s.id)
  AND (s.feature_key IS NULL OR substr(s.feature_key, 1, 4) <> 'key:')  -- a caller's key stays taken
  AND (s.feature_key IS NULL OR NOT EXISTS (
      SELECT 1 FROM feature_runs f WHERE f.id = split_part(s.feature_key, ':', 1) AND f.status <> 'completed'));

-- name: count_prunable_schedules
-- The schedules a prune would delete: ended before their keep, holding no run that the prune keeps (by the client's
-- keeps, or by %(passes)s, the passes of the jobs that keep their own runs as prunable_runs_of_jobs and
-- prunable_runs_of_other_jobs read them), and no feature run that it keeps and may run again.
SELECT count(*) AS schedules FROM schedules s
WHERE ((s.status = 'completed' AND s.updated_at < %(completed_before)s)
    OR (s.status = 'cancelled' AND s.updated_at < %(cancelled_before)s))
  AND NOT EXISTS (
      SELECT 1 FROM runs r WHERE r.schedule_id = s.id
        AND NOT (r.completed_at IS NOT NULL
             AND ((r.phase = 'completed' AND r.completed_at < %(completed_before)s
                   AND NOT r.job_tag = ANY(%(own_completed)s::text[]))
               OR (r.phase = 'failed' AND r.completed_at < %(failed_before)s
                   AND NOT r.job_tag = ANY(%(own_failed)s::text[]))
               OR (r.phase = 'cancelled' AND r.completed_at < %(cancelled_before)s)
               OR EXISTS (
                   SELECT 1 FROM jsonb_array_elements(%(passes)s::jsonb) p
                   WHERE p ->> 'tag' = r.job_tag AND p ->> 'phase' = r.phase
                     AND r.completed_at < (p ->> 'before')::bigint
                     AND CASE WHEN (p ->> 'own')::boolean
                         THEN (r.scheduled_at, r.id) <= ((p ->> 'at')::bigint, p ->> 'id')
                              AND (p -> 'products') ? s.job_product
                         ELSE r.scheduled_at < (p ->> 'before')::bigint
                              AND NOT (p -> 'products') ? s.job_product
                     END))))
  AND (s.feature_key IS NULL OR substr(s.feature_key, 1, 4) <> 'key:')  -- a caller's key stays taken
  AND (s.feature_key IS NULL OR NOT EXISTS (
      SELECT 1 FROM feature_runs f
      WHERE f.id = split_part(s.feature_key, ':', 1) AND f.status <> 'completed'
        AND NOT (f.status = 'failed' AND f.created_at < %(before)s AND f.completed_at < %(failed_before)s)));
