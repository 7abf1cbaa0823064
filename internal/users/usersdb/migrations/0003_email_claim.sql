-- A delivery that is about to send a notification's email claims it for a
-- while, so two concurrent deliveries of one event never both send it.
ALTER TABLE notifications ADD COLUMN email_claimed_until timestamptz;
