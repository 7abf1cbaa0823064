-- A consumer whose INBOX_RETENTION is raised records the window it had and
-- when (internal/inbox.RetentionRaiseSchema, verbatim; docs/events.md): the
-- outbox relay pruned with the shorter one until then, so the consumer's
-- window grows from it with time instead of accepting at once events whose
-- records may be gone. shop_relay's SELECT on the table (0008) covers these
-- columns: no grant changes.
ALTER TABLE inbox_retentions
	ADD COLUMN IF NOT EXISTS previous_retention_seconds double precision CHECK (previous_retention_seconds > 0),
	ADD COLUMN IF NOT EXISTS raised_at timestamptz;
