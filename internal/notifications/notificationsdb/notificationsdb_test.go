package notificationsdb_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/shopfaas/shop/internal/notifications"
	"github.com/shopfaas/shop/internal/notifications/notificationsdb"
	"github.com/shopfaas/shop/internal/postgres/pgtest"
	"github.com/shopfaas/shop/internal/users/usersdb"
)

func notification() notifications.Notification {
	id, _ := uuid.NewV7()
	order := uuid.New()
	return notifications.Notification{ID: id, UserID: uuid.New(), EventID: uuid.New(), Type: "order.placed",
		Subject: "Your order", OrderID: &order, CreatedAt: time.Now().UTC().Truncate(time.Microsecond)}
}

// TestRecordRoundTrips: notify-user's transaction is one batch with BEGIN,
// the inbox claim, the insert and the read of the stored notification, then
// COMMIT: 2 round trips (4 before: BEGIN, the claim, the insert, COMMIT). A
// duplicate delivery stores nothing, answers the first delivery's
// notification with first=false, and commits nothing.
func TestRecordRoundTrips(t *testing.T) {
	ctx := context.Background()
	pool := pgtest.Open(t, usersdb.Migrations())
	counted, rt := pgtest.Counted(t, pool)
	s := notificationsdb.New(counted)
	n := notification()
	got, first, err := s.Record(ctx, "notify-user", n)
	if err != nil || !first || got.ID != n.ID || got.EventID != n.EventID || got.Subject != n.Subject {
		t.Fatalf("first delivery: %+v first %v %v", got, first, err)
	}
	if c := rt.Counts(); c.Trips > 2 || c.Commits != 1 {
		t.Errorf("a notification: %+v, want at most 2 round trips and 1 commit", c)
	}
	rt.Reset()
	dup := notification()
	dup.EventID = n.EventID
	got, first, err = s.Record(ctx, "notify-user", dup)
	if err != nil || first || got.ID != n.ID {
		t.Fatalf("duplicate delivery: %+v first %v %v; want the first notification %s", got, first, err, n.ID)
	}
	if c := rt.Counts(); c.Trips > 2 || c.Commits != 0 {
		t.Errorf("a duplicate: %+v, want at most 2 round trips and no commit", c)
	}
	var count int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM notifications WHERE event_id = $1`, n.EventID).Scan(&count); err != nil || count != 1 {
		t.Errorf("%d notifications for the event (%v), want 1", count, err)
	}
	// Another consumer's first claim of an event that has a notification
	// fails and keeps no claim.
	if _, _, err := s.Record(ctx, "other", dup); err == nil {
		t.Error("a second notification for one event was accepted")
	}
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM processed_events WHERE event_id = $1`, n.EventID).Scan(&count); err != nil || count != 1 {
		t.Errorf("%d claims of the event (%v), want 1", count, err)
	}
}
