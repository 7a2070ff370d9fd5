-- SQL of the PostgreSQL store's feature runs. Times are BIGINT milliseconds since the Unix epoch, UTC;
-- parameters are psycopg's %(name)s.
-- Every write of a run's driver is guarded by its lease (lease_owner): a driver whose run was taken over
-- changes nothing.

-- name: insert_feature_run
INSERT INTO feature_runs (id, product_tag, env, feature_tag, input, session_claims, status, error, lease_owner,
    lease_expires_at, created_at, updated_at)
VALUES (%(id)s, %(product_tag)s, %(env)s, %(feature_tag)s, %(input)s, %(session_claims)s, %(status)s,
    %(error)s, %(lease_owner)s, %(lease_expires_at)s, %(created_at)s, %(updated_at)s);

-- name: insert_feature_event
INSERT INTO feature_events (feature_run_id, sequence_tag, event_tag, event_type, position, status)
VALUES (%(feature_run_id)s, %(sequence_tag)s, %(event_tag)s, %(event_type)s, %(position)s, %(status)s);

-- name: get_feature_run
SELECT * FROM feature_runs WHERE id = %(id)s;

-- name: events_of_feature_run
SELECT * FROM feature_events WHERE feature_run_id = %(run_id)s ORDER BY position;

-- name: claim_feature_run
UPDATE feature_runs SET lease_owner = %(owner)s, lease_expires_at = %(until)s, updated_at = %(now)s
WHERE id = %(id)s AND status = 'running'
  AND (lease_owner IS NULL OR lease_owner = %(owner)s OR lease_expires_at < %(now)s OR %(take_over)s)
RETURNING id;

-- name: extend_feature_lease
UPDATE feature_runs SET lease_expires_at = %(until)s
WHERE id = %(id)s AND lease_owner = %(owner)s AND status = 'running';

-- name: start_feature_event
UPDATE feature_events SET status = 'running', attempts = attempts + 1, started_at = coalesce(started_at, %(now)s)
WHERE feature_run_id = %(run_id)s AND sequence_tag = %(sequence_tag)s AND event_tag = %(event_tag)s
  AND status IN ('pending', 'running', 'retrying')
  AND EXISTS (SELECT 1 FROM feature_runs WHERE id = %(run_id)s AND lease_owner = %(owner)s AND status = 'running')
RETURNING attempts;

-- name: finish_feature_event
UPDATE feature_events SET status = %(status)s, output = %(output)s, job_id = %(job_id)s, error = %(error)s,
    completed_at = %(completed_at)s
WHERE feature_run_id = %(run_id)s AND sequence_tag = %(sequence_tag)s AND event_tag = %(event_tag)s
  AND status IN ('running', %(status)s)
  AND EXISTS (SELECT 1 FROM feature_runs WHERE id = %(run_id)s AND lease_owner = %(owner)s AND status = 'running');

-- name: finish_feature_run
UPDATE feature_runs SET status = %(status)s, error = %(error)s, completed_at = %(now)s, updated_at = %(now)s,
    lease_owner = NULL, lease_expires_at = NULL
WHERE id = %(id)s AND lease_owner = %(owner)s AND status = 'running';

-- name: skip_unfinished_events
UPDATE feature_events SET status = 'skipped', completed_at = %(now)s
WHERE feature_run_id = %(id)s AND status IN ('pending', 'running', 'retrying');

-- name: restart_feature_run
UPDATE feature_runs SET status = 'running', error = NULL, completed_at = NULL, lease_owner = NULL,
    lease_expires_at = NULL, updated_at = %(now)s
WHERE id = %(id)s AND status = 'failed';

-- name: reset_unsuccessful_events
UPDATE feature_events SET status = 'pending', error = NULL, completed_at = NULL
WHERE feature_run_id = %(id)s AND status IN ('failed', 'skipped');

-- name: list_feature_runs
SELECT * FROM feature_runs
WHERE (%(feature_tag)s::text IS NULL OR feature_tag = %(feature_tag)s)
  AND (%(status)s::text IS NULL OR status = %(status)s)
  AND (%(product_tag)s::text IS NULL OR product_tag = %(product_tag)s)
  AND (%(env)s::text IS NULL OR env = %(env)s)
  AND (created_at, id) < (%(after_at)s::bigint, %(after_id)s::text)
ORDER BY created_at DESC, id DESC LIMIT %(limit)s OFFSET %(offset)s;

-- name: list_feature_runs_of_feature
-- list_feature_runs for one feature: a plain equality, so the (feature_tag, created_at, id) index applies.
SELECT * FROM feature_runs
WHERE feature_tag = %(feature_tag)s
  AND (%(status)s::text IS NULL OR status = %(status)s)
  AND (%(product_tag)s::text IS NULL OR product_tag = %(product_tag)s)
  AND (%(env)s::text IS NULL OR env = %(env)s)
  AND (created_at, id) < (%(after_at)s::bigint, %(after_id)s::text)
ORDER BY created_at DESC, id DESC LIMIT %(limit)s OFFSET %(offset)s;

-- name: feature_schedule
SELECT * FROM schedules WHERE feature_key = %(key)s;

-- name: orphaned_feature_runs
-- Direct feature runs (not a FEATURE job run's, not a child feature's) whose driver stopped renewing its lease.
SELECT id FROM feature_runs
WHERE status = 'running' AND lease_expires_at < %(now)s
  AND lease_owner NOT LIKE 'job-run:%%' AND strpos(id, '/') = 0
ORDER BY lease_expires_at LIMIT %(limit)s;
