-- An idempotency key remembers the checkout it was answered with as data —
-- the order's status, reason and updated_at at that moment, and the detail of
-- the change that ended the checkout — instead of rendered HTTP bytes.
-- create-order renders a replay from them and the order's lines (which never
-- change) into exactly the bytes of the first answer. A row without
-- settled_status is still in progress.
ALTER TABLE idempotency_keys
	ADD COLUMN settled_status text CONSTRAINT idempotency_keys_settled_status_valid
	           CHECK (settled_status IN ('confirmed', 'payment_failed', 'cancelled')),
	ADD COLUMN settled_reason text,
	ADD COLUMN settled_detail text,
	ADD COLUMN settled_at     timestamptz,
	ADD CONSTRAINT idempotency_keys_settled_whole CHECK (
		(settled_status IS NULL) = (settled_reason IS NULL) AND
		(settled_status IS NULL) = (settled_detail IS NULL) AND
		(settled_status IS NULL) = (settled_at IS NULL));

-- Answers stored by the earlier version: a 201 body is the order as it was
-- answered (a confirmed order's answer shows no detail); a problem answered
-- an order that failed for good, whose status and reason never change again.
WITH legacy AS (
	SELECT k.user_id, k.key, k.response_status, convert_from(k.response_body, 'UTF8')::jsonb AS body,
	       o.status, o.reason, o.updated_at
	FROM idempotency_keys k JOIN orders o ON o.id = k.order_id
	WHERE k.response_status IS NOT NULL)
UPDATE idempotency_keys k SET
	settled_status = CASE WHEN l.response_status = 201 THEN l.body->>'status' ELSE l.status END,
	settled_reason = CASE WHEN l.response_status = 201 THEN coalesce(l.body->>'reason', '') ELSE l.reason END,
	settled_detail = CASE WHEN l.response_status = 201 THEN '' ELSE coalesce(l.body->>'detail', '') END,
	settled_at     = CASE WHEN l.response_status = 201 THEN (l.body->>'updated_at')::timestamptz ELSE l.updated_at END
FROM legacy l
WHERE k.user_id = l.user_id AND k.key = l.key;

-- A stored answer whose order is gone cannot be replayed: its key is forgotten.
DELETE FROM idempotency_keys WHERE response_status IS NOT NULL AND settled_status IS NULL;

ALTER TABLE idempotency_keys DROP COLUMN response_status, DROP COLUMN response_body;
