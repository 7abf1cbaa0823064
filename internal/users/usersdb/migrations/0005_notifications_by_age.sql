-- migrate: no transaction
-- The relay's cleanup deletes the notifications created before the
-- notification retention (NOTIFICATION_RETENTION, 90 days by default) every
-- ten minutes (internal/notifications/notificationsdb.Prune). With this index
-- it reads the notifications it deletes, oldest first, not the ones it keeps.
-- It is built concurrently, outside a transaction (postgres.NoTransaction),
-- so that notify-user's writes go on while it builds on a table that already
-- holds every notification ever written; a build that failed leaves an
-- invalid index, which the next start drops and builds again.
CREATE INDEX CONCURRENTLY IF NOT EXISTS notifications_created_at ON notifications (created_at);
