-- Notifications of the users service (internal/notifications/notificationsdb),
-- one per event, and the events its consumer (notify-user) has processed.
CREATE TABLE notifications (
	id         uuid PRIMARY KEY,
	user_id    uuid NOT NULL,
	event_id   uuid NOT NULL UNIQUE,
	type       text NOT NULL CHECK (char_length(type) BETWEEN 1 AND 64),
	subject    text NOT NULL CHECK (char_length(subject) BETWEEN 1 AND 200),
	order_id   uuid,
	created_at timestamptz NOT NULL DEFAULT now(),
	emailed_at timestamptz
);
CREATE INDEX notifications_by_user ON notifications (user_id, id DESC);

-- internal/inbox.Schema, verbatim.
CREATE TABLE IF NOT EXISTS processed_events (
	event_id     uuid NOT NULL,
	consumer     text NOT NULL CHECK (consumer <> ''),
	processed_at timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (event_id, consumer)
);
