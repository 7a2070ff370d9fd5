-- ductape-jobs schema, version 9: the W3C trace context (a JSON object of traceparent/tracestate, and whether a
-- run is the trace's child or links to it) that was current when schedule() was called, kept with the schedule
-- and copied to each of its runs, so that a worker in any process continues or links to that trace
-- (tracing.py). NULL when tracing is off: nothing is captured, nothing is stored.
-- (Versions 10 and 11 are other changes'.)

ALTER TABLE schedules ADD COLUMN trace_context TEXT;
ALTER TABLE runs ADD COLUMN trace_context TEXT;
