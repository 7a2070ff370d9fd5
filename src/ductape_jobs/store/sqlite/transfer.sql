-- SQL of a store's copy into another (store/transfer.py): the columns of its tables (transfer.STORE_TABLES) it reads
-- from the schema itself, so a column a migration adds is copied without a change here. The rows themselves are read
-- and written by SQLiteTx.rows_of and SQLiteTx.put_rows (the table's name and columns are the schema's own, quoted).

-- name: table_columns
SELECT name FROM pragma_table_info(:table) ORDER BY cid;

-- name: copy_snapshot
-- Nothing to set: SQLite's read transaction sees the store as it was at its first read of a table (WAL mode), and
-- every read of the copy is in it.
SELECT 1 AS snapshot;

-- name: copy_unhurried
-- Nothing to set: SQLite ends no transaction for waiting.
SELECT 1 AS unhurried;

-- name: copy_target_lock
-- Nothing to take: a SQLite target is a new file of this copy's own (store/copying.py), written under its one
-- writer's lock.
SELECT 1 AS locked;

-- name: live_leases
-- Runs a worker holds now, and feature runs a driver holds: a copy taken meanwhile would run them again in the new
-- store once their lease lapsed there.
SELECT (SELECT count(*) FROM runs WHERE phase = 'running' AND lease_expires_at > :now) AS runs,
       (SELECT count(*) FROM feature_runs WHERE status = 'running' AND lease_expires_at > :now) AS features;

-- name: copied_outbox
-- After the outbox's rows were written with their seq: nothing to do (an INTEGER PRIMARY KEY goes on from its max).
SELECT 1 AS done;

-- name: put_outbox_marks
UPDATE outbox_marks SET streams_epoch = :streams_epoch, pruned_txid = 0, pruned_seq = :pruned_seq WHERE id = 1;

-- name: copy_statistics
-- Nothing to gather: the SQLite store's queries are planned without statistics (their indexes named where needed).
SELECT 1 AS gathered;
