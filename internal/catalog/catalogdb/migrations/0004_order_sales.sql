-- Which orders' sales are counted in sold_count, so order.placed.v1 and
-- order.cancelled.v1 of one order apply exactly once each and in the right
-- sense even when delivered in the wrong order: a cancellation that arrives
-- first is remembered ('cancelled_first') and the late placement ignored.
CREATE TABLE order_sales (
	order_id   uuid PRIMARY KEY,
	state      text NOT NULL CONSTRAINT order_sales_state_known
	           CHECK (state IN ('placed', 'cancelled', 'cancelled_first')),
	updated_at timestamptz NOT NULL DEFAULT now()
);
