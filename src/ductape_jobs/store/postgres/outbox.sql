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
