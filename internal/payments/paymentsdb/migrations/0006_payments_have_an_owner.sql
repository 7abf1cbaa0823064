-- A payment belongs to the user of its order: get-payment answers its owner
-- (and admins) only. A row with user_id zero belongs to nobody, and its
-- owner is answered 404. Until 2026-12-08 a refund of a capture whose
-- recording was lost, with no customer at the processor (a simulator ledger
-- entry older than migration 0002), recorded such a row; Service now refuses
-- that refund instead (docs/checkout.md, "A lost capture without its
-- customer"). NOT VALID: the constraint holds every row written from now on
-- without scanning the table under its lock; a row already written so is
-- left for an operator to give its order's user (the same section).
-- Written to run again over a database that has it (paymentsenv's test runs
-- the newest migration in a transaction again).
DO $$
BEGIN
	IF NOT EXISTS (SELECT FROM pg_constraint
			WHERE conname = 'payments_user_id_known' AND conrelid = 'payments'::regclass) THEN
		ALTER TABLE payments ADD CONSTRAINT payments_user_id_known
			CHECK (user_id <> '00000000-0000-0000-0000-000000000000') NOT VALID;
	END IF;
END
$$;
