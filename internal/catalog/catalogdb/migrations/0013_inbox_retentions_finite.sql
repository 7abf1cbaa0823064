-- The consumers' recorded retentions are finite (internal/inbox.RetentionFiniteSchema,
-- verbatim; docs/events.md): the CHECK (... > 0) of the table and of the
-- raise's column accepted 'NaN' and 'Infinity', which no build writes but a
-- hand-written row may. Such a row is rewritten first to what it meant: a
-- retention of 'NaN' or 'Infinity', which the outbox relay reads as for ever,
-- to 1e10 seconds (317 years), which it reads as for ever too; a previous
-- window of either to NULL, which leaves the consumer's window its retention,
-- as it was. No grant changes: shop_relay's SELECT on the table stays.
UPDATE inbox_retentions SET retention_seconds = 1e10
	WHERE NOT (retention_seconds < 'Infinity');
UPDATE inbox_retentions SET previous_retention_seconds = NULL
	WHERE NOT (previous_retention_seconds < 'Infinity');
ALTER TABLE inbox_retentions
	DROP CONSTRAINT IF EXISTS inbox_retentions_retention_seconds_finite,
	ADD CONSTRAINT inbox_retentions_retention_seconds_finite CHECK (retention_seconds < 'Infinity'),
	DROP CONSTRAINT IF EXISTS inbox_retentions_previous_retention_seconds_finite,
	ADD CONSTRAINT inbox_retentions_previous_retention_seconds_finite CHECK (previous_retention_seconds < 'Infinity');
