-- ductape-jobs schema, version 2 (PostgreSQL): API keys, webhooks and their deliveries, and an index for the
-- API's statistics. The same tables and columns as the SQLite store; times are BIGINT milliseconds since the
-- Unix epoch (UTC), JSON values are TEXT.

CREATE TABLE api_keys (
    id           TEXT PRIMARY KEY,
    name         TEXT NOT NULL,
    prefix       TEXT NOT NULL UNIQUE,   -- the visible start of the key, to find it
    hash         TEXT NOT NULL,          -- salted hash of the whole key; the key itself is never stored
    product_tag  TEXT,                   -- NULL: every product
    env          TEXT,                   -- NULL: every env
    created_at   BIGINT NOT NULL,
    last_used_at BIGINT,
    revoked_at   BIGINT
);

CREATE TABLE webhooks (
    id          TEXT PRIMARY KEY,
    product_tag TEXT NOT NULL,
    url         TEXT NOT NULL,
    events      TEXT NOT NULL,           -- JSON array of event names
    secret      TEXT NOT NULL,           -- signs deliveries; never shown again after creation
    created_at  BIGINT NOT NULL
);

CREATE TABLE webhook_deliveries (
    id              TEXT PRIMARY KEY,
    webhook_id      TEXT NOT NULL,
    event           TEXT NOT NULL,
    payload         TEXT NOT NULL,       -- the JSON body as sent
    status          TEXT NOT NULL,       -- pending, delivered, failed
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at BIGINT,
    last_error      TEXT,
    created_at      BIGINT NOT NULL,
    delivered_at    BIGINT
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_webhook ON webhook_deliveries (webhook_id, created_at);

-- Runs that ended, by their end: runs per minute and lateness over the last hour without a full scan.
CREATE INDEX runs_ended ON runs (completed_at) WHERE completed_at IS NOT NULL;
