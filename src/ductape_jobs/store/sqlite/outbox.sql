-- SQL of the SQLite store's outbox (store/outbox.py; the table and its triggers: migration 0011). The single
-- writer commits events in seq order, so seq alone is the cursor (txid is always 0).

-- name: lock_consumer
SELECT txid, seq FROM outbox_consumers WHERE name = :name;

-- name: consumer_cursor
SELECT txid, seq FROM outbox_consumers WHERE name = :name;

-- name: add_consumer
INSERT INTO outbox_consumers (name, txid, seq, updated_at) VALUES (:name, 0, 0, :now)
ON CONFLICT (name) DO NOTHING;

-- name: events_after
SELECT * FROM outbox WHERE seq > :seq ORDER BY seq LIMIT :limit;

-- name: advance_consumer
UPDATE outbox_consumers SET txid = :txid, seq = :seq, updated_at = :now WHERE name = :name;
