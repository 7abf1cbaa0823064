-- migrate: no transaction
-- The relay's cleanup deletes the processed-event records older than the
-- inbox retention (30 days by default) every ten minutes. With no index on
-- processed_at it read every record to find them; with this one it reads the
-- records it deletes (internal/inbox.PruneIndex, verbatim; docs/performance.md,
-- item 35). It is built concurrently, outside a transaction
-- (postgres.NoTransaction), so that the consumers' claims go on while it builds
-- on a table that already holds many records; a build that failed leaves an
-- invalid index, which the next start drops and builds again.
CREATE INDEX CONCURRENTLY IF NOT EXISTS processed_events_processed_at ON processed_events (processed_at);
