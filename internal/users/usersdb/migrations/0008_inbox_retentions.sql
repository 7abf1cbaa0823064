-- The inbox retention the users database's consumer (notify-user) runs
-- with, recorded as it is built, so that the outbox relay prunes the
-- processed events (and keeps the notifications) for the longest of it and
-- its own (internal/inbox.RetentionSchema, verbatim; docs/events.md).
CREATE TABLE IF NOT EXISTS inbox_retentions (
	consumer          text PRIMARY KEY CHECK (consumer <> ''),
	retention_seconds double precision NOT NULL CHECK (retention_seconds > 0),
	recorded_at       timestamptz NOT NULL DEFAULT now()
);

-- The outbox relay (shop_relay, 0006) reads them, and writes nothing there.
-- The role exists where 10-shop.sh created it; on a developer machine there
-- is nothing to grant. A database migrated before the role existed gets the
-- same grant from env/faasd/postgres-upgrade/split-roles.sh.
DO $$
BEGIN
	IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'shop_relay') THEN
		GRANT SELECT ON inbox_retentions TO shop_relay;
	END IF;
END
$$;
