-- Payments: one row per order (order_id is unique), inserted 'pending' BEFORE
-- the processor is called, so the processor is charged at most once per order.
-- A charge in flight holds a lease (claim_id, claim_until); a lease that ran out
-- belongs to a crashed attempt, whose outcome the next attempt asks the
-- processor for by idempotency key before charging. No card token or card data
-- is ever stored: only status, amount, the processor's references, order and user.
CREATE TABLE payments (
	id           uuid PRIMARY KEY,
	order_id     uuid NOT NULL CONSTRAINT payments_order_id_key UNIQUE,
	user_id      uuid NOT NULL,
	status       text NOT NULL CONSTRAINT payments_status_known
	             CHECK (status IN ('pending', 'captured', 'declined', 'refunded')),
	amount       bigint NOT NULL CONSTRAINT payments_amount_positive CHECK (amount > 0),
	currency     text NOT NULL CONSTRAINT payments_currency_iso CHECK (currency ~ '^[A-Z]{3}$'),
	provider_ref text NOT NULL DEFAULT '',
	decline_code text NOT NULL DEFAULT '',
	refund_ref   text NOT NULL DEFAULT '',
	attempts     integer NOT NULL DEFAULT 0,
	claim_id     uuid,
	claim_until  timestamptz,
	created_at   timestamptz NOT NULL DEFAULT now(),
	updated_at   timestamptz NOT NULL DEFAULT now()
);

-- A payment's status only moves forward: pending -> captured | declined,
-- captured -> refunded. Whatever the code does, the database refuses the rest.
CREATE FUNCTION payments_status_forward() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	IF NEW.status IS DISTINCT FROM OLD.status AND NOT (
		(OLD.status = 'pending' AND NEW.status IN ('captured', 'declined')) OR
		(OLD.status = 'captured' AND NEW.status = 'refunded')) THEN
		RAISE EXCEPTION 'payment status may not move from % to %', OLD.status, NEW.status
			USING ERRCODE = 'check_violation';
	END IF;
	RETURN NEW;
END $$;

CREATE TRIGGER payments_status_forward BEFORE UPDATE OF status ON payments
	FOR EACH ROW EXECUTE FUNCTION payments_status_forward();

-- The built-in card processor simulator's own ledger (internal/payments/simulator).
-- It stands for the processor's side of the world and is NOT our record of
-- payments: it lives here only so that its idempotency survives a crash of the
-- charge-payment process, as a real processor's would. A real processor
-- replaces it entirely.
CREATE TABLE processor_sim_entries (
	idempotency_key text PRIMARY KEY,
	kind            text NOT NULL CHECK (kind IN ('charge', 'refund')),
	outcome         text NOT NULL CHECK (outcome IN ('captured', 'declined', 'refunded')),
	reference       text NOT NULL UNIQUE,
	decline_code    text NOT NULL DEFAULT '',
	charge_ref      text NOT NULL DEFAULT '',
	amount          bigint NOT NULL,
	currency        text NOT NULL,
	created_at      timestamptz NOT NULL DEFAULT now()
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
