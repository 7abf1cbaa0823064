-- The outbox relay logs in as a role of its own, shop_relay
-- (env/faasd/postgres-init/10-shop.sh), not as this service's, which owns
-- these tables: it may read the outbox, mark its rows published and delete
-- the old rows of the tables it prunes, and touch no other table
-- (docs/security.md, "Database roles"). The role exists where 10-shop.sh (or
-- docs/deploy-faasd.md's upgrade) created it; on a developer machine, where
-- every process logs in as postgres, there is nothing to grant. A database
-- migrated before the role existed gets the same grants from the upgrade's
-- SQL.
DO $$
BEGIN
	IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'shop_relay') THEN
		GRANT SELECT, DELETE, UPDATE (published_at) ON outbox TO shop_relay;
		GRANT SELECT, DELETE ON processed_events TO shop_relay;
		GRANT SELECT, DELETE ON notifications TO shop_relay;
	END IF;
END
$$;
