-- SQL of the PostgreSQL store's outbox (store/outbox.py; the table and its triggers: migration 0011).

-- name: lock_consumer
-- Racing relays of one consumer take turns here, each going on from the cursor the other left.
SELECT txid, seq FROM outbox_consumers WHERE name = %(name)s FOR UPDATE;

-- name: consumer_cursor
SELECT txid, seq FROM outbox_consumers WHERE name = %(name)s;

-- name: add_consumer
INSERT INTO outbox_consumers (name, txid, seq, updated_at) VALUES (%(name)s, 0, 0, %(now)s)
ON CONFLICT (name) DO NOTHING;

-- name: events_after
-- Events after the cursor, oldest first, of transactions older than every one still running: a transaction
-- still running has a txid >= xmin, so the cursor never passes an event that commits later.
SELECT * FROM outbox
WHERE (txid, seq) > (%(txid)s::bigint, %(seq)s::bigint)
  AND txid < pg_snapshot_xmin(pg_current_snapshot())::text::bigint
ORDER BY txid, seq LIMIT %(limit)s;

-- name: advance_consumer
UPDATE outbox_consumers SET txid = %(txid)s, seq = %(seq)s, updated_at = %(now)s WHERE name = %(name)s;

-- Live streams (store/outbox.py; migration 0017): consumers with a lease, and the marks of what they may resume.

-- name: lock_outbox_marks
-- Opening a stream and pruning the outbox take turns here: a stream's check of the pruned mark then sees every
-- prune before it, and a prune after it sees the stream's cursor.
SELECT streams_epoch, pruned_txid, pruned_seq FROM outbox_marks WHERE id = 1 FOR UPDATE;

-- name: outbox_to_settle
-- A live stream whose lease lapsed, or the outbox's triggers left after the last reader went because a long
-- transaction held runs or schedules then (migration 0020): expire_streams has something to do.
SELECT 1 AS found
WHERE EXISTS (SELECT 1 FROM outbox_consumers WHERE lease_until < %(now)s)
   OR (NOT ductape_outbox_wanted() AND ductape_outbox_triggers() > 0);

-- name: delete_lapsed_streams
DELETE FROM outbox_consumers WHERE lease_until < %(now)s;

-- name: live_stream
SELECT 1 AS found FROM outbox_consumers WHERE lease_until IS NOT NULL LIMIT 1;

-- name: wait_for_writers
-- A new epoch of live streams: writers whose triggers ran before the stream's row was there (and wrote only
-- what webhooks take) commit before the stream reads where it starts; writers after it see the row. The lock is
-- asked for in short tries for 10 s, then waited for (migration 0020): writers are not queued behind a long
-- transaction meanwhile.
SELECT ductape_lock_runs('SHARE ROW EXCLUSIVE', 0, interval '10 seconds');

-- name: begin_streams_epoch
UPDATE outbox_marks SET streams_epoch = streams_epoch + 1 WHERE id = 1;

-- name: outbox_head
-- The newest event a reader may take now (see events_after; none: no row). An event of a transaction still
-- running has a txid >= xmin: it commits after this cursor, in order.
SELECT txid, seq FROM outbox
WHERE txid < pg_snapshot_xmin(pg_current_snapshot())::text::bigint
ORDER BY txid DESC, seq DESC LIMIT 1;

-- name: add_stream
INSERT INTO outbox_consumers (name, txid, seq, updated_at, lease_until)
VALUES (%(name)s, %(txid)s, %(seq)s, %(now)s, %(lease_until)s)
ON CONFLICT (name) DO UPDATE SET txid = excluded.txid, seq = excluded.seq, updated_at = excluded.updated_at,
    lease_until = excluded.lease_until;

-- name: renew_stream
UPDATE outbox_consumers SET txid = %(txid)s, seq = %(seq)s, updated_at = %(now)s, lease_until = %(lease_until)s
WHERE name = %(name)s AND lease_until IS NOT NULL;
