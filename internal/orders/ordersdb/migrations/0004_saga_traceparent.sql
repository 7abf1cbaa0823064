-- The saga keeps the W3C traceparent of the checkout that placed its order
-- (the span that wrote the order), so recover-orders can link the span of a
-- resumed order to the checkout's trace: the timeline's trace_id alone names
-- the trace but no span, and a span link needs both. Sagas written before
-- this migration, or outside any trace, keep '' (recovery links nothing).
-- The CHECK is added NOT VALID: a column added with a CHECK makes PostgreSQL
-- read every existing row under the ACCESS EXCLUSIVE lock (order_sagas keeps
-- a row per order ever placed), blocking every checkout meanwhile; NOT VALID
-- checks new and updated rows only, and the existing rows all hold ''.
ALTER TABLE order_sagas ADD COLUMN traceparent text NOT NULL DEFAULT '';
ALTER TABLE order_sagas ADD CONSTRAINT order_sagas_traceparent_valid
	CHECK (traceparent ~ '^(00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2})?$') NOT VALID;
