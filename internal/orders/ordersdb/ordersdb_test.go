package ordersdb_test

import (
	"context"
	"io/fs"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/shopfaas/shop/internal/fault"
	"github.com/shopfaas/shop/internal/orders"
	"github.com/shopfaas/shop/internal/orders/ordersdb"
	"github.com/shopfaas/shop/internal/orders/orderstest"
	"github.com/shopfaas/shop/internal/outbox"
	"github.com/shopfaas/shop/internal/postgres/pgtest"
)

func TestMigrationIncludesTheOutboxVerbatim(t *testing.T) {
	b, err := fs.ReadFile(ordersdb.Migrations(), "0001_init.sql")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), outbox.Schema) {
		t.Fatal("0001_init.sql must include outbox.Schema verbatim")
	}
}

func TestClaimKey(t *testing.T) {
	pool := pgtest.Open(t, ordersdb.Migrations())
	store := ordersdb.New(pool)
	ctx := context.Background()
	user := uuid.New()

	// 20 concurrent claims: exactly one wins, the others wait and give up.
	var wg sync.WaitGroup
	var mu sync.Mutex
	won, busy := 0, 0
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := store.ClaimKey(ctx, user, "k", "h1", 100*time.Millisecond)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil && r == nil:
				won++
			case err == ordersdb.ErrKeyInProgress:
				busy++
			default:
				t.Errorf("claim: %v %v", r, err)
			}
		}()
	}
	wg.Wait()
	if won != 1 || busy != 19 {
		t.Fatalf("won %d busy %d, want 1 19", won, busy)
	}
	if _, err := store.ClaimKey(ctx, user, "k", "h2", 0); !fault.Is(err, fault.Conflict, "idempotency_key_reused") {
		t.Fatalf("other hash: %v", err)
	}
	if r, err := store.ClaimKey(ctx, uuid.New(), "k", "h2", 0); err != nil || r != nil {
		t.Fatalf("another user's key must be free: %v %v", r, err)
	}
	// Released (no order yet): claimable again.
	if err := store.ReleaseKey(ctx, user, "k"); err != nil {
		t.Fatal(err)
	}
	if r, err := store.ClaimKey(ctx, user, "k", "h3", 0); err != nil || r != nil {
		t.Fatalf("after release: %v %v", r, err)
	}
	// A claim whose request died before writing its order is abandoned after a while.
	if _, err := pool.Exec(ctx, `UPDATE idempotency_keys SET created_at = now() - interval '2 minutes'`); err != nil {
		t.Fatal(err)
	}
	if r, err := store.ClaimKey(ctx, user, "k", "h3b", 0); err != nil || r != nil {
		t.Fatalf("abandoned key: %v %v", r, err)
	}
	// Expired keys are purged, and claimable anew.
	if _, err := pool.Exec(ctx, `UPDATE idempotency_keys SET expires_at = now() - interval '1 second'`); err != nil {
		t.Fatal(err)
	}
	if r, err := store.ClaimKey(ctx, user, "k", "h4", 0); err != nil || r != nil {
		t.Fatalf("expired key: %v %v", r, err)
	}
	if _, err := pool.Exec(ctx, `UPDATE idempotency_keys SET expires_at = now() - interval '1 second'`); err != nil {
		t.Fatal(err)
	}
	if n, err := store.PurgeKeys(ctx); err != nil || n != 2 {
		t.Fatalf("purged %d %v, want 2", n, err)
	}
	var ttl time.Duration
	if r, err := store.ClaimKey(ctx, user, "fresh", "h", 0); err != nil || r != nil {
		t.Fatal(err)
	}
	if err := pool.QueryRow(ctx, `SELECT extract(epoch FROM expires_at - now())::bigint * 1000000000 FROM idempotency_keys WHERE key = 'fresh'`).Scan(&ttl); err != nil || ttl < 24*time.Hour-time.Minute {
		t.Fatalf("key kept %v (%v), want at least 24h", ttl, err)
	}
}

// Status changes are decided by the domain under the row lock and written
// whole: of 10 concurrent confirmations one changes the order and writes one
// event, the others change nothing.
func TestStatusChangesAreAtomicAndForwardOnly(t *testing.T) {
	pool := pgtest.Open(t, ordersdb.Migrations())
	store := ordersdb.New(pool)
	ctx := context.Background()
	o := orderstest.Seed(t, store, uuid.New(), orders.Pending)
	confirm := func(o *orders.Order) (orders.Change, error) { return o.Confirm(time.Now()) }

	// 10 concurrent confirmations: one change, one event.
	var wg sync.WaitGroup
	for range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := store.Update(ctx, o.ID, confirm); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	var events int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM outbox`).Scan(&events); err != nil || events != 1 {
		t.Fatalf("%d events (%v), want 1", events, err)
	}
	decline := func(o *orders.Order) (orders.Change, error) {
		return o.Fail(orders.Failure{Status: orders.PaymentFailed, Reason: orders.ReasonPaymentDeclined}, time.Now())
	}
	if _, err := store.Update(ctx, o.ID, decline); !fault.Is(err, fault.Conflict, "invalid_transition") {
		t.Fatalf("confirmed → payment_failed: %v", err)
	}
	if _, err := store.Update(ctx, uuid.New(), confirm); fault.KindOf(err) != fault.NotFound {
		t.Fatalf("unknown order: %v", err)
	}
	got, err := store.Get(ctx, o.ID)
	if err != nil || got.Status != orders.Confirmed || len(got.Items) != 1 {
		t.Fatalf("order %+v %v", got, err)
	}
}
