-- SQL of a store's copy into another (store/transfer.py): the tables and columns it reads from the schema itself,
-- so a table or column a migration adds is copied without a change here. The rows themselves are read and written
-- by SQLiteTx.rows_of and SQLiteTx.put_rows (the table's name and columns are the schema's own, quoted).

-- name: store_tables
SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\_%' ESCAPE '\' ORDER BY name;

-- name: table_columns
SELECT name FROM pragma_table_info(:table) ORDER BY cid;

-- name: copy_snapshot
-- The copy reads in one transaction: SQLite's read transaction sees the store as its first read does (WAL mode),
-- so this read starts it.
SELECT 1 AS snapshot;

-- name: live_leases
-- Runs a worker holds now: a copy taken meanwhile would run them again in the new store (their lease lapses there).
SELECT count(*) AS n FROM runs WHERE phase = 'running' AND lease_expires_at > :now;

-- name: copied_outbox
-- After the outbox's rows were written with their seq: nothing to do (an INTEGER PRIMARY KEY goes on from its max).
SELECT 1 AS done;

-- name: put_outbox_marks
UPDATE outbox_marks SET streams_epoch = :streams_epoch, pruned_txid = 0, pruned_seq = :pruned_seq WHERE id = 1;
