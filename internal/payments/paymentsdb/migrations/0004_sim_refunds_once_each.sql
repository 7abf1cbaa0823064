-- Migration 0005 keeps the simulator's ledger to one refund per charge with a
-- unique index, built concurrently. A ledger that already holds two refunds
-- of one charge (the simulator before 2026-12-07 paid a refund of a charge
-- already refunded under another key; the shop's own refunds use one key per
-- order, so such a second refund was made outside it, by hand or by a test)
-- cannot have that index: its build would fail on every start with
-- PostgreSQL's "could not create unique index", leaving the payments
-- functions down without a word on what to do. This file refuses such a
-- ledger first, naming its charges and the way out: keep each charge's first
-- refund and delete the others (docs/checkout.md, "A charge refunded by
-- hand"), then start again. The ledger stands for the processor's records,
-- which the shop does not rewrite on its own.
DO $$
DECLARE
	twice text[];
BEGIN
	SELECT array_agg(charge_ref ORDER BY charge_ref) INTO twice FROM (
		SELECT charge_ref FROM processor_sim_entries WHERE kind = 'refund'
		GROUP BY charge_ref HAVING count(*) > 1) AS refunded;
	IF twice IS NOT NULL THEN
		RAISE EXCEPTION 'the payment simulator''s ledger (processor_sim_entries) holds % charge(s) refunded more than once (%): migration 0005''s one-refund-per-charge index cannot be built over it; keep each charge''s first refund, delete the others (docs/checkout.md, "A charge refunded by hand") and start again',
			cardinality(twice), array_to_string(twice[1:5], ', ') || CASE WHEN cardinality(twice) > 5 THEN ', …' ELSE '' END
			USING HINT = 'DELETE FROM processor_sim_entries e WHERE kind = ''refund'' AND EXISTS (SELECT 1 FROM '
				'processor_sim_entries f WHERE f.kind = ''refund'' AND f.charge_ref = e.charge_ref AND '
				'(f.created_at, f.idempotency_key) < (e.created_at, e.idempotency_key))';
	END IF;
END
$$;
