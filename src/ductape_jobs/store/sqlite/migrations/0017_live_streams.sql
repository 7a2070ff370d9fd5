-- ductape-jobs schema, version 17 (SQLite): live streams (the dashboard's /api/v1/events) read the outbox.
--
-- A live stream is a row of outbox_consumers with a lease (lease_until, ms; NULL: a durable consumer such as the
-- webhooks' relay): it keeps its cursor there and renews it while it streams, so the pruner keeps the events it
-- has not read yet; a stream whose lease lapsed (its server died, its browser went away) pins nothing and is
-- deleted by the next stream that opens or the next prune. While some live stream exists the outbox's triggers
-- exist and write every event, of every product (a stream reads all of them); otherwise they write only what some
-- webhook of the product takes, and exist only while some webhook does (version 15). The triggers of version 15
-- are dropped here: migrate() creates them again at once, with the new filter (outbox.sql), if a webhook exists.
--
-- outbox_marks (one row) says what a stream reconnecting with a position may resume from: streams_epoch counts
-- the times a stream opened while none was live (events were not all written before that), and the pruned
-- cursor is the newest event the pruner deleted (every later one is kept).

ALTER TABLE outbox_consumers ADD COLUMN lease_until INTEGER;

CREATE TABLE outbox_marks (
    id            INTEGER PRIMARY KEY CHECK (id = 1),
    streams_epoch INTEGER NOT NULL,
    pruned_txid   INTEGER NOT NULL,
    pruned_seq    INTEGER NOT NULL
);
INSERT INTO outbox_marks (id, streams_epoch, pruned_txid, pruned_seq) VALUES (1, 0, 0, 0);

DROP TRIGGER IF EXISTS outbox_run_created;
DROP TRIGGER IF EXISTS outbox_run_changed;
DROP TRIGGER IF EXISTS outbox_schedule_created;
DROP TRIGGER IF EXISTS outbox_schedule_changed;
