-- ductape-jobs schema, version 20 (PostgreSQL): the outbox's triggers change, and the first live stream waits for
-- writers, without queueing the store's writers behind a long transaction.
--
-- Creating a trigger takes SHARE ROW EXCLUSIVE on its table, dropping one ACCESS EXCLUSIVE, and the first live
-- stream's wait for writers in flight takes SHARE ROW EXCLUSIVE on runs and schedules. A lock request waiting behind
-- a long transaction (a report, a backup, a session left open) makes every later writer of runs and schedules
-- wait behind it in turn: scheduling, claiming and finishing would stop until that transaction ends. So the lock is
-- now asked for in tries of 50 ms, 50 ms apart (writers go on between tries):
-- - dropping the triggers gives up after one try; they stay, and every engine process tries again within 30 s
--   (expire_streams: outbox_to_settle);
-- - creating them, and the first stream's wait, try for 10 s, then wait as before: a webhook or a live stream must
--   not miss events.

-- Take `mode` (SHARE ROW EXCLUSIVE or ACCESS EXCLUSIVE) on runs and schedules in tries (above); true once held
-- (until the transaction ends). `tries` 0: try until `patience` ran out, then wait without a timeout.
CREATE FUNCTION ductape_lock_runs(mode text, tries integer, patience interval) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    before text := current_setting('lock_timeout');
    deadline timestamptz := clock_timestamp() + patience;
    n integer := 0;
BEGIN
    LOOP
        n := n + 1;
        BEGIN  -- a subtransaction: a try that times out is undone, lock_timeout with it
            PERFORM set_config('lock_timeout', '50ms', true);
            IF mode = 'ACCESS EXCLUSIVE' THEN
                LOCK TABLE runs, schedules IN ACCESS EXCLUSIVE MODE;
            ELSE
                LOCK TABLE runs, schedules IN SHARE ROW EXCLUSIVE MODE;
            END IF;
            PERFORM set_config('lock_timeout', before, true);
            RETURN true;
        EXCEPTION WHEN lock_not_available THEN
            IF tries > 0 AND n >= tries THEN
                RETURN false;
            END IF;
            IF tries = 0 AND clock_timestamp() >= deadline THEN
                EXIT;
            END IF;
        END;
        PERFORM pg_sleep(0.05);
    END LOOP;
    IF mode = 'ACCESS EXCLUSIVE' THEN  -- patience ran out: wait as any lock does
        LOCK TABLE runs, schedules IN ACCESS EXCLUSIVE MODE;
    ELSE
        LOCK TABLE runs, schedules IN SHARE ROW EXCLUSIVE MODE;
    END IF;
    RETURN true;
END
$$;

-- Whether some webhook or live stream wants the outbox's triggers, and whether they exist.
CREATE FUNCTION ductape_outbox_wanted() RETURNS boolean LANGUAGE sql STABLE AS $$
    SELECT EXISTS (SELECT 1 FROM webhooks) OR EXISTS (SELECT 1 FROM outbox_consumers WHERE lease_until IS NOT NULL)
$$;

CREATE FUNCTION ductape_outbox_triggers() RETURNS integer LANGUAGE sql STABLE AS $$
    SELECT count(*)::integer FROM pg_trigger
    WHERE (tgrelid = 'runs'::regclass AND tgname = 'outbox_run')
       OR (tgrelid = 'schedules'::regclass AND tgname = 'outbox_schedule')
$$;

-- The triggers exist while some webhook or some live stream does (the callers lock the webhooks table first, so
-- two changes take turns). Nothing to change takes no lock on runs or schedules.
CREATE OR REPLACE FUNCTION ductape_outbox_sync() RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    IF ductape_outbox_wanted() THEN
        IF ductape_outbox_triggers() = 2 THEN
            RETURN;
        END IF;
        PERFORM ductape_lock_runs('SHARE ROW EXCLUSIVE', 0, interval '10 seconds');
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
    ELSIF ductape_outbox_triggers() > 0 AND ductape_lock_runs('ACCESS EXCLUSIVE', 1, interval '0') THEN
        DROP TRIGGER IF EXISTS outbox_run ON runs;
        DROP TRIGGER IF EXISTS outbox_schedule ON schedules;
    END IF;
END
$$;
