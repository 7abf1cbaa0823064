-- The catalog service database: products, the embedded search index
-- (search_documents, read by internal/search/pgsearch) and the outbox.
CREATE EXTENSION IF NOT EXISTS pg_trgm;

CREATE TABLE products (
    id             uuid PRIMARY KEY,
    sku            text NOT NULL CONSTRAINT products_sku_key UNIQUE,
    name           text NOT NULL CHECK (char_length(name) BETWEEN 1 AND 200),
    description    text NOT NULL DEFAULT '' CHECK (char_length(description) <= 5000),
    category       text NOT NULL,
    price_amount   bigint NOT NULL CHECK (price_amount BETWEEN 1 AND 100000000),
    price_currency char(3) NOT NULL,
    sold_count     bigint NOT NULL DEFAULT 0 CHECK (sold_count >= 0),
    in_stock       boolean NOT NULL DEFAULT false,
    archived       boolean NOT NULL DEFAULT false,
    version        bigint NOT NULL DEFAULT 1 CHECK (version >= 1),
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now()
);
-- Listing: live products newest first (UUIDv7 ids grow with time), by category.
CREATE INDEX products_live ON products (id DESC) WHERE NOT archived;
CREATE INDEX products_live_category ON products (category, id DESC) WHERE NOT archived;

-- One row per searchable (live) product; written in the same transaction as
-- the product. tsv serves full-text matching and ranking; words serves
-- pg_trgm typo tolerance.
CREATE TABLE search_documents (
    id             uuid PRIMARY KEY,
    sku            text NOT NULL,
    name           text NOT NULL,
    description    text NOT NULL,
    category       text NOT NULL,
    price_amount   bigint NOT NULL,
    price_currency char(3) NOT NULL,
    sold_count     bigint NOT NULL DEFAULT 0,
    in_stock       boolean NOT NULL DEFAULT false,
    tsv            tsvector GENERATED ALWAYS AS (
        setweight(to_tsvector('english'::regconfig, name), 'A') ||
        setweight(to_tsvector('english'::regconfig, replace(category, '-', ' ')), 'B') ||
        setweight(to_tsvector('simple'::regconfig, sku), 'B') ||
        setweight(to_tsvector('english'::regconfig, description), 'C')) STORED,
    words          text GENERATED ALWAYS AS (
        lower(name || ' ' || replace(category, '-', ' ') || ' ' || sku)) STORED
);
CREATE INDEX search_documents_tsv ON search_documents USING gin (tsv);
CREATE INDEX search_documents_words ON search_documents USING gin (words gin_trgm_ops);
CREATE INDEX search_documents_category ON search_documents (category);

CREATE TABLE IF NOT EXISTS outbox (
	seq            bigserial PRIMARY KEY,
	id             uuid NOT NULL UNIQUE,
	type           text NOT NULL,
	source         text NOT NULL,
	subject        text NOT NULL DEFAULT '',
	envelope       jsonb NOT NULL,
	transaction_id xid8 NOT NULL DEFAULT pg_current_xact_id(),
	created_at     timestamptz NOT NULL DEFAULT now(),
	published_at   timestamptz
);
CREATE INDEX IF NOT EXISTS outbox_pending ON outbox (transaction_id, seq) WHERE published_at IS NULL;
