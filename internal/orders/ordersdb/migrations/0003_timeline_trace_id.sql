-- Every timeline entry names the trace it was written in (the W3C trace id,
-- 32 lower-case hex digits), so support can go from a stuck order's timeline
-- to its trace in Jaeger and to the log lines carrying the same trace_id.
-- Entries written before this migration, or outside any trace, keep ''.
ALTER TABLE order_events
	ADD COLUMN trace_id text NOT NULL DEFAULT ''
	CONSTRAINT order_events_trace_id_valid CHECK (trace_id ~ '^([0-9a-f]{32})?$');
