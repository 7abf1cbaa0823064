-- Inventory: one stock row per product that has ever been stocked.
-- The CHECKs make negative or oversold stock impossible whatever the code does:
-- available = on_hand - reserved is never below zero. Reservations (rows keyed
-- by order, with an expiry) arrive in a later migration and move units between
-- on_hand and reserved with conditional UPDATEs on this table.
CREATE TABLE stock (
	product_id uuid PRIMARY KEY,
	on_hand    integer NOT NULL CONSTRAINT stock_on_hand_nonnegative CHECK (on_hand >= 0),
	reserved   integer NOT NULL DEFAULT 0 CONSTRAINT stock_reserved_nonnegative CHECK (reserved >= 0),
	updated_at timestamptz NOT NULL DEFAULT now(),
	CONSTRAINT stock_reserved_within_on_hand CHECK (reserved <= on_hand)
);

-- The transactional outbox (internal/outbox.Schema, verbatim).
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
