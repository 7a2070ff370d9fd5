-- ductape-jobs schema, version 14 (PostgreSQL): the runs' statistics per minute, kept apart from the runs so that
-- they survive pruning (retention.py). The pruner adds each run it deletes here, in the same transaction, so a
-- run is counted either in runs or here, never in both and never in neither; the statistics read both.
-- A row is one minute (ms at its start) of one product and env:
--   ended_completed / ended_failed: pruned runs that ended in that minute (the dashboard's runs per minute);
--   due_*: pruned runs that were due in that minute (job.stats): by phase, how many completed at their first
--   attempt, and the retries of the finished (completed or failed) ones summed.
-- Rows go after their own keep (Retention.keep_stats).
CREATE TABLE run_minutes (
    minute          BIGINT NOT NULL,
    product_tag     TEXT NOT NULL,
    env             TEXT NOT NULL,
    ended_completed BIGINT NOT NULL DEFAULT 0,
    ended_failed    BIGINT NOT NULL DEFAULT 0,
    due_completed   BIGINT NOT NULL DEFAULT 0,
    due_failed      BIGINT NOT NULL DEFAULT 0,
    due_cancelled   BIGINT NOT NULL DEFAULT 0,
    due_first_try   BIGINT NOT NULL DEFAULT 0,
    due_retries     BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (minute, product_tag, env)
);
