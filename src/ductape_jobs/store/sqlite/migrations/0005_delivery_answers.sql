-- ductape-jobs schema, version 5 (SQLite): what a webhook delivery's last attempt got back. (Version 4 is the
-- API keys' scopes and the dashboard's logins.)
-- last_status: the HTTP status answered (NULL: no answer, or not sent); last_duration_ms: how long it took.

ALTER TABLE webhook_deliveries ADD COLUMN last_status INTEGER;
ALTER TABLE webhook_deliveries ADD COLUMN last_duration_ms INTEGER;
