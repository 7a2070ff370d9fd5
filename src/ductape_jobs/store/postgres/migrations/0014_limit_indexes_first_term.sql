-- ductape-jobs schema, version 14 (PostgreSQL): nothing. On SQLite this version reorders the terms of the partial
-- indexes of runs under a limit (their WHERE is evaluated on every change of a run's phase there, term by term).
SELECT 1;
