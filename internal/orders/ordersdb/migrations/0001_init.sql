-- Orders: one row per checkout. Status only moves forward along the saga
-- (pending -> confirmed | payment_failed | cancelled, confirmed -> cancelled);
-- the store checks the move under SELECT ... FOR UPDATE, the CHECKs keep
-- impossible values out whatever the code does.
CREATE TABLE orders (
	id               uuid PRIMARY KEY,
	user_id          uuid NOT NULL,
	status           text NOT NULL CONSTRAINT orders_status_valid
	                 CHECK (status IN ('pending', 'confirmed', 'payment_failed', 'cancelled')),
	reason           text NOT NULL DEFAULT '',
	total_amount     bigint NOT NULL CONSTRAINT orders_total_nonnegative CHECK (total_amount >= 0),
	currency         char(3) NOT NULL,
	shipping_address jsonb NOT NULL,
	created_at       timestamptz NOT NULL,
	updated_at       timestamptz NOT NULL
);
CREATE INDEX orders_by_user ON orders (user_id, id DESC);

-- Lines with the catalog's unit price at checkout.
CREATE TABLE order_items (
	order_id    uuid NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
	position    integer NOT NULL,
	product_id  uuid NOT NULL,
	quantity    integer NOT NULL CONSTRAINT order_items_quantity_range CHECK (quantity BETWEEN 1 AND 1000),
	unit_amount bigint NOT NULL CONSTRAINT order_items_price_nonnegative CHECK (unit_amount >= 0),
	PRIMARY KEY (order_id, product_id),
	UNIQUE (order_id, position)
);

-- The timeline: every saga step and event, append-only.
CREATE TABLE order_events (
	seq      bigserial PRIMARY KEY,
	order_id uuid NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
	at       timestamptz NOT NULL DEFAULT clock_timestamp(),
	step     text NOT NULL,
	outcome  text NOT NULL,
	detail   text NOT NULL DEFAULT ''
);
CREATE INDEX order_events_by_order ON order_events (order_id, seq);

-- Saga state: what a driver (the request, or recover-orders) needs to resume.
-- payment_token is kept only while the order is pending and cleared when the
-- saga ends. lease_until is the driver's lease: recover-orders takes only
-- orders whose lease has run out, so two drivers never run one saga at once.
-- compensation is 'pending' while a release/refund is still owed.
CREATE TABLE order_sagas (
	order_id      uuid PRIMARY KEY REFERENCES orders (id) ON DELETE CASCADE,
	payment_token text,
	from_cart     boolean NOT NULL DEFAULT false,
	compensation  text NOT NULL DEFAULT '' CONSTRAINT order_sagas_compensation_valid
	              CHECK (compensation IN ('', 'pending', 'done')),
	attempts      integer NOT NULL DEFAULT 0,
	lease_until   timestamptz NOT NULL,
	updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX order_sagas_open ON order_sagas (lease_until) WHERE payment_token IS NOT NULL OR compensation = 'pending';

-- Idempotency keys (Stripe semantics), scoped per user. A row without
-- response_status is in progress; request_hash tells a replay from a reuse.
CREATE TABLE idempotency_keys (
	user_id         uuid NOT NULL,
	key             text NOT NULL,
	request_hash    text NOT NULL,
	order_id        uuid REFERENCES orders (id) ON DELETE SET NULL,
	response_status integer,
	response_body   bytea,
	created_at      timestamptz NOT NULL DEFAULT now(),
	expires_at      timestamptz NOT NULL,
	PRIMARY KEY (user_id, key)
);
CREATE INDEX idempotency_keys_by_order ON idempotency_keys (order_id) WHERE order_id IS NOT NULL;
CREATE INDEX idempotency_keys_expiry ON idempotency_keys (expires_at);

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
