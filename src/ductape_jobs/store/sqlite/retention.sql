-- SQL of the SQLite store's pruner (retention.py). Times are integer milliseconds since the Unix epoch, UTC.
-- Each prunable_* picks one batch, oldest first; the store deletes it in the same short transaction.
-- before is the latest of the cutoffs, so the index on the time column bounds the scan.

-- name: prunable_done_runs
-- Completed and cancelled runs older than their keep, by their completion time (runs_done: failed runs, kept
-- longer, are not in it, so a batch never scans past them). Unfinished runs are in no such phase.
SELECT id FROM runs
WHERE phase IN ('completed', 'cancelled') AND completed_at < :done_before
  AND ((phase = 'completed' AND completed_at < :completed_before)
    OR (phase = 'cancelled' AND completed_at < :cancelled_before))
  AND NOT (phase = 'completed' AND job_tag IN (SELECT value FROM json_each(:own_completed)))
ORDER BY completed_at LIMIT :limit;

-- name: prunable_failed_runs
-- Failed runs older than their keep, found on runs_failed: a run ends after it is due, so a run that failed
-- before failed_before was due before it too, and scheduled_at bounds the scan.
SELECT id FROM runs
WHERE phase = 'failed' AND scheduled_at < :failed_before AND completed_at < :failed_before
  AND NOT job_tag IN (SELECT value FROM json_each(:own_failed))
ORDER BY scheduled_at, id LIMIT :limit;

-- name: count_prunable_runs
SELECT count(*) AS runs,
       coalesce(sum((SELECT count(*) FROM attempts a WHERE a.run_id = r.id)), 0) AS attempts
FROM runs r
WHERE completed_at IS NOT NULL AND completed_at < :before
  AND ((phase = 'completed' AND completed_at < :completed_before)
    OR (phase = 'failed' AND completed_at < :failed_before)
    OR (phase = 'cancelled' AND completed_at < :cancelled_before))
  AND NOT (phase = 'completed' AND job_tag IN (SELECT value FROM json_each(:own_completed)))
  AND NOT (phase = 'failed' AND job_tag IN (SELECT value FROM json_each(:own_failed)));

-- name: delete_attempts_of_runs
DELETE FROM attempts WHERE run_id IN (SELECT value FROM json_each(:ids));

-- name: delete_runs
DELETE FROM runs WHERE id IN (SELECT value FROM json_each(:ids))
  AND (phase = 'completed' OR phase = 'failed' OR phase = 'cancelled')
RETURNING schedule_id, phase, product_tag, env, scheduled_at, completed_at, retry_count;

-- name: count_pruned_runs
-- A schedule keeps the count of its pruned runs (job.history adds them to what is left).
UPDATE schedules SET pruned_runs = pruned_runs + :runs, pruned_completed = pruned_completed + :completed,
    pruned_failed = pruned_failed + :failed
WHERE id = :schedule_id;

-- name: jobs_with_keeps
-- The jobs that keep their own runs (keep_completed / keep_failed): few, read once per prune.
SELECT product_tag, tag, keep_completed, keep_failed FROM jobs
WHERE keep_completed IS NOT NULL OR keep_failed IS NOT NULL
ORDER BY tag, product_tag;

-- name: nth_newest_run_of_jobs
-- A job that keeps its newest N runs of an outcome: the newest one past them (offset N), by due time on runs_job.
SELECT scheduled_at, id FROM runs
WHERE job_tag = :tag AND phase = :phase AND schedule_id IN (SELECT id FROM schedules WHERE job_tag = :tag AND job_product IN (SELECT value FROM json_each(:products)))
ORDER BY scheduled_at DESC, id DESC LIMIT 1 OFFSET :offset;

-- name: prunable_runs_of_jobs
-- Runs of one outcome of the jobs (tag, products), due up to (at, id) and finished before :before, oldest first:
-- a job's own keep (a duration: at = before; a count: (at, id) is the newest run past the count).
SELECT id FROM runs
WHERE job_tag = :tag AND phase = :phase AND (scheduled_at, id) <= (:at, :id)
  AND completed_at < :before AND schedule_id IN (SELECT id FROM schedules WHERE job_tag = :tag AND job_product IN (SELECT value FROM json_each(:products)))
ORDER BY scheduled_at, id LIMIT :limit;

-- name: prunable_runs_of_other_jobs
-- Runs of one outcome with that tag but of none of the jobs (tag, products) that keep their own: the client's
-- keep applies to them (a job of another product, a deleted job).
SELECT id FROM runs
WHERE job_tag = :tag AND phase = :phase AND scheduled_at < :before AND completed_at < :before
  AND schedule_id NOT IN (SELECT id FROM schedules WHERE job_tag = :tag AND job_product IN (SELECT value FROM json_each(:products)))
ORDER BY scheduled_at, id LIMIT :limit;

-- name: count_runs_of_jobs
SELECT count(*) AS runs,
       coalesce(sum((SELECT count(*) FROM attempts a WHERE a.run_id = r.id)), 0) AS attempts
FROM runs r
WHERE job_tag = :tag AND phase = :phase AND (scheduled_at, id) <= (:at, :id)
  AND completed_at < :before AND schedule_id IN (SELECT id FROM schedules WHERE job_tag = :tag AND job_product IN (SELECT value FROM json_each(:products)));

-- name: count_runs_of_other_jobs
SELECT count(*) AS runs,
       coalesce(sum((SELECT count(*) FROM attempts a WHERE a.run_id = r.id)), 0) AS attempts
FROM runs r
WHERE job_tag = :tag AND phase = :phase AND scheduled_at < :before AND completed_at < :before
  AND schedule_id NOT IN (SELECT id FROM schedules WHERE job_tag = :tag AND job_product IN (SELECT value FROM json_each(:products)));

-- name: prunable_feature_runs
-- A feature run ends after it starts, so created_at < before bounds the scan on feature_runs_time.
SELECT id FROM feature_runs
WHERE created_at < :before AND completed_at IS NOT NULL
  AND ((status = 'completed' AND completed_at < :completed_before)
    OR (status = 'failed' AND completed_at < :failed_before))
ORDER BY created_at LIMIT :limit;

-- name: count_prunable_feature_runs
SELECT count(*) AS feature_runs,
       coalesce(sum((SELECT count(*) FROM feature_events e WHERE e.feature_run_id = f.id)), 0) AS feature_events
FROM feature_runs f
WHERE created_at < :before AND completed_at IS NOT NULL
  AND ((status = 'completed' AND completed_at < :completed_before)
    OR (status = 'failed' AND completed_at < :failed_before));

-- name: delete_events_of_feature_runs
DELETE FROM feature_events WHERE feature_run_id IN (SELECT value FROM json_each(:ids));

-- name: delete_feature_runs
DELETE FROM feature_runs WHERE id IN (SELECT value FROM json_each(:ids)) AND status IN ('completed', 'failed');

-- name: prunable_deliveries
-- Deliveries that ended (delivered, or failed for good), by the time of their event (webhook_deliveries_time).
SELECT id FROM webhook_deliveries
WHERE created_at < :before
  AND ((status = 'delivered' AND created_at < :completed_before)
    OR (status = 'failed' AND created_at < :failed_before))
ORDER BY created_at LIMIT :limit;

-- name: count_prunable_deliveries
SELECT count(*) AS webhook_deliveries FROM webhook_deliveries
WHERE created_at < :before
  AND ((status = 'delivered' AND created_at < :completed_before)
    OR (status = 'failed' AND created_at < :failed_before));

-- name: delete_deliveries
DELETE FROM webhook_deliveries
WHERE id IN (SELECT value FROM json_each(:ids)) AND status IN ('delivered', 'failed');

-- name: prunable_cache_entries
SELECT key FROM cache_entries WHERE expires_at <= :now ORDER BY expires_at LIMIT :limit;

-- name: count_prunable_cache_entries
SELECT count(*) AS cache_entries FROM cache_entries WHERE expires_at <= :now;

-- name: delete_cache_entries
DELETE FROM cache_entries WHERE key IN (SELECT value FROM json_each(:ids)) AND expires_at <= :now;

-- name: prunable_outbox
-- Outbox events every reader has read: at or before the slowest cursor of a live stream whose lease has not lapsed
-- and, while some webhook exists, of a durable consumer (the webhooks' relay; none yet: none pruned). Without a
-- reader, every event: nobody will read them (a stream opened later starts at the newest event, a webhook created
-- later takes only later changes). The newest row stays: seq is the rowid (max + 1), which must never go back
-- below a cursor.
SELECT seq FROM outbox
WHERE seq <= (
    SELECT min(seq) FROM (
        SELECT seq FROM outbox_consumers
        WHERE lease_until >= :now OR (lease_until IS NULL AND EXISTS (SELECT 1 FROM webhooks))
        UNION ALL
        SELECT 0 WHERE EXISTS (SELECT 1 FROM webhooks)
                   AND NOT EXISTS (SELECT 1 FROM outbox_consumers WHERE lease_until IS NULL)
        UNION ALL
        SELECT 9223372036854775807))
  AND seq < (SELECT max(seq) FROM outbox)
ORDER BY seq LIMIT :limit;

-- name: count_prunable_outbox
SELECT count(*) AS outbox FROM outbox
WHERE seq <= (
    SELECT min(seq) FROM (
        SELECT seq FROM outbox_consumers
        WHERE lease_until >= :now OR (lease_until IS NULL AND EXISTS (SELECT 1 FROM webhooks))
        UNION ALL
        SELECT 0 WHERE EXISTS (SELECT 1 FROM webhooks)
                   AND NOT EXISTS (SELECT 1 FROM outbox_consumers WHERE lease_until IS NULL)
        UNION ALL
        SELECT 9223372036854775807))
  AND seq < (SELECT max(seq) FROM outbox);

-- name: mark_outbox_pruned
-- The newest event of a batch about to be deleted, as the pruned mark (streams resume only after it).
UPDATE outbox_marks
SET pruned_seq = max(pruned_seq, (SELECT max(seq) FROM outbox WHERE seq IN (SELECT value FROM json_each(:ids))))
WHERE id = 1;

-- name: delete_outbox
DELETE FROM outbox WHERE seq IN (SELECT value FROM json_each(:ids));

-- name: add_run_minutes
-- Pruned runs added to their minutes' statistics (run_minutes; migration 14), in the transaction that deletes
-- them; the rows come in key order, so racing pruners lock them in one order.
INSERT INTO run_minutes (minute, product_tag, env, ended_completed, ended_failed, due_completed, due_failed,
                         due_cancelled, due_first_try, due_retries)
VALUES (:minute, :product_tag, :env, :ended_completed, :ended_failed, :due_completed, :due_failed,
        :due_cancelled, :due_first_try, :due_retries)
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
-- primary key; picked by rowid.
SELECT rowid AS row FROM run_minutes WHERE minute < :stats_before
ORDER BY minute, product_tag, env LIMIT :limit;

-- name: count_prunable_run_minutes
SELECT count(*) AS run_minutes FROM run_minutes WHERE minute < :stats_before;

-- name: delete_run_minutes
DELETE FROM run_minutes WHERE rowid IN (SELECT value FROM json_each(:ids)) AND minute < :stats_before;

-- name: schedules_after
-- The sweep's next batch of schedules, by id (ids sort by creation), after :after: the ended schedules that no run's
-- prune took with it (cancelled before their first run, ended after their runs were pruned, kept by an older release).
SELECT id FROM schedules WHERE id > :after ORDER BY id LIMIT :limit;

-- name: lock_ended_schedules
-- (SQLite's single writer: nothing to lock; delete_ended_schedules reads what each has ended.)
SELECT value AS id FROM json_each(:ids);

-- name: delete_ended_schedules
-- Of the schedules :ids, those that ended (completed, cancelled) before their keep and hold no run any more. Nothing
-- reads an ended schedule but job.fetch and its history, all of it pruned; kept, a queue's one-offs grew the table by
-- a row, its input with it, for every schedule(), for ever. A JOB event's schedule stays while its feature run is
-- kept unless completed (a run resumed after a crash, or a failed one retried, looks it up by its key,
-- <feature run>:<sequence>:<event>, and would schedule its job again). A schedule a caller keyed (key:...) stays: its
-- key stays taken, and the deploy that asks for it again is answered it, not given a new one.
DELETE FROM schedules
WHERE id IN (SELECT value FROM json_each(:ids))
  AND ((status = 'completed' AND updated_at < :completed_before)
    OR (status = 'cancelled' AND updated_at < :cancelled_before))
  AND NOT EXISTS (SELECT 1 FROM runs r WHERE r.schedule_id = schedules.id)
  AND (feature_key IS NULL OR substr(feature_key, 1, 4) <> 'key:')  -- a caller's key stays taken
  AND (feature_key IS NULL OR NOT EXISTS (
      SELECT 1 FROM feature_runs f
      WHERE f.id = substr(schedules.feature_key, 1, instr(schedules.feature_key, ':') - 1) AND f.status <> 'completed'));

-- name: count_prunable_schedules
-- The schedules a prune would delete: ended before their keep, holding no run that the prune keeps (by the client's
-- keeps, or by :passes, the passes of the jobs that keep their own runs as prunable_runs_of_jobs and
-- prunable_runs_of_other_jobs read them), and no feature run that it keeps and may run again.
SELECT count(*) AS schedules FROM schedules s
WHERE ((s.status = 'completed' AND s.updated_at < :completed_before)
    OR (s.status = 'cancelled' AND s.updated_at < :cancelled_before))
  AND NOT EXISTS (
      SELECT 1 FROM runs r WHERE r.schedule_id = s.id
        AND NOT (r.completed_at IS NOT NULL
             AND ((r.phase = 'completed' AND r.completed_at < :completed_before
                   AND r.job_tag NOT IN (SELECT value FROM json_each(:own_completed)))
               OR (r.phase = 'failed' AND r.completed_at < :failed_before
                   AND r.job_tag NOT IN (SELECT value FROM json_each(:own_failed)))
               OR (r.phase = 'cancelled' AND r.completed_at < :cancelled_before)
               OR EXISTS (
                   SELECT 1 FROM json_each(:passes) p
                   WHERE json_extract(p.value, '$.tag') = r.job_tag AND json_extract(p.value, '$.phase') = r.phase
                     AND r.completed_at < json_extract(p.value, '$.before')
                     AND CASE WHEN json_extract(p.value, '$.own')
                         THEN (r.scheduled_at, r.id) <= (json_extract(p.value, '$.at'), json_extract(p.value, '$.id'))
                              AND s.job_product IN (SELECT value FROM json_each(p.value, '$.products'))
                         ELSE r.scheduled_at < json_extract(p.value, '$.before')
                              AND s.job_product NOT IN (SELECT value FROM json_each(p.value, '$.products'))
                     END))))
  AND (s.feature_key IS NULL OR substr(s.feature_key, 1, 4) <> 'key:')  -- a caller's key stays taken
  AND (s.feature_key IS NULL OR NOT EXISTS (
      SELECT 1 FROM feature_runs f
      WHERE f.id = substr(s.feature_key, 1, instr(s.feature_key, ':') - 1) AND f.status <> 'completed'
        AND NOT (f.status = 'failed' AND f.created_at < :before AND f.completed_at < :failed_before)));
