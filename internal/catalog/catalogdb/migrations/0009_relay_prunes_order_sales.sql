-- The outbox relay (shop_relay, 0007) deletes the settled sales past the
-- inbox retention (PruneOrderSales), as it does the processed-event records,
-- and reads them to find them; it writes nothing else in order_sales. The
-- role exists where 10-shop.sh created it; on a developer machine there is
-- nothing to grant. A database migrated before the role existed gets the
-- same grant from env/faasd/postgres-upgrade/split-roles.sh.
DO $$
BEGIN
	IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'shop_relay') THEN
		GRANT SELECT, DELETE ON order_sales TO shop_relay;
	END IF;
END
$$;
