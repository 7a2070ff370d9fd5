-- SQL of the SQLite store's outbox (store/outbox.py; the table: migration 0011; its triggers: below). The single
-- writer commits events in seq order, so seq alone is the cursor (txid is always 0).

-- name: lock_consumer
SELECT txid, seq FROM outbox_consumers WHERE name = :name;

-- name: consumer_cursor
SELECT txid, seq FROM outbox_consumers WHERE name = :name;

-- name: add_consumer
INSERT INTO outbox_consumers (name, txid, seq, updated_at) VALUES (:name, 0, 0, :now)
ON CONFLICT (name) DO NOTHING;

-- name: events_after
SELECT * FROM outbox WHERE seq > :seq ORDER BY seq LIMIT :limit;

-- name: advance_consumer
UPDATE outbox_consumers SET txid = :txid, seq = :seq, updated_at = :now WHERE name = :name;

-- Live streams (store/outbox.py; migration 0017): consumers with a lease, and the marks of what they may resume.

-- name: lock_outbox_marks
SELECT streams_epoch, pruned_txid, pruned_seq FROM outbox_marks WHERE id = 1;

-- name: outbox_to_settle
-- A live stream whose lease lapsed, or outbox triggers nobody wants (on SQLite dropping them never waits, so only
-- the first happens; the query is the PostgreSQL one's twin).
SELECT 1 AS found
WHERE EXISTS (SELECT 1 FROM outbox_consumers WHERE lease_until < :now)
   OR (NOT EXISTS (SELECT 1 FROM webhooks)
       AND NOT EXISTS (SELECT 1 FROM outbox_consumers WHERE lease_until IS NOT NULL)
       AND EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'trigger' AND name LIKE 'outbox\_%' ESCAPE '\'));

-- name: delete_lapsed_streams
DELETE FROM outbox_consumers WHERE lease_until < :now;

-- name: live_stream
SELECT 1 AS found FROM outbox_consumers WHERE lease_until IS NOT NULL LIMIT 1;

-- name: wait_for_writers
-- (SQLite's single writer: no other writer is in flight while a stream opens.)
SELECT 1 WHERE 0;

-- name: begin_streams_epoch
UPDATE outbox_marks SET streams_epoch = streams_epoch + 1 WHERE id = 1;

-- name: outbox_head
-- The newest event (none: no row).
SELECT txid, seq FROM outbox ORDER BY seq DESC LIMIT 1;

-- name: add_stream
INSERT INTO outbox_consumers (name, txid, seq, updated_at, lease_until)
VALUES (:name, :txid, :seq, :now, :lease_until)
ON CONFLICT (name) DO UPDATE SET txid = excluded.txid, seq = excluded.seq, updated_at = excluded.updated_at,
    lease_until = excluded.lease_until;

-- name: renew_stream
UPDATE outbox_consumers SET txid = :txid, seq = :seq, updated_at = :now, lease_until = :lease_until
WHERE name = :name AND lease_until IS NOT NULL;

-- The outbox's triggers (first written by migration 0011) exist only while some webhook or some live stream does:
-- sync_outbox_triggers (dialect.py) creates them with the first and drops them with the last, in the transaction
-- that adds or deletes a webhook or opens or expires a stream, as PostgreSQL's ductape_outbox_sync() does
-- (migrations 0013 and 0017). Without either a run's insert and phase changes run no trigger program. Each writes
-- every event while some live stream exists (a stream reads them all), else only when some webhook of the product
-- takes it.

-- name: outbox_wanted
SELECT 1 AS found
WHERE EXISTS (SELECT 1 FROM webhooks) OR EXISTS (SELECT 1 FROM outbox_consumers WHERE lease_until IS NOT NULL);

-- name: create_outbox_run_created
CREATE TRIGGER IF NOT EXISTS outbox_run_created AFTER INSERT ON runs
BEGIN
    INSERT INTO outbox (event, product_tag, schedule_id, run_id, data, created_at)
    SELECT 'run.queued', NEW.product_tag, NEW.schedule_id, NEW.id,
        json_object('run_id', NEW.id, 'job_id', NEW.schedule_id, 'job_tag', NEW.job_tag,
            'product_tag', NEW.product_tag, 'env', NEW.env, 'event_type', NEW.event_type,
            'event_tag', NEW.event_tag, 'attempt', NEW.attempt, 'scheduled_at', NEW.scheduled_at,
            'started_at', NEW.started_at, 'triggered_by', NEW.triggered_by, 'phase', NEW.phase,
            'available_at', NEW.available_at),
        NEW.updated_at
    WHERE EXISTS (SELECT 1 FROM outbox_consumers c WHERE c.lease_until IS NOT NULL)
       OR EXISTS (SELECT 1 FROM webhooks w
                  WHERE w.product_tag = NEW.product_tag AND instr(w.events, '"run.queued"') > 0);
END;

-- name: create_outbox_run_changed
CREATE TRIGGER IF NOT EXISTS outbox_run_changed AFTER UPDATE OF phase ON runs
WHEN NEW.phase <> OLD.phase
BEGIN
    INSERT INTO outbox (event, product_tag, schedule_id, run_id, data, created_at)
    SELECT e.name, NEW.product_tag, NEW.schedule_id, NEW.id,
        json_object('run_id', NEW.id, 'job_id', NEW.schedule_id, 'job_tag', NEW.job_tag,
            'product_tag', NEW.product_tag, 'env', NEW.env, 'event_type', NEW.event_type,
            'event_tag', NEW.event_tag, 'attempt', NEW.attempt, 'scheduled_at', NEW.scheduled_at,
            'started_at', NEW.started_at, 'triggered_by', NEW.triggered_by, 'phase', NEW.phase,
            'completed_at', NEW.completed_at, 'duration_ms', NEW.duration_ms, 'error', NEW.error,
            'available_at', NEW.available_at),
        NEW.updated_at
    FROM (SELECT CASE
              WHEN NEW.phase = 'running' THEN 'job.started'
              WHEN NEW.phase = 'completed' THEN 'job.completed'
              WHEN NEW.phase = 'failed' THEN 'job.failed'
              WHEN NEW.phase = 'retry_scheduled' THEN 'run.attempt_failed'
              WHEN NEW.phase = 'queued' AND OLD.phase = 'running' AND NEW.rescues > OLD.rescues
                  THEN 'run.attempt_lost'
              WHEN NEW.phase = 'queued' AND OLD.phase IN ('failed', 'cancelled') THEN 'run.queued'
              WHEN NEW.phase = 'cancelled' AND OLD.phase = 'running' THEN 'run.cancelled'
          END AS name) e
    WHERE e.name IS NOT NULL
      AND (EXISTS (SELECT 1 FROM outbox_consumers c WHERE c.lease_until IS NOT NULL)
           OR EXISTS (SELECT 1 FROM webhooks w
                      WHERE w.product_tag = NEW.product_tag AND instr(w.events, '"' || e.name || '"') > 0));
END;

-- name: create_outbox_schedule_created
CREATE TRIGGER IF NOT EXISTS outbox_schedule_created AFTER INSERT ON schedules
BEGIN
    INSERT INTO outbox (event, product_tag, schedule_id, run_id, data, created_at)
    SELECT 'job.scheduled', NEW.product_tag, NEW.id, NULL,
        json_object('job_id', NEW.id, 'job_tag', NEW.job_tag, 'product_tag', NEW.product_tag, 'env', NEW.env,
            'status', NEW.status, 'recurring', NEW.cron IS NOT NULL OR NEW.every_ms IS NOT NULL,
            'next_run_at', NEW.next_run_at, 'reason', NEW.reason),
        NEW.updated_at
    WHERE EXISTS (SELECT 1 FROM outbox_consumers c WHERE c.lease_until IS NOT NULL)
       OR EXISTS (SELECT 1 FROM webhooks w
                  WHERE w.product_tag = NEW.product_tag AND instr(w.events, '"job.scheduled"') > 0);
END;

-- name: create_outbox_schedule_changed
CREATE TRIGGER IF NOT EXISTS outbox_schedule_changed AFTER UPDATE OF status ON schedules
WHEN NEW.status <> OLD.status
BEGIN
    INSERT INTO outbox (event, product_tag, schedule_id, run_id, data, created_at)
    SELECT e.name, NEW.product_tag, NEW.id, NULL,
        json_object('job_id', NEW.id, 'job_tag', NEW.job_tag, 'product_tag', NEW.product_tag, 'env', NEW.env,
            'status', NEW.status, 'recurring', NEW.cron IS NOT NULL OR NEW.every_ms IS NOT NULL,
            'next_run_at', NEW.next_run_at, 'reason', NEW.reason),
        NEW.updated_at
    FROM (SELECT CASE
              WHEN NEW.status = 'paused' THEN 'job.paused'
              WHEN NEW.status = 'active' AND OLD.status = 'paused' THEN 'job.resumed'
              WHEN NEW.status = 'cancelled' THEN 'job.cancelled'
          END AS name) e
    WHERE e.name IS NOT NULL
      AND (EXISTS (SELECT 1 FROM outbox_consumers c WHERE c.lease_until IS NOT NULL)
           OR EXISTS (SELECT 1 FROM webhooks w
                      WHERE w.product_tag = NEW.product_tag AND instr(w.events, '"' || e.name || '"') > 0));
END;

-- name: drop_outbox_run_created
DROP TRIGGER IF EXISTS outbox_run_created;

-- name: drop_outbox_run_changed
DROP TRIGGER IF EXISTS outbox_run_changed;

-- name: drop_outbox_schedule_created
DROP TRIGGER IF EXISTS outbox_schedule_created;

-- name: drop_outbox_schedule_changed
DROP TRIGGER IF EXISTS outbox_schedule_changed;
