-- Shared resources and priorities (store/limits_core.py). A run's claim order is its due time aged by its
-- priority: available_at - priority * 1000 (runs_claim and runs_claim_limited). Runs under no limit are picked
-- FOR UPDATE SKIP LOCKED (racing workers pick others). Runs under a limit are picked unlocked; a claim then locks
-- their resources' rows (passing over those another transaction holds) before it counts and locks the runs, so
-- claims of one resource take turns while those of others go on.

-- name: pick_free_runs
-- Runs under no limit are claimed by %(due_by)s, as acquire_runs claims them; runs under a limit only when due.
SELECT id, available_at - priority * 1000 AS claim_key, NULL::text AS limit_keys FROM runs
WHERE phase IN ('scheduled', 'queued', 'retry_scheduled') AND available_at IS NOT NULL AND limit_keys IS NULL
  AND available_at <= %(due_by)s
ORDER BY (available_at - priority * 1000)
LIMIT %(limit)s
FOR UPDATE SKIP LOCKED;

-- name: pick_limited_runs
-- Runs under a limit, skipping those whose set of limits was already found full in this claim. Read without a
-- lock: the claim locks their resources next, then the runs (lock_limited_runs).
SELECT id, available_at - priority * 1000 AS claim_key, limit_keys FROM runs
WHERE phase IN ('scheduled', 'queued', 'retry_scheduled') AND available_at IS NOT NULL
  AND limit_keys IS NOT NULL AND available_at <= %(now)s
  AND NOT (limit_keys = ANY(%(blocked)s::text[]))
ORDER BY (available_at - priority * 1000)
LIMIT %(limit)s;

-- name: lock_limited_runs
-- The runs picked, locked once their limits are: a claim locks a run under a limit only while it holds the limit,
-- so no claim skips another's first runs of a limit to take a later one. A run another write holds (a cancel,
-- say) is skipped, and found by still_due_runs; a run no longer due is left out.
SELECT id, available_at - priority * 1000 AS claim_key, limit_keys FROM runs
WHERE id = ANY(%(ids)s::text[]) AND phase IN ('scheduled', 'queued', 'retry_scheduled')
  AND available_at IS NOT NULL AND available_at <= %(now)s
FOR UPDATE SKIP LOCKED;

-- name: still_due_runs
SELECT id FROM runs
WHERE id = ANY(%(ids)s::text[]) AND phase IN ('scheduled', 'queued', 'retry_scheduled')
  AND available_at IS NOT NULL AND available_at <= %(now)s;

-- name: claim_picked_runs
WITH claimed AS (
    UPDATE runs r SET phase = 'running', lease_owner = %(worker_id)s, lease_expires_at = %(lease_until)s,
        started_at = GREATEST(r.available_at, %(now)s), attempt = r.attempt + 1, updated_at = %(now)s
    WHERE r.id = ANY(%(ids)s::text[]) AND r.phase IN ('scheduled', 'queued', 'retry_scheduled')
    RETURNING r.*
), recorded AS (
    INSERT INTO attempts (run_id, attempt, worker_id, started_at)
    SELECT id, attempt, %(worker_id)s::text, started_at FROM claimed
)
SELECT * FROM claimed;

-- name: lock_resources
-- The limits of the runs a claim picked, locked until it commits. One another transaction holds is passed over
-- (told from one not declared by declared_resources): no claim waits on another's limits, so claims that pick the
-- same runs never deadlock.
SELECT * FROM resources WHERE key = ANY(%(keys)s::text[]) ORDER BY key FOR UPDATE SKIP LOCKED;

-- name: declared_resources
SELECT key FROM resources WHERE key = ANY(%(keys)s::text[]);

-- name: running_limit_keys
SELECT limit_keys FROM runs WHERE phase = 'running' AND limit_keys IS NOT NULL;

-- name: prune_starts
DELETE FROM resource_starts WHERE key = %(key)s AND started_at <= %(since)s;

-- name: count_starts
SELECT count(*) AS n, min(started_at) AS oldest FROM resource_starts WHERE key = %(key)s AND started_at > %(since)s;

-- name: insert_start
INSERT INTO resource_starts (key, started_at, run_id) VALUES (%(key)s, %(started_at)s, %(run_id)s);

-- name: hold_limit_set
-- A set of limits found full (full: true) or passed over: what holds its due runs, and when next_wakeup looks at
-- the set again. One row per set, however many runs wait. A set passed over replaces only a hold that has lapsed,
-- so a full limit's longer recheck and its reason stand. Each claim writes its holds in limit_keys order, so two
-- claims writing the same rows never deadlock.
INSERT INTO limit_holds (limit_keys, waiting_on, held_until)
VALUES (%(limit_keys)s, %(waiting_on)s, %(held_until)s)
ON CONFLICT (limit_keys) DO UPDATE SET waiting_on = excluded.waiting_on, held_until = excluded.held_until
WHERE %(full)s::boolean OR limit_holds.held_until <= %(now)s::bigint;

-- name: upsert_resource
-- Returns the key of a resource added or whose limits changed (none when they are as stored).
INSERT INTO resources (key, product_tag, name, concurrency, rate_count, rate_window_ms, updated_at)
VALUES (%(key)s, %(product_tag)s, %(name)s, %(concurrency)s::integer, %(rate_count)s::integer,
    %(rate_window_ms)s::bigint, %(now)s)
ON CONFLICT (key) DO UPDATE SET concurrency = excluded.concurrency, rate_count = excluded.rate_count,
    rate_window_ms = excluded.rate_window_ms, updated_at = excluded.updated_at
WHERE resources.concurrency IS DISTINCT FROM excluded.concurrency
   OR resources.rate_count IS DISTINCT FROM excluded.rate_count
   OR resources.rate_window_ms IS DISTINCT FROM excluded.rate_window_ms
RETURNING key;

-- name: release_limit_holds
-- The holds of the sets of limits that name a resource whose limits changed (%(keys)s): they were judged by the old
-- limits (full, or not declared), so the next look at those sets is now, not when the hold lapses.
-- Their rows are locked first in the order claims write holds in (limit_keys, as Python sorts text: COLLATE "C"),
-- so a claim writing holds while a resource changes never waits on this delete in the opposite order.
DELETE FROM limit_holds WHERE limit_keys IN (
    SELECT limit_keys FROM limit_holds WHERE limit_keys::jsonb ?| %(keys)s::text[]
    ORDER BY limit_keys COLLATE "C"
    FOR UPDATE);

-- name: list_resources
SELECT * FROM resources WHERE %(product_tag)s::text IS NULL OR product_tag = %(product_tag)s ORDER BY key;

-- name: starts_since
SELECT key, count(*) AS n FROM resource_starts WHERE started_at > %(since)s GROUP BY key;

-- name: waiting_limit_keys
SELECT limit_keys FROM runs
WHERE phase IN ('scheduled', 'queued', 'retry_scheduled') AND available_at IS NOT NULL
  AND limit_keys IS NOT NULL AND available_at <= %(now)s;

-- name: waiting_runs
-- Due runs whose set of limits a claim found full (limit_holds), in claim order.
SELECT r.*, h.waiting_on FROM runs r JOIN limit_holds h ON h.limit_keys = r.limit_keys
WHERE r.phase IN ('scheduled', 'queued', 'retry_scheduled') AND r.available_at IS NOT NULL
  AND r.limit_keys IS NOT NULL AND r.available_at <= %(now)s AND r.available_at <= h.held_until
  AND (%(product_tag)s::text IS NULL OR r.product_tag = %(product_tag)s)
ORDER BY (r.available_at - r.priority * 1000)
LIMIT %(limit)s;
