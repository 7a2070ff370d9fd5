-- ductape-jobs schema, version 11 (SQLite): the outbox of lifecycle events (lifecycle.py). (Versions 9 and 10
-- are other changes'.)
--
-- Triggers write an event in the transaction of the change it describes, so a crash loses either both or
-- neither. Only events that some webhook of the run's or schedule's product takes are written: the others cost
-- a lookup in the (small) webhooks table and no row. Consumers (outbox_consumers) read the events after their
-- cursor, oldest first; SQLite's single writer commits them in seq order, so the cursor is seq (txid stays 0:
-- PostgreSQL's column, where commits may come out of seq order).

CREATE TABLE outbox (
    seq         INTEGER PRIMARY KEY,     -- the rowid: max + 1 (the pruner keeps the newest row, so never reused)
    txid        INTEGER NOT NULL DEFAULT 0,
    event       TEXT NOT NULL,           -- a webhook event name: job.completed, run.attempt_failed, ...
    product_tag TEXT NOT NULL,
    schedule_id TEXT NOT NULL,
    run_id      TEXT,                    -- NULL: a schedule's event
    data        TEXT NOT NULL,           -- JSON: the row's values the event's payload is made of (times in ms)
    created_at  INTEGER NOT NULL         -- the change's time (its row's updated_at)
);

CREATE TABLE outbox_consumers (
    name       TEXT PRIMARY KEY,         -- webhooks, ...
    txid       INTEGER NOT NULL,         -- the cursor: the last event consumed, as (txid, seq)
    seq        INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);

-- A run's events: created (run.queued), claimed (job.started), completed, failed for good, an attempt that
-- failed and will be retried (run.attempt_failed), an attempt whose worker was lost (run.attempt_lost) and a
-- failed or cancelled run queued again by hand (run.queued).
CREATE TRIGGER outbox_run_created AFTER INSERT ON runs
BEGIN
    INSERT INTO outbox (event, product_tag, schedule_id, run_id, data, created_at)
    SELECT 'run.queued', NEW.product_tag, NEW.schedule_id, NEW.id,
        json_object('run_id', NEW.id, 'job_id', NEW.schedule_id, 'job_tag', NEW.job_tag,
            'product_tag', NEW.product_tag, 'env', NEW.env, 'event_type', NEW.event_type,
            'event_tag', NEW.event_tag, 'attempt', NEW.attempt, 'scheduled_at', NEW.scheduled_at,
            'started_at', NEW.started_at, 'triggered_by', NEW.triggered_by, 'phase', NEW.phase,
            'available_at', NEW.available_at),
        NEW.updated_at
    WHERE EXISTS (SELECT 1 FROM webhooks w
                  WHERE w.product_tag = NEW.product_tag AND instr(w.events, '"run.queued"') > 0);
END;

CREATE TRIGGER outbox_run_changed AFTER UPDATE OF phase ON runs
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
          END AS name) e
    WHERE e.name IS NOT NULL
      AND EXISTS (SELECT 1 FROM webhooks w
                  WHERE w.product_tag = NEW.product_tag AND instr(w.events, '"' || e.name || '"') > 0);
END;

-- A schedule's events: created (job.scheduled), paused, resumed, cancelled.
CREATE TRIGGER outbox_schedule_created AFTER INSERT ON schedules
BEGIN
    INSERT INTO outbox (event, product_tag, schedule_id, run_id, data, created_at)
    SELECT 'job.scheduled', NEW.product_tag, NEW.id, NULL,
        json_object('job_id', NEW.id, 'job_tag', NEW.job_tag, 'product_tag', NEW.product_tag, 'env', NEW.env,
            'status', NEW.status, 'recurring', NEW.cron IS NOT NULL OR NEW.every_ms IS NOT NULL,
            'next_run_at', NEW.next_run_at, 'reason', NEW.reason),
        NEW.updated_at
    WHERE EXISTS (SELECT 1 FROM webhooks w
                  WHERE w.product_tag = NEW.product_tag AND instr(w.events, '"job.scheduled"') > 0);
END;

CREATE TRIGGER outbox_schedule_changed AFTER UPDATE OF status ON schedules
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
      AND EXISTS (SELECT 1 FROM webhooks w
                  WHERE w.product_tag = NEW.product_tag AND instr(w.events, '"' || e.name || '"') > 0);
END;

-- A JOB event's schedule is keyed by (feature run, sequence, event): a feature run resumed after a crash finds
-- the schedule its event made before the crash instead of scheduling the job again (features/engine.py).
ALTER TABLE schedules ADD COLUMN feature_key TEXT;
CREATE UNIQUE INDEX schedules_feature_key ON schedules (feature_key) WHERE feature_key IS NOT NULL;
