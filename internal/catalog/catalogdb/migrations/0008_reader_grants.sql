-- The public readers (get-product, list-products, search-products) log in as
-- a role of their own, shop_catalog_reader (env/faasd/postgres-init/10-shop.sh,
-- secret db-password-catalog-reader), not as this service's, which owns these
-- tables: they may read the products and the embedded search index, and
-- schema_migrations, where a reader checks that the database is migrated as
-- far as its binary knows (it never migrates). Nothing else: no write, no
-- outbox, no inbox (docs/security.md, "Database roles"). A table added by a
-- later migration is not granted by this one: that migration grants it, if
-- the readers read it. The role exists where 10-shop.sh (or
-- env/faasd/postgres-upgrade/split-roles.sh) created it; on a developer
-- machine, where every process logs in as postgres, there is nothing to
-- grant. A database migrated before the role existed gets the same grants
-- from split-roles.sh, which lists these tables again (its `catalog)
-- tables="…"` line, for a restore with --no-privileges too): a migration
-- that grants this role another table adds it there as well
-- (dev/deploycheck TestSplitRolesGrantsTheReadersWhatTheMigrationsGrant
-- compares the two).
DO $$
BEGIN
	IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'shop_catalog_reader') THEN
		GRANT SELECT ON products, search_documents, schema_migrations TO shop_catalog_reader;
	END IF;
END
$$;
