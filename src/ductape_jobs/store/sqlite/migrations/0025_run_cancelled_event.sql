-- ductape-jobs schema, version 25 (SQLite): a run that ends cancelled while it ran writes run.cancelled. Its attempt
-- failed after its schedule was cancelled, so no retry is made (cancel_retry); before, the run's last event was its
-- job.started, and a subscriber never learned that it ended. A run cancelled before it started writes no event of
-- its own: the schedule's job.cancelled says it. The trigger is dropped here: migrate() creates it again at once,
-- with the new case (outbox.sql), if a webhook or a live stream wants it.

DROP TRIGGER IF EXISTS outbox_run_changed;
