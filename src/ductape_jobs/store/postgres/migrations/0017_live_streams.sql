-- ductape-jobs schema, version 17 (PostgreSQL): live streams (the dashboard's /api/v1/events) read the outbox.
--
-- A live stream is a row of outbox_consumers with a lease (lease_until, ms; NULL: a durable consumer such as the
-- webhooks' relay): it keeps its cursor there and renews it while it streams, so the pruner keeps the events it
-- has not read yet; a stream whose lease lapsed (its server died, its browser went away) pins nothing and is
-- deleted by the next stream that opens or the next prune. While some live stream exists the outbox's triggers
-- exist and write every event, of every product (a stream reads all of them); otherwise they write only what some
-- webhook of the product takes, and exist only while some webhook does (version 13).
--
-- outbox_marks (one row) says what a stream reconnecting with a position may resume from: streams_epoch counts
-- the times a stream opened while none was live (events were not all written before that), and the pruned
-- cursor is the newest event the pruner deleted (every later one is kept).

ALTER TABLE outbox_consumers ADD COLUMN lease_until BIGINT;

CREATE TABLE outbox_marks (
    id            INTEGER PRIMARY KEY CHECK (id = 1),
    streams_epoch BIGINT NOT NULL,
    pruned_txid   BIGINT NOT NULL,
    pruned_seq    BIGINT NOT NULL
);
INSERT INTO outbox_marks (id, streams_epoch, pruned_txid, pruned_seq) VALUES (1, 0, 0, 0);

-- An event is written while some live stream exists (it reads them all), else when some webhook of the product
-- takes it.
CREATE OR REPLACE FUNCTION ductape_outbox_run() RETURNS trigger LANGUAGE plpgsql AS $$
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
    IF name IS NULL OR NOT (
        EXISTS (SELECT 1 FROM outbox_consumers c WHERE c.lease_until IS NOT NULL)
        OR EXISTS (SELECT 1 FROM webhooks w
                   WHERE w.product_tag = NEW.product_tag AND strpos(w.events, '"' || name || '"') > 0)
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

CREATE OR REPLACE FUNCTION ductape_outbox_schedule() RETURNS trigger LANGUAGE plpgsql AS $$
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
    IF name IS NULL OR NOT (
        EXISTS (SELECT 1 FROM outbox_consumers c WHERE c.lease_until IS NOT NULL)
        OR EXISTS (SELECT 1 FROM webhooks w
                   WHERE w.product_tag = NEW.product_tag AND strpos(w.events, '"' || name || '"') > 0)
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

-- The triggers exist while some webhook or some live stream does (the callers lock the webhooks table first, so
-- two changes take turns).
CREATE OR REPLACE FUNCTION ductape_outbox_sync() RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM webhooks) OR EXISTS (SELECT 1 FROM outbox_consumers WHERE lease_until IS NOT NULL) THEN
        IF NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgrelid = 'runs'::regclass AND tgname = 'outbox_run') THEN
            CREATE TRIGGER outbox_run AFTER INSERT OR UPDATE OF phase ON runs
            FOR EACH ROW EXECUTE FUNCTION ductape_outbox_run();
        END IF;
        IF NOT EXISTS (
            SELECT 1 FROM pg_trigger WHERE tgrelid = 'schedules'::regclass AND tgname = 'outbox_schedule'
        ) THEN
            CREATE TRIGGER outbox_schedule AFTER INSERT OR UPDATE OF status ON schedules
            FOR EACH ROW EXECUTE FUNCTION ductape_outbox_schedule();
        END IF;
    ELSE
        DROP TRIGGER IF EXISTS outbox_run ON runs;
        DROP TRIGGER IF EXISTS outbox_schedule ON schedules;
    END IF;
END
$$;
