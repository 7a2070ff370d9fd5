-- ductape-jobs schema, version 15 (PostgreSQL): nothing. On SQLite this version makes the outbox's triggers exist
-- only while some webhook does, as version 13 did here.
SELECT 1;
