-- ductape-jobs schema, version 25 (PostgreSQL): a run that ends cancelled while it ran writes run.cancelled. Its
-- attempt failed after its schedule was cancelled, so no retry is made (cancel_retry); before, the run's last event
-- was its job.started, and a subscriber never learned that it ended. A run cancelled before it started writes no
-- event of its own: the schedule's job.cancelled says it.

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
            WHEN NEW.phase = 'cancelled' AND OLD.phase = 'running' THEN 'run.cancelled'
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
