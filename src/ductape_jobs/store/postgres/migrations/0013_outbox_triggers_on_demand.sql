-- ductape-jobs schema, version 13 (PostgreSQL): the outbox's triggers (version 11) exist only while some webhook
-- does. A row trigger costs a PL/pgSQL call and a lookup of the webhooks on every run's insert and phase change
-- (about a quarter of the steady claim-and-finish rate, and two fifths of schedule_many's, on a 2-core machine),
-- even when no webhook takes anything. add_webhook and delete_webhook call ductape_outbox_sync() in their own
-- transaction (after locking webhooks, so two of them take turns), which creates the triggers with the first
-- webhook and drops them with the last: an event is written exactly when some webhook may take it, as before.
-- CREATE TRIGGER waits for the transactions writing runs or schedules at that moment and holds theirs briefly.

CREATE FUNCTION ductape_outbox_sync() RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM webhooks) THEN
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

SELECT ductape_outbox_sync();
