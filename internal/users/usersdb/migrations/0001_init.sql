-- The users service's accounts. Emails are stored normalised (trimmed,
-- lower-cased by the domain) and are unique case-insensitively.
CREATE TABLE users (
	id            uuid PRIMARY KEY,
	email         text NOT NULL CHECK (char_length(email) BETWEEN 3 AND 254),
	name          text NOT NULL CHECK (char_length(name) BETWEEN 1 AND 100),
	role          text NOT NULL DEFAULT 'customer' CHECK (role IN ('customer', 'admin')),
	password_hash text NOT NULL CHECK (password_hash LIKE '$argon2id$%'),
	created_at    timestamptz NOT NULL DEFAULT now(),
	updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX users_email_key ON users (lower(email));

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
