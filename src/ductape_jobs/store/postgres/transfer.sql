-- SQL of a store's copy into another (store/transfer.py): the columns of its tables (transfer.STORE_TABLES) it reads
-- from the schema itself (the store's: the first in the search path), so a column a migration adds is copied without
-- a change here; other tables in that schema (the application's own) are neither read nor written. The rows
-- themselves are read and written by PostgresTx.rows_of and PostgresTx.put_rows.

-- name: table_columns
SELECT column_name AS name FROM information_schema.columns
WHERE table_schema = current_schema() AND table_name = %(table)s ORDER BY ordinal_position;

-- name: copy_snapshot
-- Every table read as one snapshot sees the store (the first statement of the copy's read transaction).
SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY;

-- name: copy_unhurried
-- A copy's two transactions wait for each other (the source's while the target writes a batch, the target's while
-- the source reads one): the server does not end them as idle (connection.IDLE_IN_TRANSACTION), however long a batch
-- of large rows takes over a slow link.
SET LOCAL idle_in_transaction_session_timeout = 0;

-- name: copy_target_lock
-- The target's first statement: two copies into one new store take turns (the second then finds it holds data),
-- where both found it empty and each wrote its rows beside the other's, a mix of two stores; a process writing into
-- it meanwhile (a key, a webhook, a schedule) waits too. Every table of transfer.STORE_TABLES but its own
-- (schema_migrations), held until the copy commits.
LOCK TABLE jobs, schedules, runs, attempts, run_minutes, cache_entries, feature_runs, feature_events, resources,
    resource_starts, limit_holds, api_keys, login_sessions, webhooks, webhook_deliveries, outbox, outbox_consumers,
    outbox_marks
IN SHARE ROW EXCLUSIVE MODE;

-- name: live_leases
-- Runs a worker holds now, and feature runs a driver holds: a copy taken meanwhile would run them again in the new
-- store once their lease lapsed there.
SELECT (SELECT count(*) FROM runs WHERE phase = 'running' AND lease_expires_at > %(now)s) AS runs,
       (SELECT count(*) FROM feature_runs WHERE status = 'running' AND lease_expires_at > %(now)s) AS features;

-- name: copied_outbox
-- After the outbox's rows were written with their seq (OVERRIDING SYSTEM VALUE): its identity goes on from the
-- largest, so the events written next come after them.
SELECT setval(pg_get_serial_sequence('outbox', 'seq'), GREATEST(max(seq), 1), max(seq) IS NOT NULL) AS done
FROM outbox;

-- name: put_outbox_marks
UPDATE outbox_marks SET streams_epoch = %(streams_epoch)s, pruned_txid = 0, pruned_seq = %(pruned_seq)s WHERE id = 1;

-- name: copy_statistics
-- The planner's statistics of the tables just filled, before the store is used: until autovacuum's analyze came,
-- a run list of a live phase read every run newest first (3 million after a copy of a probe's store). The store's
-- own large tables only (in a database it shares, a bare ANALYZE read every application's).
ANALYZE jobs, schedules, runs, attempts, run_minutes, feature_runs, feature_events, webhook_deliveries;
