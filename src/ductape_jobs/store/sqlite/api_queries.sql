-- SQL of the SQLite store for the HTTP API: API keys, webhooks and deliveries, statistics.
-- Times are integer milliseconds since the Unix epoch, UTC. `:product_tag`/`:env` NULL means any.

-- name: insert_api_key
INSERT INTO api_keys (id, name, prefix, hash, product_tag, env, created_at, scope)
VALUES (:id, :name, :prefix, :hash, :product_tag, :env, :created_at, :scope);

-- name: find_api_key
SELECT * FROM api_keys WHERE prefix = :prefix;

-- name: list_api_keys
SELECT * FROM api_keys ORDER BY created_at DESC, id DESC;

-- name: revoke_api_key
UPDATE api_keys SET revoked_at = coalesce(revoked_at, :now) WHERE id = :id RETURNING *;

-- name: touch_api_key
UPDATE api_keys SET last_used_at = :now WHERE id = :id AND (last_used_at IS NULL OR last_used_at < :now);

-- name: insert_login_session
INSERT INTO login_sessions (token_hash, key_id, created_at, expires_at)
VALUES (:token_hash, :key_id, :created_at, :expires_at);

-- name: find_login_session
-- The session with its key (expired, or of a revoked key, too: the caller decides).
SELECT s.token_hash AS session_token_hash, s.created_at AS session_created_at, s.expires_at AS session_expires_at,
       k.*
FROM login_sessions s JOIN api_keys k ON k.id = s.key_id
WHERE s.token_hash = :token_hash;

-- name: delete_login_session
DELETE FROM login_sessions WHERE token_hash = :token_hash;

-- name: delete_login_sessions_of_key
DELETE FROM login_sessions WHERE key_id = :key_id;

-- name: delete_expired_login_sessions
DELETE FROM login_sessions WHERE expires_at <= :now;

-- name: lock_webhooks
-- Nothing: the single writer already takes turns (PostgreSQL locks the webhooks).
SELECT 1;

-- name: insert_webhook
INSERT INTO webhooks (id, product_tag, url, events, secret, created_at)
VALUES (:id, :product_tag, :url, :events, :secret, :created_at);

-- name: list_webhooks
SELECT * FROM webhooks WHERE (:product_tag IS NULL OR product_tag = :product_tag) ORDER BY created_at, id;

-- name: webhooks_by_id
SELECT * FROM webhooks WHERE id IN (SELECT value FROM json_each(:ids));

-- name: get_webhook
SELECT * FROM webhooks WHERE id = :id;

-- name: delete_webhook
DELETE FROM webhooks WHERE id = :id;

-- name: delete_deliveries_of_webhook
DELETE FROM webhook_deliveries WHERE webhook_id = :id;

-- name: insert_delivery
-- Nothing is inserted for a webhook deleted in the meantime.
INSERT INTO webhook_deliveries (id, webhook_id, event, payload, status, attempts, next_attempt_at, created_at)
SELECT :id, w.id, :event, :payload, 'pending', 0, :next_attempt_at, :created_at FROM webhooks w
WHERE w.id = :webhook_id;

-- name: hold_webhooks
-- The webhooks with deliveries due that no other sender holds: this one holds them until :lease_until (or
-- release_webhooks), so that one process at a time sends a webhook's deliveries, in the order of their events.
UPDATE webhooks SET sending_until = :lease_until
WHERE (sending_until IS NULL OR sending_until <= :now)
  AND id IN (SELECT webhook_id FROM webhook_deliveries INDEXED BY webhook_deliveries_due
             WHERE status = 'pending' AND next_attempt_at <= :now)
RETURNING id;

-- name: claim_deliveries
-- Of the webhooks this sender holds (:hooks, a JSON list of ids).
UPDATE webhook_deliveries SET next_attempt_at = :lease_until
WHERE id IN (
    SELECT id FROM webhook_deliveries INDEXED BY webhook_deliveries_due
    WHERE status = 'pending' AND next_attempt_at <= :now AND webhook_id IN (SELECT value FROM json_each(:hooks))
    ORDER BY next_attempt_at, id LIMIT :limit)
RETURNING *;

-- name: release_webhooks
-- The webhooks (:ids) this sender held until :lease_until, free for another (held since by none other).
UPDATE webhooks SET sending_until = NULL
WHERE id IN (SELECT value FROM json_each(:ids)) AND sending_until = :lease_until;

-- name: unclaim_deliveries
-- Deliveries (:ids) claimed until :lease_until and not sent: due again at once, at their creation (so that they
-- keep their place before the later events of their webhook).
UPDATE webhook_deliveries SET next_attempt_at = created_at
WHERE id IN (SELECT value FROM json_each(:ids)) AND status = 'pending' AND next_attempt_at = :lease_until;

-- name: record_delivery
UPDATE webhook_deliveries SET
    status = CASE WHEN :ok = 1 THEN 'delivered' WHEN :retry_at IS NULL THEN 'failed' ELSE 'pending' END,
    attempts = attempts + 1,
    delivered_at = CASE WHEN :ok = 1 THEN :now END,
    next_attempt_at = :retry_at,
    last_error = :error,
    last_status = :status,
    last_duration_ms = :duration_ms
WHERE id = :id AND status = 'pending';

-- name: get_delivery
SELECT * FROM webhook_deliveries WHERE id = :id;

-- name: list_deliveries
SELECT * FROM webhook_deliveries WHERE webhook_id = :webhook_id
  AND (created_at, id) < (:after_at, :after_id)
ORDER BY created_at DESC, id DESC LIMIT :limit OFFSET :offset;

-- name: runs_per_minute
-- Runs that ended in [:since, :until) per minute of their end: those still kept (to the ms), and those pruned
-- (run_minutes, for the minutes wholly in the window). A run is in one or the other, never both.
SELECT minute, sum(completed) AS completed, sum(failed) AS failed FROM (
    SELECT (completed_at / 60000) * 60000 AS minute,
           sum(CASE WHEN phase = 'completed' THEN 1 ELSE 0 END) AS completed,
           sum(CASE WHEN phase = 'failed' THEN 1 ELSE 0 END) AS failed
    FROM runs INDEXED BY runs_ended
    WHERE completed_at IS NOT NULL AND completed_at >= :since AND completed_at < :until
      AND phase IN ('completed', 'failed')
      AND (:product_tag IS NULL OR product_tag = :product_tag) AND (:env IS NULL OR env = :env)
    GROUP BY 1
    UNION ALL
    SELECT minute, ended_completed, ended_failed FROM run_minutes
    WHERE minute >= :since AND minute + 60000 <= :until AND ended_completed + ended_failed > 0
      AND (:product_tag IS NULL OR product_tag = :product_tag) AND (:env IS NULL OR env = :env)
)
GROUP BY minute ORDER BY minute;

-- name: lateness_sample
-- How late runs started since :since began: ended ones (found by their end, which follows their start) and
-- running ones. Late = start minus the time the run became due (its retry time for a retry).
SELECT started_at, started_at - coalesce(available_at, scheduled_at) AS late_ms
FROM runs INDEXED BY runs_ended
WHERE completed_at IS NOT NULL AND completed_at >= :since AND started_at >= :since
  AND phase IN ('completed', 'failed')
  AND (:product_tag IS NULL OR product_tag = :product_tag) AND (:env IS NULL OR env = :env)
UNION ALL
SELECT started_at, started_at - coalesce(available_at, scheduled_at) AS late_ms
FROM runs INDEXED BY runs_leases
WHERE phase = 'running' AND started_at >= :since
  AND (:product_tag IS NULL OR product_tag = :product_tag) AND (:env IS NULL OR env = :env)
ORDER BY started_at DESC LIMIT :limit;

-- name: delivery_backlog
-- The deliveries still to send, by the partial index of the pending ones (retention keeps days of sent ones).
SELECT count(*) AS n, min(created_at) AS oldest FROM webhook_deliveries INDEXED BY webhook_deliveries_due WHERE status = 'pending';

-- name: queue_depth
SELECT count(*) AS n FROM runs INDEXED BY runs_pending
WHERE (phase = 'scheduled' OR phase = 'queued' OR phase = 'retry_scheduled')
  AND available_at IS NOT NULL AND available_at <= :now
  AND (:product_tag IS NULL OR product_tag = :product_tag) AND (:env IS NULL OR env = :env);

-- name: next_due_schedules
SELECT * FROM schedules INDEXED BY schedules_due
WHERE status = 'active' AND next_run_at IS NOT NULL AND (:before IS NULL OR next_run_at < :before)
  AND (:product_tag IS NULL OR product_tag = :product_tag) AND (:env IS NULL OR env = :env)
ORDER BY next_run_at, id LIMIT :limit;

-- name: run_activity
SELECT
    (SELECT id FROM runs WHERE (:product_tag IS NULL OR product_tag = :product_tag)
        AND (:env IS NULL OR env = :env) ORDER BY id DESC LIMIT 1) AS latest_run_id,
    (SELECT completed_at FROM runs INDEXED BY runs_ended WHERE completed_at IS NOT NULL
        AND (:product_tag IS NULL OR product_tag = :product_tag) AND (:env IS NULL OR env = :env)
        ORDER BY completed_at DESC LIMIT 1) AS latest_finished_at,
    (SELECT count(*) FROM runs INDEXED BY runs_leases WHERE phase = 'running'
        AND (:product_tag IS NULL OR product_tag = :product_tag) AND (:env IS NULL OR env = :env)) AS running,
    (SELECT count(*) FROM runs INDEXED BY runs_pending
        WHERE (phase = 'scheduled' OR phase = 'queued' OR phase = 'retry_scheduled') AND available_at IS NOT NULL
        AND available_at <= :now
        AND (:product_tag IS NULL OR product_tag = :product_tag) AND (:env IS NULL OR env = :env)) AS queued;
