-- SQL of the SQLite store's feature runs. Times are integer milliseconds since the Unix epoch, UTC.
-- Every write of a run's driver is guarded by its lease (lease_owner): a driver whose run was taken over
-- changes nothing.

-- name: insert_feature_run
INSERT INTO feature_runs (id, product_tag, env, feature_tag, input, session_claims, status, error, lease_owner,
    lease_expires_at, created_at, updated_at)
VALUES (:id, :product_tag, :env, :feature_tag, :input, :session_claims, :status, :error, :lease_owner,
    :lease_expires_at, :created_at, :updated_at);

-- name: insert_feature_event
INSERT INTO feature_events (feature_run_id, sequence_tag, event_tag, event_type, position, status)
VALUES (:feature_run_id, :sequence_tag, :event_tag, :event_type, :position, :status);

-- name: get_feature_run
SELECT * FROM feature_runs WHERE id = :id;

-- name: events_of_feature_run
SELECT * FROM feature_events WHERE feature_run_id = :run_id ORDER BY position;

-- name: claim_feature_run
UPDATE feature_runs SET lease_owner = :owner, lease_expires_at = :until, updated_at = :now
WHERE id = :id AND status = 'running'
  AND (lease_owner IS NULL OR lease_owner = :owner OR lease_expires_at < :now OR :take_over = 1)
RETURNING id;

-- name: extend_feature_lease
UPDATE feature_runs SET lease_expires_at = :until
WHERE id = :id AND lease_owner = :owner AND status = 'running';

-- name: start_feature_event
UPDATE feature_events SET status = 'running', attempts = attempts + 1, started_at = coalesce(started_at, :now)
WHERE feature_run_id = :run_id AND sequence_tag = :sequence_tag AND event_tag = :event_tag
  AND (status = 'pending' OR status = 'running' OR status = 'retrying')
  AND EXISTS (SELECT 1 FROM feature_runs WHERE id = :run_id AND lease_owner = :owner AND status = 'running')
RETURNING attempts;

-- name: finish_feature_event
UPDATE feature_events SET status = :status, output = :output, job_id = :job_id, error = :error,
    completed_at = :completed_at
WHERE feature_run_id = :run_id AND sequence_tag = :sequence_tag AND event_tag = :event_tag
  AND status IN ('running', :status)
  AND EXISTS (SELECT 1 FROM feature_runs WHERE id = :run_id AND lease_owner = :owner AND status = 'running');

-- name: finish_feature_run
UPDATE feature_runs SET status = :status, error = :error, completed_at = :now, updated_at = :now,
    lease_owner = NULL, lease_expires_at = NULL
WHERE id = :id AND lease_owner = :owner AND status = 'running';

-- name: skip_unfinished_events
UPDATE feature_events SET status = 'skipped', completed_at = :now
WHERE feature_run_id = :id AND (status = 'pending' OR status = 'running' OR status = 'retrying');

-- name: restart_feature_run
UPDATE feature_runs SET status = 'running', error = NULL, completed_at = NULL, lease_owner = NULL,
    lease_expires_at = NULL, updated_at = :now
WHERE id = :id AND status = 'failed';

-- name: reset_unsuccessful_events
UPDATE feature_events SET status = 'pending', error = NULL, completed_at = NULL
WHERE feature_run_id = :id AND status IN ('failed', 'skipped');

-- name: list_feature_runs
SELECT * FROM feature_runs
WHERE (:feature_tag IS NULL OR feature_tag = :feature_tag)
  AND (:status IS NULL OR status = :status)
  AND (:product_tag IS NULL OR product_tag = :product_tag)
  AND (:env IS NULL OR env = :env)
  AND (created_at, id) < (:after_at, :after_id)
ORDER BY created_at DESC, id DESC LIMIT :limit OFFSET :offset;

-- name: list_feature_runs_of_feature
-- list_feature_runs for one feature: a plain equality, so the (feature_tag, created_at, id) index applies.
SELECT * FROM feature_runs
WHERE feature_tag = :feature_tag
  AND (:status IS NULL OR status = :status)
  AND (:product_tag IS NULL OR product_tag = :product_tag)
  AND (:env IS NULL OR env = :env)
  AND (created_at, id) < (:after_at, :after_id)
ORDER BY created_at DESC, id DESC LIMIT :limit OFFSET :offset;

-- name: feature_schedule
SELECT * FROM schedules WHERE feature_key = :key;

-- name: orphaned_feature_runs
-- Direct feature runs (not a FEATURE job run's, not a child feature's) whose driver stopped renewing its lease.
SELECT id FROM feature_runs
WHERE status = 'running' AND lease_expires_at < :now
  AND lease_owner NOT LIKE 'job-run:%' AND instr(id, '/') = 0
ORDER BY lease_expires_at LIMIT :limit;

-- name: set_feature_key
UPDATE schedules SET feature_key = :feature_key WHERE id = :id;
