// Package notificationsdb stores notifications in the users database (its
// migrations are usersdb's: 0002_notifications.sql), each written in one
// transaction with its event's inbox claim, so a redelivered event never
// notifies twice.
package notificationsdb

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/shopfaas/shop/internal/fault"
	"github.com/shopfaas/shop/internal/inbox"
	"github.com/shopfaas/shop/internal/notifications"
	"github.com/shopfaas/shop/internal/postgres"
)

// Store reads and writes notifications. It is safe for concurrent use.
type Store struct {
	db *pgxpool.Pool
}

// New returns a store over the users database pool (usersdb.Migrations applied).
func New(pool *pgxpool.Pool) *Store { return &Store{db: pool} }

const columns = `id, user_id, event_id, type, subject, order_id, created_at, emailed_at, email_refused_at`

func scan(row pgx.Row) (notifications.Notification, error) {
	var n notifications.Notification
	err := row.Scan(&n.ID, &n.UserID, &n.EventID, &n.Type, &n.Subject, &n.OrderID, &n.CreatedAt, &n.EmailedAt, &n.EmailRefusedAt)
	return n, err
}

// Record stores n for its event (n.EventID), claimed by consumer in the same
// transaction. On the first delivery it returns n as stored and first=true;
// on a duplicate it stores nothing and returns the notification the first
// delivery stored (so a caller can finish an email still owed), first=false.
// A delivery whose claim is new but whose event has a notification already
// (its inbox record pruned, inbox.Prune, before a dead letter was replayed) is
// a duplicate too: its claim is committed, nothing else is stored, and it
// returns the stored notification with first=false. Failures are
// fault.Unavailable (retry later).
//
// Round trips (TestRecordRoundTrips, postgres.BatchTx): BEGIN, the claim, the
// insert and the read of the stored notification in one batch, then COMMIT:
// 2 (4 before, a round trip per statement). The insert does not wait for the
// claim's answer: on a duplicate it finds the first delivery's notification
// (event_id is unique) and inserts nothing, and the transaction is rolled
// back (committed when the claim was new).
func (s *Store) Record(ctx context.Context, consumer string, n notifications.Notification) (stored notifications.Notification, first bool, err error) {
	unavailable := func(err error) (notifications.Notification, bool, error) {
		return notifications.Notification{}, false, fault.Wrap(err, fault.Unavailable, fault.CodeUnavailable, "notifications are unavailable")
	}
	b := &pgx.Batch{}
	if err := inbox.QueueClaim(b, n.EventID, consumer, &first); err != nil {
		return unavailable(err)
	}
	var inserted bool
	b.Queue(`INSERT INTO notifications (id, user_id, event_id, type, subject, order_id, created_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (event_id) DO NOTHING`,
		n.ID, n.UserID, n.EventID, n.Type, n.Subject, n.OrderID, n.CreatedAt).Exec(func(tag pgconn.CommandTag) error {
		inserted = tag.RowsAffected() == 1
		return nil
	})
	b.Queue(`SELECT `+columns+` FROM notifications WHERE event_id = $1`, n.EventID).QueryRow(func(row pgx.Row) error {
		var err error
		stored, err = scan(row)
		return err
	})
	tx, br := postgres.BeginBatch(ctx, s.db, b)
	defer tx.Rollback(ctx)
	if err := br.Close(); err != nil {
		return unavailable(err)
	}
	if !first {
		return stored, false, nil // a duplicate: rolled back, nothing changed
	}
	// A first claim whose event has a notification already: a dead letter
	// replayed after the relay pruned its inbox record (the notification
	// outlives it, relay.Config.NotificationRetention). The claim is kept and
	// the delivery is a duplicate, whose caller sends the email if it is still
	// owed: refused, it went back to the dead letters on every replay and the
	// email was never sent.
	if err := tx.Commit(ctx, nil); err != nil {
		return unavailable(err)
	}
	return stored, inserted, nil
}

// ClaimEmail reserves the sending of notification id's email for lease: it
// reports false when the email already went out, was refused for good
// (MarkRefused), or another delivery holds an unexpired claim, so two concurrent deliveries never both send it. A claim
// whose sender died expires and can be taken again. On success it returns the
// claim (the lease's end as stored), which ReleaseEmail takes back. Failures
// are fault.Unavailable.
//
// An order's emails are claimed in turn, so they never go out at once, and
// so never backwards: it also reports false for the email of an order's
// placing while the email of the order's end (notifications.Ends) is claimed
// or once it went out, and for the email of an end while the placing's is
// claimed. The statement locks the order's notifications of the user (FOR
// UPDATE, in id order, the claimed one among them) before it decides, and
// reads them as locked: two claims asked for at once, each outside the
// other's snapshot, would otherwise both be taken. One round trip, as before.
func (s *Store) ClaimEmail(ctx context.Context, id uuid.UUID, lease time.Duration) (claim time.Time, ok bool, err error) {
	err = s.db.QueryRow(ctx, claimEmail, id, lease.Seconds(), notifications.TypeOrderPlaced, endTypes()).Scan(&claim)
	if errors.Is(err, pgx.ErrNoRows) {
		return time.Time{}, false, nil
	}
	if err != nil {
		return time.Time{}, false, fault.Wrap(err, fault.Unavailable, fault.CodeUnavailable, "notifications are unavailable")
	}
	return claim, true, nil
}

// claimEmail is ClaimEmail's statement: $1 the notification, $2 the lease in
// seconds, $3 the placing's type, $4 the ends' types. order_of locks the
// notifications of the claimed one's order and user (none for a welcome,
// whose order_id is NULL), read through notifications_by_user; a lock waited
// for returns the row as the other transaction committed it. An email is in
// flight while it is claimed, neither sent nor refused.
const claimEmail = `WITH me AS (
		SELECT user_id, order_id, type FROM notifications WHERE id = $1),
	order_of AS (
		SELECT n.id, n.type, n.emailed_at, n.email_refused_at, n.email_claimed_until
		FROM notifications n JOIN me ON n.user_id = me.user_id AND n.order_id = me.order_id
		ORDER BY n.id FOR UPDATE OF n)
	UPDATE notifications SET email_claimed_until = now() + make_interval(secs => $2)
	WHERE id = $1 AND emailed_at IS NULL AND email_refused_at IS NULL
		AND (email_claimed_until IS NULL OR email_claimed_until < now())
		AND NOT EXISTS (SELECT 1 FROM order_of o, me WHERE o.id <> $1 AND (
			(me.type = $3 AND o.type = ANY($4) AND (o.emailed_at IS NOT NULL
				OR (o.email_refused_at IS NULL AND o.email_claimed_until >= now())))
			OR (me.type = ANY($4) AND o.type = $3 AND o.emailed_at IS NULL AND o.email_refused_at IS NULL
				AND o.email_claimed_until >= now())))
	RETURNING email_claimed_until`

// ReleaseEmail gives up claim, taken by ClaimEmail, after a failed send, so a
// retry need not wait for the lease to expire. It releases only that claim: a
// sender whose lease ran out while it failed leaves alone the claim another
// delivery has taken since, which may be sending right now. Failures are
// fault.Unavailable.
func (s *Store) ReleaseEmail(ctx context.Context, id uuid.UUID, claim time.Time) error {
	if _, err := s.db.Exec(ctx, `UPDATE notifications SET email_claimed_until = NULL
		WHERE id = $1 AND emailed_at IS NULL AND email_claimed_until = $2`, id, claim); err != nil {
		return fault.Wrap(err, fault.Unavailable, fault.CodeUnavailable, "notifications are unavailable")
	}
	return nil
}

// MarkEmailed records that the email of notification id went out; doing it
// again changes nothing. Failures are fault.Unavailable.
func (s *Store) MarkEmailed(ctx context.Context, id uuid.UUID) error {
	_, err := s.db.Exec(ctx, `UPDATE notifications SET emailed_at = now() WHERE id = $1 AND emailed_at IS NULL`, id)
	if err != nil {
		return fault.Wrap(err, fault.Unavailable, fault.CodeUnavailable, "notifications are unavailable")
	}
	return nil
}

// MarkRefused records that the mail server refused the email of
// notification id for good (notifications.ErrUndeliverable) and gives up
// claim, taken by ClaimEmail: no delivery claims or sends it again. It
// records only while that claim is still held, as ReleaseEmail releases only
// its own: a sender whose lease ran out while it was refused leaves alone
// the claim another delivery has taken since, which may be sending right now
// (and may get another answer). It answers from the stored state: true when
// it recorded the refusal; false when the email was recorded refused already
// (doing it again changes nothing); fault.Unavailable when the email was
// sent, or is claimed by another delivery, meanwhile (a retry of the delivery
// finds out which); fault.NotFound when there is no such notification. Other
// failures are fault.Unavailable.
func (s *Store) MarkRefused(ctx context.Context, id uuid.UUID, claim time.Time) (bool, error) {
	var marked, emailed, refused bool
	err := s.db.QueryRow(ctx, `WITH marked AS (
			UPDATE notifications SET email_refused_at = now(), email_claimed_until = NULL
			WHERE id = $1 AND emailed_at IS NULL AND email_refused_at IS NULL AND email_claimed_until = $2
			RETURNING id)
		SELECT EXISTS (SELECT 1 FROM marked), emailed_at IS NOT NULL, email_refused_at IS NOT NULL
		FROM notifications WHERE id = $1`, id, claim).Scan(&marked, &emailed, &refused)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return false, fault.E(fault.NotFound, fault.CodeNotFound, "no such notification")
	case err != nil:
		return false, fault.Wrap(err, fault.Unavailable, fault.CodeUnavailable, "notifications are unavailable")
	case marked:
		return true, nil
	case refused: // the statement's snapshot: recorded before it
		return false, nil
	case emailed:
		return false, fault.E(fault.Unavailable, fault.CodeUnavailable, "the email was sent by another delivery")
	}
	return false, fault.E(fault.Unavailable, fault.CodeUnavailable, "the email is claimed by another delivery")
}

// endTypes are the types of the notifications that tell an order's end
// (notifications.Ends).
func endTypes() []string {
	return []string{notifications.TypeOrderCanceled, notifications.TypePaymentFailed}
}

// EndEmailed reports whether the email of a notification telling the end of
// order (notifications.Ends) went out to user. It reads the user's
// notifications through notifications_by_user. Failures are
// fault.Unavailable.
func (s *Store) EndEmailed(ctx context.Context, userID, orderID uuid.UUID) (bool, error) {
	var ended bool
	err := s.db.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM notifications
		WHERE user_id = $1 AND order_id = $2 AND type = ANY($3) AND emailed_at IS NOT NULL)`,
		userID, orderID, endTypes()).Scan(&ended)
	if err != nil {
		return false, fault.Wrap(err, fault.Unavailable, fault.CodeUnavailable, "notifications are unavailable")
	}
	return ended, nil
}

// List returns up to limit of the user's notifications, newest first (by
// UUIDv7 id), after the cursor id (uuid.Nil: from the start), and whether
// more follow. Only the user's own notifications are ever returned. The page
// is read through notifications_by_user from the cursor on (listFirst,
// listAfter).
func (s *Store) List(ctx context.Context, userID, after uuid.UUID, limit int) ([]notifications.Notification, bool, error) {
	return list(ctx, s.db, userID, after, limit)
}

// querier runs a query: the pool, or a transaction (the tests').
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// The statements of List: the first page, and a page after a cursor. Each
// states its bounds as an index condition of notifications_by_user (user_id,
// id DESC), so that any plan PostgreSQL keeps for it on a session — the
// generic plan it may cache after five runs included — reads the page from
// the cursor on. One statement for both, with ($2 = the nil UUID OR id < $2),
// got a generic plan that read every notification of the user the retention
// keeps (TestAListPageReadsItsOwnRowsOnly), as list-orders' and
// list-products' did.
const (
	listFirst = `SELECT ` + columns + ` FROM notifications
		WHERE user_id = $1 ORDER BY id DESC LIMIT $2`
	listAfter = `SELECT ` + columns + ` FROM notifications
		WHERE user_id = $1 AND id < $3 ORDER BY id DESC LIMIT $2`
)

// list is List through q.
func list(ctx context.Context, q querier, userID, after uuid.UUID, limit int) ([]notifications.Notification, bool, error) {
	query, args := listFirst, []any{userID, limit + 1}
	if after != uuid.Nil {
		query, args = listAfter, append(args, after)
	}
	rows, err := q.Query(ctx, query, args...)
	if err != nil {
		return nil, false, fault.Wrap(err, fault.Unavailable, fault.CodeUnavailable, "notifications are unavailable")
	}
	items, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (notifications.Notification, error) { return scan(r) })
	if err != nil {
		return nil, false, fault.Wrap(err, fault.Unavailable, fault.CodeUnavailable, "notifications are unavailable")
	}
	if len(items) > limit {
		return items[:limit], true, nil
	}
	return items, false, nil
}

// Get returns one notification by id, for tests and operators.
// fault.NotFound when there is none.
func (s *Store) Get(ctx context.Context, id uuid.UUID) (notifications.Notification, error) {
	n, err := scan(s.db.QueryRow(ctx, `SELECT `+columns+` FROM notifications WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return n, fault.E(fault.NotFound, fault.CodeNotFound, "no such notification")
	}
	if err != nil {
		return n, fault.Wrap(err, fault.Unavailable, fault.CodeUnavailable, "notifications are unavailable")
	}
	return n, nil
}

// PruneBatches is the most batches (postgres.DeleteBatch rows each) one
// Prune deletes.
const PruneBatches = 20

// Prune deletes the notifications created more than olderThan ago from the
// database behind db, when it has the table (the outbox relay's cleanup runs
// on every service database; only the users database has it), and reports
// how many. The relay calls it with its NotificationRetention, which is at
// least its inbox retention: a notification's unique event_id is what keeps a
// dead letter replayed after its inbox record was pruned from notifying (and
// emailing) twice, so it must outlive that record.
//
// It reads only the notifications it deletes, through notifications_created_at
// (users migration 0005; nothing is pruned until that index is built and
// valid), in batches, oldest first (postgres.DeleteInBatches,
// each batch an ordered walk of the index with a LIMIT, its own statement and
// commit), as inbox.Prune does: a cleanup never holds the locks of a backlog,
// nor reads the retention's rows it keeps. One call deletes at most
// PruneBatches batches: the relay prunes in the loop that publishes the users
// database's events, so a backlog (the first cleanup after an upgrade) goes
// over several cleanups instead of holding the events up.
func Prune(ctx context.Context, db postgres.Querier, olderThan time.Duration) (int64, error) {
	// Until migration 0005 has built the index the DELETE walks, each batch
	// would read the whole table: nothing is pruned before the index is
	// valid (nor before the table exists). A concurrent build shows the
	// index before it is ready, and one that failed leaves it invalid until
	// the next start of a users function builds it again; until 2026-12-07
	// the index's existence was enough (TestPruneWaitsForAValidIndex).
	var valid bool
	if err := db.QueryRow(ctx, `SELECT coalesce((SELECT indisvalid FROM pg_index
		WHERE indexrelid = to_regclass('notifications_created_at')), false)`).Scan(&valid); err != nil || !valid {
		return 0, err
	}
	deleted, err := postgres.DeleteBatches(ctx, db, PruneBatches, `DELETE FROM notifications WHERE ctid = ANY(ARRAY(SELECT ctid
		FROM notifications WHERE created_at < now() - make_interval(secs => $1) ORDER BY created_at LIMIT $2))`,
		olderThan.Seconds())
	if err != nil {
		return deleted, fmt.Errorf("prune notifications: %w", err)
	}
	return deleted, nil
}
