-- The events the catalog's consumers (update-product-stats, index-product)
-- have processed (internal/inbox.Schema, verbatim).
CREATE TABLE IF NOT EXISTS processed_events (
	event_id     uuid NOT NULL,
	consumer     text NOT NULL CHECK (consumer <> ''),
	processed_at timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (event_id, consumer)
);
