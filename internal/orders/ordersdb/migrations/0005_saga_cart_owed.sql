-- A confirmed cart order owes the removal of its lines from the cart it was
-- ordered from: the confirmation's transaction sets cart_owed, the run that
-- took the lines out clears it (ordersdb.Store.RecordCartTaken), and
-- recover-orders claims an order that still owes it once its driver's lease
-- has run out, so a create-order that died between the confirmation's commit
-- and the removal no longer leaves the ordered lines in the cart. A column
-- with a constant default is added without rewriting the table.
ALTER TABLE order_sagas ADD COLUMN cart_owed boolean NOT NULL DEFAULT false;
