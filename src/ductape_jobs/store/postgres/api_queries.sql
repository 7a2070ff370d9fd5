-- SQL of the PostgreSQL store for the HTTP API: API keys, webhooks and deliveries, statistics.
-- Times are BIGINT milliseconds since the Unix epoch, UTC. `product_tag`/`env` NULL means any.

-- name: insert_api_key
INSERT INTO api_keys (id, name, prefix, hash, product_tag, env, created_at, scope)
VALUES (%(id)s, %(name)s, %(prefix)s, %(hash)s, %(product_tag)s, %(env)s, %(created_at)s, %(scope)s);

-- name: find_api_key
SELECT * FROM api_keys WHERE prefix = %(prefix)s;

-- name: list_api_keys
SELECT * FROM api_keys ORDER BY created_at DESC, id DESC;

-- name: revoke_api_key
UPDATE api_keys SET revoked_at = coalesce(revoked_at, %(now)s) WHERE id = %(id)s RETURNING *;

-- name: touch_api_key
UPDATE api_keys SET last_used_at = %(now)s
WHERE id = %(id)s AND (last_used_at IS NULL OR last_used_at < %(now)s);

-- name: insert_login_session
INSERT INTO login_sessions (token_hash, key_id, created_at, expires_at)
VALUES (%(token_hash)s, %(key_id)s, %(created_at)s, %(expires_at)s);

-- name: find_login_session
-- The session with its key (expired, or of a revoked key, too: the caller decides).
SELECT s.token_hash AS session_token_hash, s.created_at AS session_created_at, s.expires_at AS session_expires_at,
       k.*
FROM login_sessions s JOIN api_keys k ON k.id = s.key_id
WHERE s.token_hash = %(token_hash)s;

-- name: delete_login_session
DELETE FROM login_sessions WHERE token_hash = %(token_hash)s;

-- name: delete_login_sessions_of_key
DELETE FROM login_sessions WHERE key_id = %(key_id)s;

-- name: delete_expired_login_sessions
DELETE FROM login_sessions WHERE expires_at <= %(now)s;

-- name: lock_webhooks
-- Adding and deleting webhooks, and opening and expiring live streams, take turns (ductape_outbox_sync creates or
-- drops the outbox's triggers).
LOCK TABLE webhooks IN SHARE ROW EXCLUSIVE MODE;

-- name: sync_outbox_triggers
-- The outbox's triggers while some webhook or live stream exists, none otherwise (migrations 13, 17 and 20: the
-- locks it needs are asked for in short tries, and a drop that meets a long transaction is left for later).
SELECT ductape_outbox_sync();

-- name: insert_webhook
INSERT INTO webhooks (id, product_tag, url, events, secret, created_at)
VALUES (%(id)s, %(product_tag)s, %(url)s, %(events)s, %(secret)s, %(created_at)s);

-- name: list_webhooks
SELECT * FROM webhooks WHERE (%(product_tag)s::text IS NULL OR product_tag = %(product_tag)s)
ORDER BY created_at, id;

-- name: get_webhook
SELECT * FROM webhooks WHERE id = %(id)s;

-- name: delete_webhook
DELETE FROM webhooks WHERE id = %(id)s;

-- name: delete_deliveries_of_webhook
DELETE FROM webhook_deliveries WHERE webhook_id = %(id)s;

-- name: insert_delivery
-- Nothing is inserted for a webhook deleted in the meantime.
INSERT INTO webhook_deliveries (id, webhook_id, event, payload, status, attempts, next_attempt_at, created_at)
SELECT %(id)s, w.id, %(event)s, %(payload)s, 'pending', 0, %(next_attempt_at)s, %(created_at)s FROM webhooks w
WHERE w.id = %(webhook_id)s;

-- name: hold_webhooks
-- The webhooks with deliveries due that no other sender holds: this one holds them until %(lease_until)s (or
-- release_webhooks), so that one process at a time sends a webhook's deliveries, in the order of their events. A
-- webhook another sender is holding right now is passed over (SKIP LOCKED); one it held since this statement began
-- is read again as locked (its sending_until checked on the row's newest version).
UPDATE webhooks w SET sending_until = %(lease_until)s
FROM (SELECT id FROM webhooks
      WHERE (sending_until IS NULL OR sending_until <= %(now)s)
        AND id IN (SELECT webhook_id FROM webhook_deliveries
                   WHERE status = 'pending' AND next_attempt_at <= %(now)s)
      FOR UPDATE SKIP LOCKED) free
WHERE w.id = free.id AND (w.sending_until IS NULL OR w.sending_until <= %(now)s)
RETURNING w.id;

-- name: claim_deliveries
-- Of the webhooks this sender holds (%(hooks)s); a claim lasts until the lease ends.
UPDATE webhook_deliveries d SET next_attempt_at = %(lease_until)s
FROM (SELECT id FROM webhook_deliveries
      WHERE status = 'pending' AND next_attempt_at <= %(now)s AND webhook_id = ANY(%(hooks)s)
      ORDER BY next_attempt_at, id LIMIT %(limit)s
      FOR UPDATE SKIP LOCKED) due, webhooks w
WHERE d.id = due.id AND w.id = d.webhook_id
RETURNING d.*, w.url AS url, w.secret AS secret;

-- name: release_webhooks
-- The webhooks (%(ids)s) this sender held until %(lease_until)s, free for another (held since by none other).
UPDATE webhooks SET sending_until = NULL WHERE id = ANY(%(ids)s) AND sending_until = %(lease_until)s;

-- name: unclaim_deliveries
-- Deliveries (%(ids)s) claimed until %(lease_until)s and not sent: due again at once, at their creation (so that
-- they keep their place before the later events of their webhook).
UPDATE webhook_deliveries SET next_attempt_at = created_at
WHERE id = ANY(%(ids)s) AND status = 'pending' AND next_attempt_at = %(lease_until)s;

-- name: record_delivery
UPDATE webhook_deliveries SET
    status = CASE WHEN %(ok)s = 1 THEN 'delivered'
                  WHEN %(retry_at)s::bigint IS NULL THEN 'failed' ELSE 'pending' END,
    attempts = attempts + 1,
    delivered_at = CASE WHEN %(ok)s = 1 THEN %(now)s::bigint END,
    next_attempt_at = %(retry_at)s,
    last_error = %(error)s,
    last_status = %(status)s,
    last_duration_ms = %(duration_ms)s
WHERE id = %(id)s AND status = 'pending';

-- name: get_delivery
SELECT * FROM webhook_deliveries WHERE id = %(id)s;

-- name: list_deliveries
SELECT * FROM webhook_deliveries WHERE webhook_id = %(webhook_id)s
  AND (created_at, id) < (%(after_at)s::bigint, %(after_id)s::text)
ORDER BY created_at DESC, id DESC LIMIT %(limit)s OFFSET %(offset)s;

-- name: runs_per_minute
-- Runs that ended in [since, until) per minute of their end: those still kept (to the ms), and those pruned
-- (run_minutes, for the minutes wholly in the window). A run is in one or the other, never both.
SELECT minute, sum(completed) AS completed, sum(failed) AS failed FROM (
    SELECT (completed_at / 60000) * 60000 AS minute,
           count(*) FILTER (WHERE phase = 'completed') AS completed,
           count(*) FILTER (WHERE phase = 'failed') AS failed
    FROM runs
    WHERE completed_at IS NOT NULL AND completed_at >= %(since)s AND completed_at < %(until)s
      AND phase IN ('completed', 'failed')
      AND (%(product_tag)s::text IS NULL OR product_tag = %(product_tag)s)
      AND (%(env)s::text IS NULL OR env = %(env)s)
    GROUP BY 1
    UNION ALL
    SELECT minute, ended_completed, ended_failed FROM run_minutes
    WHERE minute >= %(since)s AND minute + 60000 <= %(until)s AND ended_completed + ended_failed > 0
      AND (%(product_tag)s::text IS NULL OR product_tag = %(product_tag)s)
      AND (%(env)s::text IS NULL OR env = %(env)s)
) ended
GROUP BY minute ORDER BY minute;

-- name: lateness_sample
-- How late runs started since `since` began: ended ones (found by their end, which follows their start) and
-- running ones. Late = start minus the time the run became due (its retry time for a retry).
(SELECT started_at, started_at - coalesce(available_at, scheduled_at) AS late_ms FROM runs
 WHERE completed_at IS NOT NULL AND completed_at >= %(since)s AND started_at >= %(since)s
   AND phase IN ('completed', 'failed')
   AND (%(product_tag)s::text IS NULL OR product_tag = %(product_tag)s)
   AND (%(env)s::text IS NULL OR env = %(env)s)
 UNION ALL
 SELECT started_at, started_at - coalesce(available_at, scheduled_at) AS late_ms FROM runs
 WHERE phase = 'running' AND started_at >= %(since)s
   AND (%(product_tag)s::text IS NULL OR product_tag = %(product_tag)s)
   AND (%(env)s::text IS NULL OR env = %(env)s))
ORDER BY started_at DESC LIMIT %(limit)s;

-- name: delivery_backlog
-- The deliveries still to send, by the partial index of the pending ones (retention keeps days of sent ones).
SELECT count(*) AS n, min(created_at) AS oldest FROM webhook_deliveries WHERE status = 'pending';

-- name: queue_depth
SELECT count(*) AS n FROM runs
WHERE phase IN ('scheduled', 'queued', 'retry_scheduled') AND available_at IS NOT NULL
  AND available_at <= %(now)s
  AND (%(product_tag)s::text IS NULL OR product_tag = %(product_tag)s)
  AND (%(env)s::text IS NULL OR env = %(env)s);

-- name: next_due_schedules
SELECT * FROM schedules
WHERE status = 'active' AND next_run_at IS NOT NULL
  AND (%(before)s::bigint IS NULL OR next_run_at < %(before)s)
  AND (%(product_tag)s::text IS NULL OR product_tag = %(product_tag)s)
  AND (%(env)s::text IS NULL OR env = %(env)s)
ORDER BY next_run_at, id LIMIT %(limit)s;

-- name: run_activity
SELECT
    (SELECT id FROM runs WHERE (%(product_tag)s::text IS NULL OR product_tag = %(product_tag)s)
        AND (%(env)s::text IS NULL OR env = %(env)s) ORDER BY id DESC LIMIT 1) AS latest_run_id,
    (SELECT completed_at FROM runs WHERE completed_at IS NOT NULL
        AND (%(product_tag)s::text IS NULL OR product_tag = %(product_tag)s)
        AND (%(env)s::text IS NULL OR env = %(env)s)
        ORDER BY completed_at DESC LIMIT 1) AS latest_finished_at,
    (SELECT count(*) FROM runs WHERE phase = 'running'
        AND (%(product_tag)s::text IS NULL OR product_tag = %(product_tag)s)
        AND (%(env)s::text IS NULL OR env = %(env)s)) AS running,
    (SELECT count(*) FROM runs WHERE phase IN ('scheduled', 'queued', 'retry_scheduled')
        AND available_at IS NOT NULL AND available_at <= %(now)s
        AND (%(product_tag)s::text IS NULL OR product_tag = %(product_tag)s)
        AND (%(env)s::text IS NULL OR env = %(env)s)) AS queued;

-- name: webhooks_by_id
SELECT * FROM webhooks WHERE id = ANY(%(ids)s);
