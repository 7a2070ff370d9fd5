-- ductape-jobs schema, version 4 (PostgreSQL): what an API key may do, and the dashboard's login sessions.
-- Keys stored before scopes existed could do everything: they become 'admin', so nothing breaks.

ALTER TABLE api_keys ADD COLUMN scope TEXT NOT NULL DEFAULT 'admin' CHECK (scope IN ('read', 'write', 'admin'));

CREATE TABLE login_sessions (
    token_hash TEXT PRIMARY KEY,         -- SHA-256 of the cookie's random token; the token itself is never stored
    key_id     TEXT NOT NULL,            -- the API key the session acts for (its scope, limits and revocation)
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX login_sessions_key ON login_sessions (key_id);
CREATE INDEX login_sessions_expiry ON login_sessions (expires_at);
