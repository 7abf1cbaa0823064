-- migrate: no transaction
-- recover-orders' claim reads the sagas that still owe a cart removal through
-- this index (they are few: a removal is owed only between a cart order's
-- confirmation and the removal right after it), not every saga ever written.
-- Built concurrently, outside a transaction (postgres.NoTransaction), so that
-- checkouts go on while it builds.
CREATE INDEX CONCURRENTLY IF NOT EXISTS order_sagas_cart_owed ON order_sagas (lease_until) WHERE cart_owed;
