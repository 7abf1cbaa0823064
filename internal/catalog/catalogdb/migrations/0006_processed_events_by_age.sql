-- The relay's cleanup deletes the processed-event records older than the
-- inbox retention (30 days by default) every ten minutes. With no index on
-- processed_at it read every record to find them; with this one it reads the
-- records it deletes (internal/inbox.PruneIndex, verbatim; docs/performance.md,
-- item 35). The index is built in the migration's transaction, which holds
-- back the consumers' claims while it builds: on a table of many millions of
-- records, build it first with CREATE INDEX CONCURRENTLY under this name.
CREATE INDEX IF NOT EXISTS processed_events_processed_at ON processed_events (processed_at);
