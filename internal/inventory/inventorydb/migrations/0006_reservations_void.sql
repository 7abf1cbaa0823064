-- A release of an order that reserved nothing stores a 'void' reservation
-- (inventorydb.Store.Release): a first reservation try still on its way when
-- the order's checkout ended is then refused when it lands, instead of
-- holding its units for nobody until the sweep. The CHECK is replaced NOT
-- VALID: validating it would read every reservation (a row per order) under
-- the ACCESS EXCLUSIVE lock, and every existing row holds a status the old
-- CHECK allowed, which the new one allows too.
ALTER TABLE reservations DROP CONSTRAINT reservations_status_known;
ALTER TABLE reservations ADD CONSTRAINT reservations_status_known
	CHECK (status IN ('held', 'committed', 'released', 'expired', 'restocked', 'void')) NOT VALID;
