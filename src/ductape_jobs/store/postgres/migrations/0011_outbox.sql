-- ductape-jobs schema, version 11 (PostgreSQL): the outbox of lifecycle events (lifecycle.py). (Versions 9 and
-- 10 are other changes'.) The same tables and columns as the SQLite store.
--
-- Triggers write an event in the transaction of the change it describes, so a crash loses either both or
-- neither, and no statement of the store changes (nor costs a round trip more). Only events that some webhook
-- of the run's or schedule's product takes are written: the others cost a lookup in the (small) webhooks
-- table and no row.
--
-- Consumers read in (txid, seq) order and only events of transactions older than every running one (txid below
-- the snapshot's xmin): seq is drawn at insert, so a transaction may commit a lower seq after a higher one was
-- read, but never a txid below xmin. A cursor (txid, seq) therefore never passes an event still to come.

CREATE TABLE outbox (
    seq         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    txid        BIGINT NOT NULL DEFAULT (pg_current_xact_id()::text::bigint),
    event       TEXT NOT NULL,           -- a webhook event name: job.completed, run.attempt_failed, ...
    product_tag TEXT NOT NULL,
    schedule_id TEXT NOT NULL,
    run_id      TEXT,                    -- NULL: a schedule's event
    data        TEXT NOT NULL,           -- JSON: the row's values the event's payload is made of (times in ms)
    created_at  BIGINT NOT NULL          -- the change's time (its row's updated_at)
);
CREATE INDEX outbox_order ON outbox (txid, seq);

CREATE TABLE outbox_consumers (
    name       TEXT PRIMARY KEY,         -- webhooks, ...
    txid       BIGINT NOT NULL,          -- the cursor: the last event consumed, as (txid, seq)
    seq        BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

-- A run's events: created (run.queued), claimed (job.started), completed, failed for good, an attempt that
-- failed and will be retried (run.attempt_failed), an attempt whose worker was lost (run.attempt_lost) and a
-- failed or cancelled run queued again by hand (run.queued).
CREATE FUNCTION ductape_outbox_run() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    name text;
BEGIN
    IF TG_OP = 'INSERT' THEN
        name := 'run.queued';
    ELSIF NEW.phase = OLD.phase THEN
        RETURN NULL;
    ELSE
        name := CASE
            WHEN NEW.phase = 'running' THEN 'job.started'
            WHEN NEW.phase = 'completed' THEN 'job.completed'
            WHEN NEW.phase = 'failed' THEN 'job.failed'
            WHEN NEW.phase = 'retry_scheduled' THEN 'run.attempt_failed'
            WHEN NEW.phase = 'queued' AND OLD.phase = 'running' AND NEW.rescues > OLD.rescues
                THEN 'run.attempt_lost'
            WHEN NEW.phase = 'queued' AND OLD.phase IN ('failed', 'cancelled') THEN 'run.queued'
        END;
    END IF;
    IF name IS NULL OR NOT EXISTS (
        SELECT 1 FROM webhooks w WHERE w.product_tag = NEW.product_tag AND strpos(w.events, '"' || name || '"') > 0
    ) THEN
        RETURN NULL;
    END IF;
    INSERT INTO outbox (event, product_tag, schedule_id, run_id, data, created_at)
    VALUES (name, NEW.product_tag, NEW.schedule_id, NEW.id,
        json_build_object('run_id', NEW.id, 'job_id', NEW.schedule_id, 'job_tag', NEW.job_tag,
            'product_tag', NEW.product_tag, 'env', NEW.env, 'event_type', NEW.event_type,
            'event_tag', NEW.event_tag, 'attempt', NEW.attempt, 'scheduled_at', NEW.scheduled_at,
            'started_at', NEW.started_at, 'triggered_by', NEW.triggered_by, 'phase', NEW.phase,
            'completed_at', NEW.completed_at, 'duration_ms', NEW.duration_ms, 'error', NEW.error,
            'available_at', NEW.available_at)::text,
        NEW.updated_at);
    RETURN NULL;
END
$$;

CREATE TRIGGER outbox_run AFTER INSERT OR UPDATE OF phase ON runs
FOR EACH ROW EXECUTE FUNCTION ductape_outbox_run();

-- A schedule's events: created (job.scheduled), paused, resumed, cancelled.
CREATE FUNCTION ductape_outbox_schedule() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    name text;
BEGIN
    IF TG_OP = 'INSERT' THEN
        name := 'job.scheduled';
    ELSIF NEW.status = OLD.status THEN
        RETURN NULL;
    ELSE
        name := CASE
            WHEN NEW.status = 'paused' THEN 'job.paused'
            WHEN NEW.status = 'active' AND OLD.status = 'paused' THEN 'job.resumed'
            WHEN NEW.status = 'cancelled' THEN 'job.cancelled'
        END;
    END IF;
    IF name IS NULL OR NOT EXISTS (
        SELECT 1 FROM webhooks w WHERE w.product_tag = NEW.product_tag AND strpos(w.events, '"' || name || '"') > 0
    ) THEN
        RETURN NULL;
    END IF;
    INSERT INTO outbox (event, product_tag, schedule_id, run_id, data, created_at)
    VALUES (name, NEW.product_tag, NEW.id, NULL,
        json_build_object('job_id', NEW.id, 'job_tag', NEW.job_tag, 'product_tag', NEW.product_tag,
            'env', NEW.env, 'status', NEW.status, 'recurring', NEW.cron IS NOT NULL OR NEW.every_ms IS NOT NULL,
            'next_run_at', NEW.next_run_at, 'reason', NEW.reason)::text,
        NEW.updated_at);
    RETURN NULL;
END
$$;

CREATE TRIGGER outbox_schedule AFTER INSERT OR UPDATE OF status ON schedules
FOR EACH ROW EXECUTE FUNCTION ductape_outbox_schedule();

-- A JOB event's schedule is keyed by (feature run, sequence, event): a feature run resumed after a crash finds
-- the schedule its event made before the crash instead of scheduling the job again (features/engine.py).
ALTER TABLE schedules ADD COLUMN feature_key TEXT;
CREATE UNIQUE INDEX schedules_feature_key ON schedules (feature_key) WHERE feature_key IS NOT NULL;
