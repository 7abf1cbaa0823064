-- When the mail server refused a notification's email for good (an SMTP 5xx
-- to the recipient or the message, or an address that cannot be sent to),
-- notify-user records it here and never tries to send that email again: a
-- redelivery of its event answers 200 instead of 503, so an address the
-- server will never take does not send every notification of its account to
-- the dead letters. NULL while the email is owed, sent, or never tried.
ALTER TABLE notifications ADD COLUMN email_refused_at timestamptz;
