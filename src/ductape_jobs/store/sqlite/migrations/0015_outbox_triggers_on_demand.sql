-- ductape-jobs schema, version 15 (SQLite): the outbox's triggers (version 11) exist only while some webhook does, as
-- on PostgreSQL since version 13. Without a webhook a trigger program still ran on every run's insert and phase
-- change and looked the webhooks up (about a sixth of schedule_many's CPU per run, a tenth of a drained run's:
-- bench/outbox_cost.py's setup, no webhook). They are dropped here; migrate() creates them again at once when a
-- webhook exists (SQLiteTx.sync_outbox_triggers), and adding the first webhook or deleting the last does the same.
DROP TRIGGER IF EXISTS outbox_run_created;
DROP TRIGGER IF EXISTS outbox_run_changed;
DROP TRIGGER IF EXISTS outbox_schedule_created;
DROP TRIGGER IF EXISTS outbox_schedule_changed;
