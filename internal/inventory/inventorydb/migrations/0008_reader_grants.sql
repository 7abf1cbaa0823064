-- The public reader get-stock logs in as a role of its own,
-- shop_inventory_reader (env/faasd/postgres-init/10-shop.sh, secret
-- db-password-inventory-reader), not as this service's, which owns these
-- tables: it may read the stock levels, and schema_migrations, where a
-- reader checks that the database is migrated as far as its binary knows
-- (it never migrates). Nothing else: no write, no reservation, no outbox
-- (docs/security.md, "Database roles"). A table added by a later migration
-- is not granted by this one: that migration grants it, if the reader reads
-- it. The role exists where 10-shop.sh (or
-- env/faasd/postgres-upgrade/split-roles.sh) created it; on a developer
-- machine, where every process logs in as postgres, there is nothing to
-- grant. A database migrated before the role existed gets the same grants
-- from split-roles.sh, which lists these tables again (its `inventory)
-- tables="…"` line, for a restore with --no-privileges too): a migration
-- that grants this role another table adds it there as well
-- (dev/deploycheck TestSplitRolesGrantsTheReadersWhatTheMigrationsGrant
-- compares the two).
DO $$
BEGIN
	IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'shop_inventory_reader') THEN
		GRANT SELECT ON stock, schema_migrations TO shop_inventory_reader;
	END IF;
END
$$;
