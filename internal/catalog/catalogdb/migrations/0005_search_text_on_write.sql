-- The search document's text columns (tsv, words) were generated columns.
-- PostgreSQL computes every stored generated column again on every UPDATE of
-- its row, whatever the UPDATE changes, so each sale (sold_count) and each
-- in-stock flip ran to_tsvector over the name, category, sku and description
-- (a sale's transaction in update-product-stats took 0.39 ms of its
-- backend's CPU with them and 0.32 ms without, for demo-catalog texts). They
-- are plain columns now: pgsearch's upsert writes them with the same
-- expressions, and only when the text they are made of changes. The stored
-- values stay as they are.
ALTER TABLE search_documents ALTER COLUMN tsv DROP EXPRESSION, ALTER COLUMN words DROP EXPRESSION;
