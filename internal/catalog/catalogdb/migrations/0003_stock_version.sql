-- The version of the last stock.changed.v1 applied to in_stock: an older
-- event arriving late is ignored.
ALTER TABLE products ADD COLUMN stock_version bigint NOT NULL DEFAULT 0;
