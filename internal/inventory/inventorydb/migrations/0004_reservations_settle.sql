-- The sweep (expire-reservations) settles held holds in the order they were
-- taken: it reads the holds older than the settle delay through this index,
-- page by page ((created_at, order_id) after the last one read), asks the
-- orders service their orders' statuses, and sells, gives back or keeps each
-- one. A hold is no longer given back blindly at its expiry (a pending order's
-- hold may still be confirmed), so the expiry index has no reader left.
CREATE INDEX reservations_held_created ON reservations (created_at, order_id) WHERE status = 'held';
DROP INDEX reservations_held_expiry;
