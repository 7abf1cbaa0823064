-- Reservations: an order holds stock while its payment is taken. One header row
-- per order carries the status and the expiry (every line of an order moves
-- together, in one transaction); lines are keyed by (order_id, product_id).
-- A held line is counted in stock.reserved; a committed line has left on_hand.
CREATE TABLE reservations (
	order_id   uuid PRIMARY KEY,
	status     text NOT NULL CONSTRAINT reservations_status_known
	           CHECK (status IN ('held', 'committed', 'released', 'expired', 'restocked')),
	expires_at timestamptz NOT NULL,
	created_at timestamptz NOT NULL DEFAULT now(),
	updated_at timestamptz NOT NULL DEFAULT now()
);

-- The sweep finds due holds through this index only.
CREATE INDEX reservations_held_expiry ON reservations (expires_at) WHERE status = 'held';

CREATE TABLE reservation_lines (
	order_id   uuid NOT NULL REFERENCES reservations (order_id) ON DELETE CASCADE,
	product_id uuid NOT NULL REFERENCES stock (product_id),
	quantity   integer NOT NULL CONSTRAINT reservation_lines_quantity_range CHECK (quantity BETWEEN 1 AND 1000),
	PRIMARY KEY (order_id, product_id)
);
