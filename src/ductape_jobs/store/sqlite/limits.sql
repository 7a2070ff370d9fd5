-- Shared resources and priorities (store/limits_core.py). A run's claim order is its due time aged by its
-- priority: available_at - priority * 1000 (runs_claim and runs_claim_limited).

-- name: limited_due
-- Whether any run under a limit is due: the fast path's only look at them (an empty partial index).
SELECT EXISTS (
    SELECT 1 FROM runs INDEXED BY runs_claim_limited
    WHERE (phase = 'scheduled' OR phase = 'queued' OR phase = 'retry_scheduled') AND available_at IS NOT NULL
      AND limit_keys IS NOT NULL AND available_at <= :now) AS limited;

-- name: pick_free_runs
-- Runs under no limit are claimed by :due_by, as acquire_runs claims them; runs under a limit only when due.
SELECT id, available_at - priority * 1000 AS claim_key, NULL AS limit_keys FROM runs INDEXED BY runs_claim
WHERE (phase = 'scheduled' OR phase = 'queued' OR phase = 'retry_scheduled')
  AND available_at IS NOT NULL AND limit_keys IS NULL
  AND available_at <= :due_by
ORDER BY (available_at - priority * 1000)
LIMIT :limit;

-- name: pick_limited_runs
-- Runs under a limit, skipping those whose set of limits was already found full in this claim.
SELECT id, available_at - priority * 1000 AS claim_key, limit_keys FROM runs INDEXED BY runs_claim_limited
WHERE (phase = 'scheduled' OR phase = 'queued' OR phase = 'retry_scheduled') AND available_at IS NOT NULL
  AND limit_keys IS NOT NULL AND available_at <= :now
  AND limit_keys NOT IN (SELECT value FROM json_each(:blocked))
ORDER BY (available_at - priority * 1000)
LIMIT :limit;

-- name: lock_limited_runs
-- The runs picked, read again once their resources are locked (SQLite's single writer already serialises claims).
SELECT id, available_at - priority * 1000 AS claim_key, limit_keys FROM runs
WHERE id IN (SELECT value FROM json_each(:ids))
  AND (phase = 'scheduled' OR phase = 'queued' OR phase = 'retry_scheduled')
  AND available_at IS NOT NULL AND available_at <= :now;

-- name: still_due_runs
SELECT id FROM runs
WHERE id IN (SELECT value FROM json_each(:ids))
  AND (phase = 'scheduled' OR phase = 'queued' OR phase = 'retry_scheduled')
  AND available_at IS NOT NULL AND available_at <= :now;

-- name: claim_picked_runs
UPDATE runs SET phase = 'running', lease_owner = :worker_id, lease_expires_at = :lease_until,
    started_at = max(coalesce(available_at, :now), :now), attempt = attempt + 1, updated_at = :now
WHERE id IN (SELECT value FROM json_each(:ids))
  AND (phase = 'scheduled' OR phase = 'queued' OR phase = 'retry_scheduled')
RETURNING *;

-- name: lock_resources
-- (SQLite's single writer already serialises claims.)
SELECT * FROM resources WHERE key IN (SELECT value FROM json_each(:keys)) ORDER BY key;

-- name: declared_resources
SELECT key FROM resources WHERE key IN (SELECT value FROM json_each(:keys));

-- name: running_limit_keys
SELECT limit_keys FROM runs INDEXED BY runs_limited_running WHERE phase = 'running' AND limit_keys IS NOT NULL;

-- name: prune_starts
DELETE FROM resource_starts WHERE key = :key AND started_at <= :since;

-- name: count_starts
SELECT count(*) AS n, min(started_at) AS oldest FROM resource_starts WHERE key = :key AND started_at > :since;

-- name: insert_start
INSERT INTO resource_starts (key, started_at, run_id) VALUES (:key, :started_at, :run_id);

-- name: hold_limit_set
-- A set of limits found full (full: true) or passed over: what holds its due runs, and when next_wakeup looks at
-- the set again. One row per set, however many runs wait. A set passed over replaces only a hold that has lapsed,
-- so a full limit's longer recheck and its reason stand.
INSERT INTO limit_holds (limit_keys, waiting_on, held_until)
VALUES (:limit_keys, :waiting_on, :held_until)
ON CONFLICT (limit_keys) DO UPDATE SET waiting_on = excluded.waiting_on, held_until = excluded.held_until
WHERE :full OR limit_holds.held_until <= :now;

-- name: upsert_resource
-- Returns the key of a resource added or whose limits changed (none when they are as stored).
INSERT INTO resources (key, product_tag, name, concurrency, rate_count, rate_window_ms, updated_at)
VALUES (:key, :product_tag, :name, :concurrency, :rate_count, :rate_window_ms, :now)
ON CONFLICT (key) DO UPDATE SET concurrency = excluded.concurrency, rate_count = excluded.rate_count,
    rate_window_ms = excluded.rate_window_ms, updated_at = excluded.updated_at
WHERE resources.concurrency IS NOT excluded.concurrency OR resources.rate_count IS NOT excluded.rate_count
   OR resources.rate_window_ms IS NOT excluded.rate_window_ms
RETURNING key;

-- name: release_limit_holds
-- The holds of the sets of limits that name a resource whose limits changed (:keys): they were judged by the old
-- limits (full, or not declared), so the next look at those sets is now, not when the hold lapses.
DELETE FROM limit_holds
WHERE EXISTS (SELECT 1 FROM json_each(limit_holds.limit_keys) k WHERE k.value IN (SELECT value FROM json_each(:keys)));

-- name: list_resources
SELECT * FROM resources WHERE :product_tag IS NULL OR product_tag = :product_tag ORDER BY key;

-- name: starts_since
SELECT key, count(*) AS n FROM resource_starts WHERE started_at > :since GROUP BY key;

-- name: waiting_limit_keys
SELECT limit_keys FROM runs INDEXED BY runs_claim_limited
WHERE (phase = 'scheduled' OR phase = 'queued' OR phase = 'retry_scheduled') AND available_at IS NOT NULL
  AND limit_keys IS NOT NULL AND available_at <= :now;

-- name: waiting_runs
-- Due runs whose set of limits a claim found full (limit_holds), in claim order.
SELECT r.*, h.waiting_on FROM runs r JOIN limit_holds h ON h.limit_keys = r.limit_keys
WHERE (r.phase = 'scheduled' OR r.phase = 'queued' OR r.phase = 'retry_scheduled') AND r.available_at IS NOT NULL
  AND r.limit_keys IS NOT NULL AND r.available_at <= :now AND r.available_at <= h.held_until
  AND (:product_tag IS NULL OR r.product_tag = :product_tag)
ORDER BY (r.available_at - r.priority * 1000)
LIMIT :limit;
