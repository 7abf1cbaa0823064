-- migrate: no transaction
-- The relay's cleanup deletes the settled sales (cancelled, or cancelled
-- before they were placed) older than the inbox retention (PruneOrderSales):
-- until then every checkout refused at once (out of stock, rejected) left a
-- cancelled_first row for ever. This index holds only those rows, so the
-- cleanup reads what it deletes and never the placed sales, which stay: a
-- placed order can be cancelled at any time, and its cancellation must find
-- its sale to subtract it. Built concurrently, outside a transaction
-- (postgres.NoTransaction), as 0006 is, so the consumers go on meanwhile.
CREATE INDEX CONCURRENTLY IF NOT EXISTS order_sales_settled_at ON order_sales (updated_at) WHERE state <> 'placed';
