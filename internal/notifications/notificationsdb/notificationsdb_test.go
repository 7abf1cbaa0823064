package notificationsdb_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/shopfaas/shop/internal/fault"
	"github.com/shopfaas/shop/internal/notifications"
	"github.com/shopfaas/shop/internal/notifications/notificationsdb"
	"github.com/shopfaas/shop/internal/postgres"
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
	// The inbox record pruned (a dead letter replayed past the inbox
	// retention), the new claim of the event is a duplicate too: it returns
	// the first notification, stores none and keeps its claim.
	if _, err := pool.Exec(ctx, `DELETE FROM processed_events WHERE event_id = $1`, n.EventID); err != nil {
		t.Fatal(err)
	}
	got, first, err = s.Record(ctx, "notify-user", dup)
	if err != nil || first || got.ID != n.ID {
		t.Fatalf("delivery after the inbox record was pruned: %+v first %v %v; want the first notification %s", got, first, err, n.ID)
	}
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM notifications WHERE event_id = $1`, n.EventID).Scan(&count); err != nil || count != 1 {
		t.Errorf("%d notifications for the event (%v), want 1", count, err)
	}
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM processed_events WHERE event_id = $1`, n.EventID).Scan(&count); err != nil || count != 1 {
		t.Errorf("%d claims of the event (%v), want 1", count, err)
	}
}

// Prune deletes the notifications created before the retention and keeps the
// others; on a database without the table (every service database but the
// users one, which the relay's cleanup visits too) it does nothing.
func TestPrune(t *testing.T) {
	ctx := context.Background()
	pool := pgtest.Open(t, usersdb.Migrations())
	store := notificationsdb.New(pool)
	old, fresh := notification(), notification()
	old.CreatedAt = time.Now().Add(-100 * 24 * time.Hour).UTC().Truncate(time.Microsecond)
	for _, n := range []notifications.Notification{old, fresh} {
		if _, _, err := store.Record(ctx, "notify-user", n); err != nil {
			t.Fatal(err)
		}
	}
	n, err := notificationsdb.Prune(ctx, pool, 90*24*time.Hour)
	if err != nil || n != 1 {
		t.Fatalf("Prune = %d, %v; want 1 notification deleted", n, err)
	}
	var left []uuid.UUID
	if err := pool.QueryRow(ctx, `SELECT array_agg(id) FROM notifications`).Scan(&left); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]uuid.UUID{fresh.ID}, left); diff != "" {
		t.Errorf("notifications left (-want +got):\n%s", diff)
	}
	empty := pgtest.Open(t, fstest.MapFS{"0001_none.sql": {Data: []byte(`CREATE TABLE other (n int);`)}})
	if n, err := notificationsdb.Prune(ctx, empty, time.Hour); err != nil || n != 0 {
		t.Errorf("Prune without the table = %d, %v; want 0, nil", n, err)
	}
}

// A backlog is deleted in batches of postgres.DeleteBatch, each its own
// commit, and each batch reads the notifications it deletes through
// notifications_created_at (migration 0005), not the ones it keeps.
func TestPruneDeletesInBatches(t *testing.T) {
	ctx := context.Background()
	pool := pgtest.Open(t, usersdb.Migrations())
	const n, kept = 2*postgres.DeleteBatch + 7, 8000
	if _, err := pool.Exec(ctx, `INSERT INTO notifications (id, user_id, event_id, type, subject, created_at)
		SELECT gen_random_uuid(), gen_random_uuid(), gen_random_uuid(), 't', 's',
			CASE WHEN i <= $1::int THEN now() - interval '100 days' ELSE now() - interval '1 day' END
		FROM generate_series(1, $1::int + $2::int) i`, n, kept); err != nil {
		t.Fatal(err)
	}
	counted, rt := pgtest.Counted(t, pool)
	got, err := notificationsdb.Prune(ctx, counted, 90*24*time.Hour)
	if err != nil || got != n {
		t.Fatalf("Prune = %d, %v; want %d notifications deleted", got, err, n)
	}
	if c := rt.Counts(); c.Commits != 3 {
		t.Errorf("the prune committed %d times, want 3 (batches of %d, %d and 7)", c.Commits, postgres.DeleteBatch, postgres.DeleteBatch)
	}
	var left int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM notifications`).Scan(&left); err != nil || left != kept {
		t.Errorf("%d notifications left (%v), want %d", left, err, kept)
	}
	// Nothing left to delete: the walk of the index reads no notification.
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck
	before := pgtest.RowsRead(t, tx, "notifications")
	if got, err := notificationsdb.Prune(ctx, tx, 90*24*time.Hour); err != nil || got != 0 {
		t.Fatalf("second Prune = %d, %v; want 0", got, err)
	}
	if read := pgtest.RowsRead(t, tx, "notifications") - before; read > 10 {
		t.Errorf("a prune with nothing to delete read %d notifications; want the index to find none", read)
	}
}

// While notifications_created_at is not valid — its concurrent build
// (migration 0005) under way on a table that holds every notification ever
// written, or one that failed and waits for the next start to build it
// again — Prune deletes nothing and reads no notification: each batch's walk
// would read the whole table, up to 20 times a cleanup, and every 10 s while
// a backlog is capped (as catalogdb.PruneOrderSales waits for its index).
// Until 2026-12-07 it checked only that the index existed.
func TestPruneWaitsForAValidIndex(t *testing.T) {
	ctx := context.Background()
	pool := pgtest.Open(t, usersdb.Migrations())
	const old = 3000
	if _, err := pool.Exec(ctx, `INSERT INTO notifications (id, user_id, event_id, type, subject, created_at)
		SELECT gen_random_uuid(), gen_random_uuid(), gen_random_uuid(), 't', 's', now() - interval '100 days'
		FROM generate_series(1, $1::int)`, old); err != nil {
		t.Fatal(err)
	}
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck
	if _, err := tx.Exec(ctx, `UPDATE pg_index SET indisvalid = false WHERE indexrelid = 'notifications_created_at'::regclass`); err != nil {
		t.Fatal(err)
	}
	before := pgtest.RowsRead(t, tx, "notifications")
	if n, err := notificationsdb.Prune(ctx, tx, 90*24*time.Hour); err != nil || n != 0 {
		t.Errorf("Prune under an invalid index = %d, %v; want 0, nil: nothing pruned until the index is valid", n, err)
	}
	if read := pgtest.RowsRead(t, tx, "notifications") - before; read > 10 {
		t.Errorf("a prune under an invalid index read %d notifications; want none", read)
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	// Valid again (the next start's build), the old notifications go.
	if n, err := notificationsdb.Prune(ctx, pool, 90*24*time.Hour); err != nil || n != old {
		t.Errorf("Prune under the valid index = %d, %v; want %d", n, err, old)
	}
}

// A sender whose lease ran out while its send failed releases only its own
// claim: the claim another delivery took since stays held, so a third
// delivery cannot send the email while the second may be sending it.
func TestReleaseEmailLeavesANewerClaim(t *testing.T) {
	ctx := context.Background()
	pool := pgtest.Open(t, usersdb.Migrations())
	s := notificationsdb.New(pool)
	n := notification()
	if _, _, err := s.Record(ctx, "notify-user", n); err != nil {
		t.Fatal(err)
	}
	stale, ok, err := s.ClaimEmail(ctx, n.ID, time.Millisecond)
	if err != nil || !ok {
		t.Fatalf("first claim = %v, %v", ok, err)
	}
	// The first sender's lease runs out; a second delivery takes the email.
	if _, err := pool.Exec(ctx, `UPDATE notifications SET email_claimed_until = now() - interval '1 second' WHERE id = $1`, n.ID); err != nil {
		t.Fatal(err)
	}
	held, ok, err := s.ClaimEmail(ctx, n.ID, time.Minute)
	if err != nil || !ok || held.Equal(stale) {
		t.Fatalf("second claim = %v, %v, %v (first %v)", held, ok, err, stale)
	}
	if err := s.ReleaseEmail(ctx, n.ID, stale); err != nil { // the first send fails late
		t.Fatal(err)
	}
	if _, ok, err := s.ClaimEmail(ctx, n.ID, time.Minute); err != nil || ok {
		t.Fatalf("a third delivery claimed the email the second holds (%v, %v)", ok, err)
	}
	if err := s.ReleaseEmail(ctx, n.ID, held); err != nil { // the holder's own release
		t.Fatal(err)
	}
	if _, ok, err := s.ClaimEmail(ctx, n.ID, time.Minute); err != nil || !ok {
		t.Fatalf("the claim released by its holder could not be taken (%v, %v)", ok, err)
	}
}

// An email recorded refused for good is never claimed again, whether or not
// a claim's lease has run out: no delivery claims or sends it, and the record
// drops the claim it was refused under; recording it again records nothing.
// A sent email stays sent: its refusal is not recorded.
func TestARefusedEmailIsNeverClaimedAgain(t *testing.T) {
	ctx := context.Background()
	pool := pgtest.Open(t, usersdb.Migrations())
	s := notificationsdb.New(pool)
	n := notification()
	if _, _, err := s.Record(ctx, "notify-user", n); err != nil {
		t.Fatal(err)
	}
	claim, ok, err := s.ClaimEmail(ctx, n.ID, time.Minute)
	if err != nil || !ok {
		t.Fatalf("claim = %v, %v", ok, err)
	}
	if recorded, err := s.MarkRefused(ctx, n.ID, claim); err != nil || !recorded {
		t.Fatalf("MarkRefused = %v, %v; want recorded", recorded, err)
	}
	got, err := s.Get(ctx, n.ID)
	if err != nil || got.EmailRefusedAt == nil || got.EmailedAt != nil {
		t.Fatalf("after MarkRefused: refused at %v, emailed at %v, %v; want refused only", got.EmailRefusedAt, got.EmailedAt, err)
	}
	var claimed *time.Time
	if err := pool.QueryRow(ctx, `SELECT email_claimed_until FROM notifications WHERE id = $1`, n.ID).Scan(&claimed); err != nil || claimed != nil {
		t.Fatalf("the claim after MarkRefused: %v, %v; want none", claimed, err)
	}
	if _, ok, err := s.ClaimEmail(ctx, n.ID, time.Minute); err != nil || ok {
		t.Fatalf("a refused email was claimed (%v, %v)", ok, err)
	}
	if recorded, err := s.MarkRefused(ctx, n.ID, claim); err != nil || recorded {
		t.Fatalf("MarkRefused again = %v, %v; want nothing recorded, no error", recorded, err)
	}

	sent := notification()
	if _, _, err := s.Record(ctx, "notify-user", sent); err != nil {
		t.Fatal(err)
	}
	claim, ok, err = s.ClaimEmail(ctx, sent.ID, time.Minute)
	if err != nil || !ok {
		t.Fatalf("claim = %v, %v", ok, err)
	}
	if err := s.MarkEmailed(ctx, sent.ID); err != nil {
		t.Fatal(err)
	}
	if recorded, err := s.MarkRefused(ctx, sent.ID, claim); recorded || !fault.Is(err, fault.Unavailable, "") {
		t.Fatalf("MarkRefused of a sent email = %v, %v; want not recorded, Unavailable", recorded, err)
	}
	if got, err := s.Get(ctx, sent.ID); err != nil || got.EmailedAt == nil || got.EmailRefusedAt != nil {
		t.Fatalf("a sent email after MarkRefused: emailed at %v, refused at %v, %v; want sent only", got.EmailedAt, got.EmailRefusedAt, err)
	}
}

// A sender whose lease ran out before the server refused the email records
// nothing: the claim another delivery has taken since stays (that delivery
// may be sending right now), and the email is not marked refused; the
// answer says so (fault.Unavailable, retried). Until 2026-12-06 MarkRefused
// cleared the claim whoever held it and reported nothing.
func TestAStaleClaimsRefusalLeavesANewerClaim(t *testing.T) {
	ctx := context.Background()
	pool := pgtest.Open(t, usersdb.Migrations())
	s := notificationsdb.New(pool)
	n := notification()
	if _, _, err := s.Record(ctx, "notify-user", n); err != nil {
		t.Fatal(err)
	}
	stale, ok, err := s.ClaimEmail(ctx, n.ID, time.Minute)
	if err != nil || !ok {
		t.Fatalf("first claim = %v, %v", ok, err)
	}
	// The first sender's lease runs out; a second delivery takes the email.
	if _, err := pool.Exec(ctx, `UPDATE notifications SET email_claimed_until = now() - interval '1 second' WHERE id = $1`, n.ID); err != nil {
		t.Fatal(err)
	}
	held, ok, err := s.ClaimEmail(ctx, n.ID, time.Minute)
	if err != nil || !ok || held.Equal(stale) {
		t.Fatalf("second claim = %v, %v, %v (first %v)", held, ok, err, stale)
	}
	recorded, err := s.MarkRefused(ctx, n.ID, stale) // the first send is refused late
	if recorded || !fault.Is(err, fault.Unavailable, "") {
		t.Errorf("MarkRefused under a stale claim = %v, %v; want not recorded, Unavailable", recorded, err)
	}
	var claimed *time.Time
	if err := pool.QueryRow(ctx, `SELECT email_claimed_until FROM notifications WHERE id = $1`, n.ID).Scan(&claimed); err != nil {
		t.Fatal(err)
	}
	if claimed == nil || !claimed.Equal(held) {
		t.Errorf("the newer claim after a stale MarkRefused: %v, want %v", claimed, held)
	}
	if got, err := s.Get(ctx, n.ID); err != nil || got.EmailRefusedAt != nil {
		t.Errorf("after a stale MarkRefused: refused at %v, %v; want not refused", got.EmailRefusedAt, err)
	}
	if _, ok, err := s.ClaimEmail(ctx, n.ID, time.Minute); err != nil || ok {
		t.Fatalf("a third delivery claimed the email the second holds (%v, %v)", ok, err)
	}
	if recorded, err := s.MarkRefused(ctx, n.ID, held); err != nil || !recorded {
		t.Errorf("MarkRefused under the held claim = %v, %v; want recorded", recorded, err)
	}
}

// A page of a user's notifications reads its own rows (and the one that says
// more follow) through notifications_by_user, from the cursor on, whatever
// plan PostgreSQL keeps for the statement: the generic plan it may cache on a
// session after five runs included. Until 2026-12-07 one statement served the
// first page and every next one, and its condition (the nil UUID OR id < $2)
// cannot start a generic plan's index scan at the cursor: a page read every
// notification of the user the retention keeps.
func TestAListPageReadsItsOwnRowsOnly(t *testing.T) {
	pool := pgtest.Open(t, usersdb.Migrations())
	ctx := context.Background()
	user := uuid.New()
	const history = 3000
	if _, err := pool.Exec(ctx, `INSERT INTO notifications (id, user_id, event_id, type, subject)
		SELECT gen_random_uuid(), CASE WHEN n % 2 = 0 THEN $1 ELSE gen_random_uuid() END, gen_random_uuid(),
		       'order.placed', 'Your order'
		FROM generate_series(1, 2 * $2::int) n`, user, history); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `ANALYZE notifications`); err != nil {
		t.Fatal(err)
	}
	var ids []uuid.UUID // the user's, newest (highest id) first
	rows, err := pool.Query(ctx, `SELECT id FROM notifications WHERE user_id = $1 ORDER BY id DESC`, user)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var id uuid.UUID
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	const limit = 20
	deep := len(ids) * 3 / 4 // the cursor: three quarters down the list
	for _, mode := range pgtest.PlanModes {
		for _, from := range []int{-1, deep} {
			after := uuid.Nil
			if from >= 0 {
				after = ids[from]
			}
			t.Run(fmt.Sprintf("%s/cursor=%v", mode, from >= 0), func(t *testing.T) {
				var page []notifications.Notification
				var more bool
				read := pgtest.RowsReadUnder(t, pool, mode, "notifications", func(tx pgx.Tx) {
					var err error
					if page, more, err = notificationsdb.ListIn(ctx, tx, user, after, limit); err != nil {
						t.Fatal(err)
					}
				})
				t.Logf("a page of %d of the user's %d notifications read %d notifications", len(page), len(ids), read)
				got := make([]uuid.UUID, len(page))
				for i, n := range page {
					got[i] = n.ID
				}
				if w := ids[from+1 : from+1+limit]; !slices.Equal(got, w) || !more {
					t.Fatalf("page %v, more %v; want %v, more true", got, more, w)
				}
				if read > 2*limit {
					t.Errorf("a page of %d notifications read %d notifications; want the page's and the next one's (at most %d)", limit, read, 2*limit)
				}
			})
		}
	}
}

// orderNotification is a notification of typ for order of user.
func orderNotification(user, order uuid.UUID, typ string) notifications.Notification {
	n := notification()
	n.UserID, n.OrderID, n.Type = user, &order, typ
	return n
}

// An order's emails go out in its order, never two at once: the email of its
// placing is not claimed while the email of its end (a cancellation, or a
// failed payment) is being sent or once it went out, and the end's is not
// claimed while the placing's is being sent. A claim checked only on the
// notification itself let a placing's redelivery, past notifysvc's check that
// the end was not emailed, send "confirmed" beside or after "cancelled".
// Another order's, or another user's, emails are not held up.
func TestAnOrdersEmailsAreClaimedInTurn(t *testing.T) {
	for _, end := range []string{notifications.TypeOrderCanceled, notifications.TypePaymentFailed} {
		t.Run(end, func(t *testing.T) {
			ctx := context.Background()
			pool := pgtest.Open(t, usersdb.Migrations())
			s := notificationsdb.New(pool)
			user, order := uuid.New(), uuid.New()
			placed, ended := orderNotification(user, order, notifications.TypeOrderPlaced), orderNotification(user, order, end)
			other := orderNotification(user, uuid.New(), notifications.TypeOrderPlaced)
			stranger := orderNotification(uuid.New(), order, notifications.TypeOrderPlaced)
			for _, n := range []notifications.Notification{placed, ended, other, stranger} {
				if _, _, err := s.Record(ctx, "notify-user", n); err != nil {
					t.Fatal(err)
				}
			}
			claim := func(n notifications.Notification, want bool, when string) time.Time {
				t.Helper()
				c, ok, err := s.ClaimEmail(ctx, n.ID, time.Minute)
				if err != nil || ok != want {
					t.Fatalf("%s: the %s's claim = %v, %v; want %v", when, n.Type, ok, err, want)
				}
				return c
			}
			held := claim(ended, true, "nothing sent")
			claim(placed, false, "the end's email being sent")
			claim(other, true, "the end of another order being sent")
			claim(stranger, true, "another user's end being sent")
			if err := s.ReleaseEmail(ctx, ended.ID, held); err != nil { // the end's send failed
				t.Fatal(err)
			}
			claim(placed, true, "the end's send failed")
			claim(ended, false, "the placing's email being sent")
			if err := s.MarkEmailed(ctx, placed.ID); err != nil {
				t.Fatal(err)
			}
			claim(ended, true, "the placing's email sent")
			if err := s.MarkEmailed(ctx, ended.ID); err != nil {
				t.Fatal(err)
			}

			// A placing owed after its end's email went out is never claimed.
			late := orderNotification(user, uuid.New(), notifications.TypeOrderPlaced)
			first := orderNotification(user, *late.OrderID, end)
			for _, n := range []notifications.Notification{late, first} {
				if _, _, err := s.Record(ctx, "notify-user", n); err != nil {
					t.Fatal(err)
				}
			}
			claim(first, true, "nothing sent")
			if err := s.MarkEmailed(ctx, first.ID); err != nil {
				t.Fatal(err)
			}
			claim(late, false, "the end's email sent")
		})
	}
}

// The claims of an order's two emails are taken one after the other even
// when they are asked for at once: the placing's claim waits for the end's
// claim, still uncommitted, and then sees it. A claim that read the end's
// row from its own snapshot took the placing's email beside it.
func TestAnOrdersEmailClaimsWaitForEachOther(t *testing.T) {
	ctx := context.Background()
	pool := pgtest.Open(t, usersdb.Migrations())
	s := notificationsdb.New(pool)
	user, order := uuid.New(), uuid.New()
	placed, ended := orderNotification(user, order, notifications.TypeOrderPlaced), orderNotification(user, order, notifications.TypeOrderCanceled)
	for _, n := range []notifications.Notification{placed, ended} {
		if _, _, err := s.Record(ctx, "notify-user", n); err != nil {
			t.Fatal(err)
		}
	}
	tx, err := pool.Begin(ctx) // the end's claim, not committed yet
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, `UPDATE notifications SET email_claimed_until = now() + interval '1 minute' WHERE id = $1`, ended.ID); err != nil {
		t.Fatal(err)
	}
	type result struct {
		ok  bool
		err error
	}
	done := make(chan result, 1)
	go func() {
		_, ok, err := s.ClaimEmail(ctx, placed.ID, time.Minute)
		done <- result{ok, err}
	}()
	for waiting, end := false, time.Now().Add(10*time.Second); !waiting; {
		if time.Now().After(end) {
			t.Fatal("the placing's claim neither waited for a lock nor answered within 10 s")
		}
		select {
		case r := <-done:
			t.Fatalf("the placing's claim did not wait for the end's uncommitted claim: %v, %v", r.ok, r.err)
		case <-time.After(10 * time.Millisecond):
		}
		if err := pool.QueryRow(ctx, `SELECT count(*) > 0 FROM pg_stat_activity
			WHERE datname = current_database() AND wait_event_type = 'Lock'`).Scan(&waiting); err != nil {
			t.Fatal(err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if r := <-done; r.err != nil || r.ok {
		t.Errorf("the placing's claim after the end's committed = %v, %v; want not claimed", r.ok, r.err)
	}
}

// Of an order's two emails claimed at once, exactly one is claimed, and
// neither claim fails (the order's rows are locked in one order by both, so
// they do not deadlock), for each of 20 orders.
func TestOfTwoClaimsAtOnceOfAnOrderExactlyOneWins(t *testing.T) {
	ctx := context.Background()
	pool := pgtest.Open(t, usersdb.Migrations())
	s := notificationsdb.New(pool)
	user := uuid.New()
	var pairs [][2]notifications.Notification
	for range 20 {
		order := uuid.New()
		pair := [2]notifications.Notification{orderNotification(user, order, notifications.TypeOrderPlaced),
			orderNotification(user, order, notifications.TypeOrderCanceled)}
		for _, n := range pair {
			if _, _, err := s.Record(ctx, "notify-user", n); err != nil {
				t.Fatal(err)
			}
		}
		pairs = append(pairs, pair)
	}
	won := make([][2]bool, len(pairs))
	var wg sync.WaitGroup
	for i, pair := range pairs {
		for j, n := range pair {
			wg.Go(func() {
				_, ok, err := s.ClaimEmail(ctx, n.ID, time.Minute)
				if err != nil {
					t.Errorf("claim of order %d's %s: %v", i, n.Type, err)
				}
				won[i][j] = ok
			})
		}
	}
	wg.Wait()
	for i, w := range won {
		if w[0] == w[1] {
			t.Errorf("order %d: placing claimed %v, end claimed %v; want exactly one", i, w[0], w[1])
		}
	}
}
