-- ductape-jobs schema, version 13 (SQLite): nothing. On PostgreSQL this version makes the outbox's triggers exist
-- only while some webhook does; SQLite's triggers (version 11) stay, as their cost there is small (a trigger
-- program in the writer's own process, no round trip).
SELECT 1;
