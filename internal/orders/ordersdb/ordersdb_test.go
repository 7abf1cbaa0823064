package ordersdb_test

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/shopfaas/shop/internal/fault"
	"github.com/shopfaas/shop/internal/orders"
	"github.com/shopfaas/shop/internal/orders/ordersdb"
	"github.com/shopfaas/shop/internal/orders/orderstest"
	"github.com/shopfaas/shop/internal/outbox"
	"github.com/shopfaas/shop/internal/postgres"
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

// newOrder is a pending order of user, not written yet.
func newOrder(t *testing.T, user uuid.UUID) orders.Order {
	t.Helper()
	price := orders.Money{Amount: 500, Currency: "USD"}
	o, err := orders.New(user, []orders.Line{{ProductID: uuid.Must(uuid.NewV7()), Quantity: 1, UnitPrice: price}}, price,
		orders.Address{Name: "Ada", Line1: "1 Loop Rd", City: "S", PostalCode: "1", Country: "US"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return o
}

// Create writes each field of a Placement where it belongs: the token and
// the cart flag in the saga, the key under its name with the request's hash
// (a replay of the key with that hash is the running request, with another
// hash a reuse, and the hash is no key), the lease from now, and the skipped
// lines in the order.created entry.
func TestCreateWritesEachFieldWhereItBelongs(t *testing.T) {
	pool := pgtest.Open(t, ordersdb.Migrations())
	store := ordersdb.New(pool)
	ctx := context.Background()
	user, skipped := uuid.New(), uuid.Must(uuid.NewV7())
	o := newOrder(t, user)
	if err := store.Create(ctx, ordersdb.Placement{Order: o, PaymentToken: "tok_visa", FromCart: true,
		Key: "the-key", RequestHash: "the-hash", Lease: time.Hour, Skipped: []uuid.UUID{skipped}}); err != nil {
		t.Fatal(err)
	}
	sg, err := store.LoadSaga(ctx, o.ID)
	if err != nil || sg.PaymentToken != "tok_visa" || !sg.FromCart {
		t.Errorf("saga: token %q, from cart %v (%v); want tok_visa, true", sg.PaymentToken, sg.FromCart, err)
	}
	if _, err := store.CheckKey(ctx, user, "the-key", "the-hash", 0); !errors.Is(err, ordersdb.ErrKeyInProgress) {
		t.Errorf("the key with its hash: %v, want the running request's ErrKeyInProgress", err)
	}
	if _, err := store.CheckKey(ctx, user, "the-key", "another-hash", 0); !errors.Is(err, ordersdb.ErrKeyReused) {
		t.Errorf("the key with another hash: %v, want ErrKeyReused", err)
	}
	if r, err := store.CheckKey(ctx, user, "the-hash", "the-key", 0); r != nil || err != nil {
		t.Errorf("the hash as a key: %+v %v, want a free key", r, err)
	}
	var lease float64
	if err := pool.QueryRow(ctx, `SELECT extract(epoch FROM lease_until - now()) FROM order_sagas WHERE order_id = $1`, o.ID).Scan(&lease); err != nil ||
		lease < time.Hour.Seconds()-60 || lease > time.Hour.Seconds() {
		t.Errorf("lease %v s from now (%v), want an hour", lease, err)
	}
	var created string
	if err := pool.QueryRow(ctx, `SELECT detail FROM order_events WHERE order_id = $1 AND step = $2`, o.ID, orders.StepCreated).Scan(&created); err != nil ||
		!strings.Contains(created, skipped.String()) {
		t.Errorf("order.created entry %q (%v) does not name the skipped line %s", created, err, skipped)
	}
}

// The key is written with its order, in one transaction: of 20 concurrent
// creates with one key exactly one writes an order, the others write nothing
// and are told the key is taken; CheckKey then reads it as running, reused or
// settled, and a free key (absent, expired, abandoned) is taken anew.
// A Placement missing what its other fields need is a defect of the
// caller, refused before anything is written: a key without its request's
// hash would answer every replay idempotency_key_reused, and no lease would
// leave the order to recovery while the request still drives it.
func TestCreateRefusesAnIncompletePlacement(t *testing.T) {
	pool := pgtest.Open(t, ordersdb.Migrations())
	store := ordersdb.New(pool)
	ctx := context.Background()
	for name, p := range map[string]ordersdb.Placement{
		"a key without its hash": {Key: "k", Lease: time.Minute},
		"no lease":               {},
		"a lease below zero":     {Lease: -time.Second},
	} {
		p.Order, p.PaymentToken = newOrder(t, uuid.New()), "tok"
		// Create's own refusal, not a database error (fault.Is takes any
		// error that is no fault.Error for Internal).
		err := store.Create(ctx, p)
		var fe *fault.Error
		if !errors.As(err, &fe) || fe.Kind != fault.Internal {
			t.Errorf("%s: %v, want Create's internal error", name, err)
		}
		if _, gerr := store.Get(ctx, p.Order.ID); !fault.Is(gerr, fault.NotFound, "") {
			t.Errorf("%s: the order was written (%v)", name, gerr)
		}
	}
}

func TestKeys(t *testing.T) {
	pool := pgtest.Open(t, ordersdb.Migrations())
	store := ordersdb.New(pool)
	ctx := context.Background()
	user := uuid.New()

	if r, err := store.CheckKey(ctx, user, "k", "h1", 0); err != nil || r != nil {
		t.Fatalf("absent key: %v %v", r, err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	won, taken := 0, 0
	var first orders.Order
	// The orders are built here: newOrder fails the test with t.Fatal, which
	// only the test's goroutine may call.
	racers := make([]orders.Order, 20)
	for i := range racers {
		racers[i] = newOrder(t, user)
	}
	for _, o := range racers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := store.Create(ctx, ordersdb.Placement{Order: o, PaymentToken: "tok", Key: "k", RequestHash: "h1", Lease: time.Minute})
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				won++
				first = o
			case errors.Is(err, ordersdb.ErrKeyTaken):
				taken++
			default:
				t.Errorf("create: %v", err)
			}
		}()
	}
	wg.Wait()
	if won != 1 || taken != 19 {
		t.Fatalf("won %d taken %d, want 1 19", won, taken)
	}
	var n int
	if err := pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM orders) + (SELECT count(*) FROM order_items) + (SELECT count(*) FROM order_sagas) + (SELECT count(*) FROM order_events)`).Scan(&n); err != nil || n != 4 {
		t.Fatalf("%d rows of orders, lines, sagas and timeline entries (%v), want 4: the losers must write nothing", n, err)
	}
	if _, err := store.CheckKey(ctx, user, "k", "h1", 100*time.Millisecond); err != ordersdb.ErrKeyInProgress {
		t.Fatalf("running: %v, want ErrKeyInProgress", err)
	}
	if _, err := store.CheckKey(ctx, user, "k", "h2", 0); !fault.Is(err, fault.Conflict, "idempotency_key_reused") {
		t.Fatalf("other hash: %v", err)
	}
	if r, err := store.CheckKey(ctx, uuid.New(), "k", "h2", 0); err != nil || r != nil {
		t.Fatalf("another user's key must be free: %v %v", r, err)
	}
	// Settled with the order's end: the same request replays it.
	if _, err := store.Update(ctx, first.ID, func(o *orders.Order) (orders.Change, error) { return o.Confirm(time.Now()) }); err != nil {
		t.Fatal(err)
	}
	if r, err := store.CheckKey(ctx, user, "k", "h1", 0); err != nil || r == nil || !r.Replayed || r.Order.ID != first.ID || r.Order.Status != orders.Confirmed {
		t.Fatalf("settled: %+v %v", r, err)
	}
	// A key claimed by an earlier version whose request died before writing
	// its order is abandoned after a while, and taken anew.
	if _, err := pool.Exec(ctx, `INSERT INTO idempotency_keys (user_id, key, request_hash, expires_at, created_at)
		VALUES ($1, 'old', 'h0', now() + interval '1 day', now() - interval '2 minutes')`, user); err != nil {
		t.Fatal(err)
	}
	if r, err := store.CheckKey(ctx, user, "old", "h3", 0); err != nil || r != nil {
		t.Fatalf("abandoned key: %v %v", r, err)
	}
	if err := store.Create(ctx, ordersdb.Placement{Order: newOrder(t, user), PaymentToken: "tok", Key: "old", RequestHash: "h3", Lease: time.Minute}); err != nil {
		t.Fatalf("abandoned key: %v", err)
	}
	// An expired key is free, taken anew, and purged.
	if _, err := pool.Exec(ctx, `UPDATE idempotency_keys SET expires_at = now() - interval '1 second' WHERE key = 'k'`); err != nil {
		t.Fatal(err)
	}
	if r, err := store.CheckKey(ctx, user, "k", "h4", 0); err != nil || r != nil {
		t.Fatalf("expired key: %v %v", r, err)
	}
	if err := store.Create(ctx, ordersdb.Placement{Order: newOrder(t, user), PaymentToken: "tok", Key: "k", RequestHash: "h4", Lease: time.Minute}); err != nil {
		t.Fatalf("expired key: %v", err)
	}
	if _, err := pool.Exec(ctx, `UPDATE idempotency_keys SET expires_at = now() - interval '1 second'`); err != nil {
		t.Fatal(err)
	}
	if n, err := store.PurgeKeys(ctx); err != nil || n != 2 {
		t.Fatalf("purged %d %v, want 2", n, err)
	}
	var ttl time.Duration
	if err := store.Create(ctx, ordersdb.Placement{Order: newOrder(t, user), PaymentToken: "tok", Key: "fresh", RequestHash: "h", Lease: time.Minute}); err != nil {
		t.Fatal(err)
	}
	if err := pool.QueryRow(ctx, `SELECT extract(epoch FROM expires_at - now())::bigint * 1000000000 FROM idempotency_keys WHERE key = 'fresh'`).Scan(&ttl); err != nil || ttl < 24*time.Hour-time.Minute {
		t.Fatalf("key kept %v (%v), want at least 24h", ttl, err)
	}
}

// A key whose order is still pending is replayed as that pending order once
// no request drives its saga — its lease released by the request that
// answered 202 (ReleaseLease), or run out, or a recovery run has claimed the
// order (which it does only long after its request ended) — and waited for
// while the request holds a live lease; once the order ends, it replays as
// settled. Until 2026-12-07 a live claim of recovery was waited for too, and a
// retry while a run drove the order was answered request_in_progress.
func TestAPendingKeyReplaysOnlyOnceNoRequestDrivesIt(t *testing.T) {
	pool := pgtest.Open(t, ordersdb.Migrations())
	store := ordersdb.New(pool)
	ctx := context.Background()
	user := uuid.New()
	create := func(key string) orders.Order {
		t.Helper()
		o := newOrder(t, user)
		if err := store.Create(ctx, ordersdb.Placement{Order: o, PaymentToken: "tok", Key: key, RequestHash: "h", Lease: time.Minute}); err != nil {
			t.Fatal(err)
		}
		return o
	}
	replaysPending := func(key string, o orders.Order) {
		t.Helper()
		r, err := store.CheckKey(ctx, user, key, "h", 0)
		if err != nil || r == nil || !r.Replayed || r.Order.ID != o.ID || r.Order.Status != orders.Pending || r.Detail != "" {
			t.Fatalf("key %s: %+v %v, want the pending order replayed", key, r, err)
		}
	}
	waits := func(key string) {
		t.Helper()
		if _, err := store.CheckKey(ctx, user, key, "h", 100*time.Millisecond); err != ordersdb.ErrKeyInProgress {
			t.Fatalf("key %s under a live lease: %v, want ErrKeyInProgress", key, err)
		}
	}

	released := create("released")
	waits("released")
	if err := store.ReleaseLease(ctx, released.ID); err != nil {
		t.Fatal(err)
	}
	replaysPending("released", released)

	ranOut := create("ran-out")
	if _, err := pool.Exec(ctx, `UPDATE order_sagas SET lease_until = now() - interval '1 second' WHERE order_id = $1`, ranOut.ID); err != nil {
		t.Fatal(err)
	}
	replaysPending("ran-out", ranOut)

	// Recovery's claim (attempts > 0, its lease live) drives the order, but
	// no request does: the key replays the pending order. ReleaseLease
	// leaves the claim's lease alone.
	claimed := create("claimed")
	if _, err := pool.Exec(ctx, `UPDATE order_sagas SET attempts = 1 WHERE order_id = $1`, claimed.ID); err != nil {
		t.Fatal(err)
	}
	if err := store.ReleaseLease(ctx, claimed.ID); err != nil {
		t.Fatal(err)
	}
	var live bool
	if err := pool.QueryRow(ctx, `SELECT lease_until > now() FROM order_sagas WHERE order_id = $1`, claimed.ID).Scan(&live); err != nil || !live {
		t.Fatalf("ReleaseLease ended a recovery's claim (%v)", err)
	}
	replaysPending("claimed", claimed)

	if _, err := store.Update(ctx, released.ID, func(o *orders.Order) (orders.Change, error) { return o.Confirm(time.Now()) }); err != nil {
		t.Fatal(err)
	}
	if r, err := store.CheckKey(ctx, user, "released", "h", 0); err != nil || r == nil || !r.Replayed || r.Order.Status != orders.Confirmed {
		t.Fatalf("ended: %+v %v, want the confirmed order replayed", r, err)
	}
}

// RenewLease extends the lease a request's Create wrote, never shortening it,
// while the order is pending and no recovery run has claimed it; once either
// happened the lease is no longer the request's: nothing is changed, and the
// request is told so.
func TestOnlyTheRequestThatWroteALeaseRenewsIt(t *testing.T) {
	pool := pgtest.Open(t, ordersdb.Migrations())
	store := ordersdb.New(pool)
	ctx := context.Background()
	user := uuid.New()
	left := func(id uuid.UUID) time.Duration {
		t.Helper()
		var s float64
		if err := pool.QueryRow(ctx, `SELECT extract(epoch FROM lease_until - now())::float8 FROM order_sagas WHERE order_id = $1`, id).Scan(&s); err != nil {
			t.Fatal(err)
		}
		return time.Duration(s * float64(time.Second))
	}
	renew := func(id uuid.UUID, lease time.Duration, want bool) {
		t.Helper()
		if kept, err := store.RenewLease(ctx, id, lease); err != nil || kept != want {
			t.Fatalf("renew %s: %v %v, want %v", lease, kept, err, want)
		}
	}
	create := func() orders.Order {
		t.Helper()
		o := newOrder(t, user)
		if err := store.Create(ctx, ordersdb.Placement{Order: o, PaymentToken: "tok", Lease: time.Second}); err != nil {
			t.Fatal(err)
		}
		return o
	}

	running := create()
	renew(running.ID, time.Hour, true)
	if l := left(running.ID); l < 59*time.Minute {
		t.Fatalf("renewed for an hour: %s left", l)
	}
	renew(running.ID, time.Second, true) // still the request's; a shorter renewal shortens nothing
	if l := left(running.ID); l < 59*time.Minute {
		t.Fatalf("renewed for a second after an hour: %s left, want the hour kept", l)
	}

	claimed := create()
	if _, err := pool.Exec(ctx, `UPDATE order_sagas SET attempts = 1 WHERE order_id = $1`, claimed.ID); err != nil {
		t.Fatal(err)
	}
	renew(claimed.ID, time.Hour, false)
	if l := left(claimed.ID); l > 2*time.Second {
		t.Fatalf("a lease recovery claimed was renewed by the request: %s left", l)
	}

	ended := create()
	if _, err := store.Update(ctx, ended.ID, func(o *orders.Order) (orders.Change, error) { return o.Confirm(time.Now()) }); err != nil {
		t.Fatal(err)
	}
	renew(ended.ID, time.Hour, false)
	if l := left(ended.ID); l > 0 {
		t.Fatalf("the lease of a confirmed order was renewed: %s left", l)
	}
}

// A recovery run's claim is renewed only by that run: RenewClaim extends it
// (never shortening it) while the saga's count of claims is still the
// claim's, and refuses, changing nothing, once another run claimed the order
// after the first claim ran out — fencing, so a run that lost its claim
// cannot extend the claim of the run that took the order. A run's skip list
// keeps it from claiming again the orders it drove.
func TestOnlyTheRunThatHoldsAClaimRenewsIt(t *testing.T) {
	pool := pgtest.Open(t, ordersdb.Migrations())
	store := ordersdb.New(pool)
	ctx := context.Background()
	o := newOrder(t, uuid.New())
	if err := store.Create(ctx, ordersdb.Placement{Order: o, PaymentToken: "tok", Lease: time.Second}); err != nil {
		t.Fatal(err)
	}
	runOut := func() {
		t.Helper()
		if _, err := pool.Exec(ctx, `UPDATE orders SET created_at = now() - interval '1 hour';
			UPDATE order_sagas SET lease_until = now() - interval '1 second'`); err != nil {
			t.Fatal(err)
		}
	}
	left := func() time.Duration {
		t.Helper()
		var s float64
		if err := pool.QueryRow(ctx, `SELECT extract(epoch FROM lease_until - now())::float8 FROM order_sagas WHERE order_id = $1`, o.ID).Scan(&s); err != nil {
			t.Fatal(err)
		}
		return time.Duration(s * float64(time.Second))
	}
	claim := func(skip []uuid.UUID) []ordersdb.Claim {
		t.Helper()
		claims, err := store.ClaimStale(ctx, time.Minute, time.Second, 10, skip)
		if err != nil {
			t.Fatal(err)
		}
		return claims
	}
	renew := func(c ordersdb.Claim, lease time.Duration, want bool) {
		t.Helper()
		if kept, err := store.RenewClaim(ctx, c.OrderID, c.Attempts, lease); err != nil || kept != want {
			t.Fatalf("renew the claim of attempt %d for %s: %v %v, want %v", c.Attempts, lease, kept, err, want)
		}
	}

	runOut()
	if claims := claim([]uuid.UUID{o.ID}); len(claims) != 0 {
		t.Fatalf("claimed %+v, an order the run asked to skip", claims)
	}
	first := claim(nil)
	if len(first) != 1 || first[0].OrderID != o.ID || first[0].Attempts != 1 {
		t.Fatalf("first claim %+v, want the order's, attempt 1", first)
	}
	renew(first[0], time.Hour, true)
	if l := left(); l < 59*time.Minute {
		t.Fatalf("renewed for an hour: %s left", l)
	}
	renew(first[0], time.Second, true) // still the run's: a shorter renewal shortens nothing
	if l := left(); l < 59*time.Minute {
		t.Fatalf("renewed for a second after an hour: %s left, want the hour kept", l)
	}

	// The first run's claim runs out (its renewals stopped reaching the
	// database), and another run claims the order.
	runOut()
	second := claim(nil)
	if len(second) != 1 || second[0].Attempts != 2 {
		t.Fatalf("second claim %+v, want attempt 2", second)
	}
	renew(first[0], time.Hour, false)
	if l := left(); l > 2*time.Second {
		t.Fatalf("the first run extended the second run's claim: %s left", l)
	}
	renew(second[0], time.Hour, true)
	if l := left(); l < 59*time.Minute {
		t.Fatalf("the second run renewed its claim for an hour: %s left", l)
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
	// Update begins its transaction in its first batch: a refused decision or
	// an unknown order must still roll back and give the connection back.
	time.Sleep(50 * time.Millisecond) // the pool releases connections asynchronously
	if n := pool.Stat().AcquiredConns(); n != 0 {
		t.Fatalf("%d connections still acquired after refused updates, want 0", n)
	}
	got, err := store.Get(ctx, o.ID)
	if err != nil || got.Status != orders.Confirmed || len(got.Items) != 1 {
		t.Fatalf("order %+v %v", got, err)
	}
}

// A page of orders costs two round trips whatever its size (the orders, then
// the lines of all of them), and each order comes back with its own lines,
// as Get reads them; recovery's LoadSaga is one round trip.
func TestListAndLoadSagaRoundTrips(t *testing.T) {
	pool := pgtest.Open(t, ordersdb.Migrations())
	ctx := context.Background()
	user := uuid.New()
	for i := range 5 {
		o := newOrder(t, user)
		o.Items = append(o.Items, orders.Line{ProductID: uuid.Must(uuid.NewV7()), Quantity: i + 1,
			UnitPrice: orders.Money{Amount: int64(100 * (i + 1)), Currency: "USD"}})
		if err := ordersdb.New(pool).Create(ctx, ordersdb.Placement{Order: o, PaymentToken: "tok", Lease: time.Minute}); err != nil {
			t.Fatal(err)
		}
	}
	if err := ordersdb.New(pool).Create(ctx, ordersdb.Placement{Order: newOrder(t, uuid.New()), PaymentToken: "tok", Lease: time.Minute}); err != nil {
		t.Fatal(err) // another user's order, never listed
	}
	counted, trips := pgtest.Counted(t, pool)
	store := ordersdb.New(counted)

	page, next, err := store.List(ctx, user, uuid.Nil, 4)
	if err != nil || len(page) != 4 || next == uuid.Nil {
		t.Fatalf("first page: %d orders, next %v, %v", len(page), next, err)
	}
	if c := trips.Counts(); c.Trips != 2 {
		t.Errorf("a page of 4 orders: %d round trips, want 2", c.Trips)
	}
	rest, next, err := store.List(ctx, user, next, 4)
	if err != nil || len(rest) != 1 || next != uuid.Nil {
		t.Fatalf("second page: %d orders, next %v, %v", len(rest), next, err)
	}
	for _, o := range append(page, rest...) {
		want, err := store.Get(ctx, o.ID)
		if err != nil {
			t.Fatal(err)
		}
		if o.UserID != user || len(o.Items) != 2 || fmt.Sprint(o.Items) != fmt.Sprint(want.Items) {
			t.Errorf("order %s listed with lines %v, Get reads %v", o.ID, o.Items, want.Items)
		}
	}

	trips.Reset()
	sg, err := store.LoadSaga(ctx, page[0].ID)
	if err != nil || sg.PaymentToken != "tok" || fmt.Sprint(sg.Order.Items) != fmt.Sprint(page[0].Items) {
		t.Fatalf("LoadSaga: %+v, %v", sg, err)
	}
	if c := trips.Counts(); c.Trips != 1 {
		t.Errorf("LoadSaga: %d round trips, want 1", c.Trips)
	}
}

// A page of a customer's orders reads its own rows (and the one that says
// more follow) through orders_by_user, from the cursor on, however many newer
// orders the customer has and whatever plan PostgreSQL keeps for the
// statement: the generic plan it may cache on a session after five runs
// included. Until 2026-12-07 one statement served the first page and every
// next one, and its condition ($2 IS NULL OR id < $2) cannot start a generic
// plan's index scan at the cursor: a page deep in a long history read every
// newer order of the customer first.
func TestAListPageReadsItsOwnRowsOnly(t *testing.T) {
	pool := pgtest.Open(t, ordersdb.Migrations())
	ctx := context.Background()
	user := uuid.New()
	const history = 3000
	if _, err := pool.Exec(ctx, `INSERT INTO orders (id, user_id, status, total_amount, currency, shipping_address, created_at, updated_at)
		SELECT gen_random_uuid(), CASE WHEN n % 2 = 0 THEN $1 ELSE gen_random_uuid() END, 'confirmed', 100, 'USD',
		       '{}', now(), now()
		FROM generate_series(1, 2 * $2::int) n`, user, history); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `ANALYZE orders`); err != nil {
		t.Fatal(err)
	}
	var cursor uuid.UUID // near the end of the customer's history
	if err := pool.QueryRow(ctx, `SELECT id FROM orders WHERE user_id = $1 ORDER BY id DESC OFFSET $2 LIMIT 1`,
		user, history-50).Scan(&cursor); err != nil {
		t.Fatal(err)
	}
	const limit = 20
	for _, mode := range pgtest.PlanModes {
		for _, before := range []uuid.UUID{uuid.Nil, cursor} {
			t.Run(fmt.Sprintf("%s/cursor=%v", mode, before != uuid.Nil), func(t *testing.T) {
				var page []orders.Order
				var next uuid.UUID
				read := pgtest.RowsReadUnder(t, pool, mode, "orders", func(tx pgx.Tx) {
					var err error
					if page, next, err = ordersdb.ListIn(ctx, tx, user, before, limit); err != nil {
						t.Fatal(err)
					}
				})
				t.Logf("a page of %d of the customer's %d orders read %d orders", len(page), history, read)
				if len(page) != limit || next != page[limit-1].ID || (before != uuid.Nil && page[0].ID.String() >= before.String()) {
					t.Fatalf("a page of %d orders, next %v: want %d orders after the cursor and a next cursor", len(page), next, limit)
				}
				if read > 2*limit {
					t.Errorf("a page of %d orders read %d orders; want the page's and the next one's (at most %d)", limit, read, 2*limit)
				}
			})
		}
	}
}

// Update sends its writes and COMMIT in one batch. When a statement of that
// batch fails, PostgreSQL skips the rest, COMMIT included: Update reports the
// failure (fault.Unavailable), nothing of the batch is written — not the notes
// before the failing statement either — no session stays in a transaction,
// and the connection is rolled back and reused rather than thrown away.
func TestUpdateWhoseWritesFailWritesNothing(t *testing.T) {
	pool := pgtest.Open(t, ordersdb.Migrations())
	ctx := context.Background()
	o := orderstest.Seed(t, ordersdb.New(pool), uuid.New(), orders.Pending)
	// The outbox row comes after the note, the order's and the saga's
	// updates and the confirmation's own note in Update's batch.
	if _, err := pool.Exec(ctx, `CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS
		$$BEGIN RAISE EXCEPTION 'refused by the test'; END$$;
		CREATE TRIGGER refuse BEFORE INSERT ON outbox FOR EACH ROW EXECUTE FUNCTION refuse()`); err != nil {
		t.Fatal(err)
	}
	counted, _ := pgtest.Counted(t, pool)
	store := ordersdb.New(counted)
	conns := counted.Stat().NewConnsCount()
	confirm := func(o *orders.Order) (orders.Change, error) { return o.Confirm(time.Now()) }
	note := ordersdb.Note{Step: orders.StepCommit, Outcome: orders.StepOK}

	if _, err := store.Update(ctx, o.ID, confirm, note); fault.KindOf(err) != fault.Unavailable {
		t.Fatalf("update whose outbox insert fails: %v, want unavailable", err)
	}
	var status string
	var events, outboxRows, inTx int
	if err := pool.QueryRow(ctx, `SELECT o.status, (SELECT count(*) FROM order_events e WHERE e.order_id = o.id),
		(SELECT count(*) FROM outbox),
		(SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND state LIKE 'idle in transaction%')
		FROM orders o WHERE o.id = $1`, o.ID).Scan(&status, &events, &outboxRows, &inTx); err != nil {
		t.Fatal(err)
	}
	if status != string(orders.Pending) || events != 1 || outboxRows != 0 || inTx != 0 {
		t.Fatalf("after the failed update: status %s, %d timeline entries (want 1: order.created), %d outbox rows, %d sessions in a transaction",
			status, events, outboxRows, inTx)
	}
	if _, err := pool.Exec(ctx, `DROP TRIGGER refuse ON outbox`); err != nil {
		t.Fatal(err)
	}
	got, err := store.Update(ctx, o.ID, confirm, note)
	if err != nil || got.Status != orders.Confirmed {
		t.Fatalf("update after the trigger is gone: %+v %v", got, err)
	}
	if n := counted.Stat().NewConnsCount() - conns; n != 0 {
		t.Errorf("%d new connections: the failed update's connection was closed instead of rolled back", n)
	}
}

// UpdateKnown decides on the order the caller holds and writes the decision
// in one round trip and one commit, as Update would have written it. When the
// order changed since the caller read it, the batch's assertion fails,
// nothing of it is written, and the decision is made again on the order as
// stored (Update): a stale pending order is never confirmed or failed twice,
// and a confirmed one is never failed. The connection is rolled back and
// reused, not thrown away.
func TestUpdateKnown(t *testing.T) {
	pool := pgtest.Open(t, ordersdb.Migrations())
	ctx := context.Background()
	counted, rt := pgtest.Counted(t, pool)
	store := ordersdb.New(counted)
	confirm := func(o *orders.Order) (orders.Change, error) { return o.Confirm(time.Now()) }
	fail := func(o *orders.Order) (orders.Change, error) {
		return o.Fail(orders.Failure{Status: orders.PaymentFailed, Reason: orders.ReasonPaymentDeclined, Detail: "declined"}, time.Now())
	}
	note := ordersdb.Note{Step: orders.StepCharge, Outcome: orders.StepOK}
	count := func(id uuid.UUID) (status string, timeline, events int) {
		t.Helper()
		if err := pool.QueryRow(ctx, `SELECT o.status, (SELECT count(*) FROM order_events e WHERE e.order_id = o.id),
			(SELECT count(*) FROM outbox WHERE subject = o.id::text) FROM orders o WHERE o.id = $1`, id).
			Scan(&status, &timeline, &events); err != nil {
			t.Fatal(err)
		}
		return status, timeline, events
	}

	o := newOrder(t, uuid.New())
	if err := store.Create(ctx, ordersdb.Placement{Order: o, PaymentToken: "tok", Key: "k", RequestHash: "h", Lease: time.Minute}); err != nil {
		t.Fatal(err)
	}
	rt.Reset()
	got, err := store.UpdateKnown(ctx, o, confirm, note)
	if err != nil || got.Status != orders.Confirmed {
		t.Fatalf("confirm the known order: %+v %v", got, err)
	}
	if c := rt.Counts(); c.Trips != 1 || c.Commits != 1 {
		t.Errorf("confirm the known order: %+v, want 1 round trip and 1 commit", c)
	}
	stored, err := store.Get(ctx, o.ID)
	if err != nil || fmt.Sprint(stored) != fmt.Sprint(got) {
		t.Fatalf("stored %+v (%v), answered %+v", stored, err, got)
	}
	// created, the note, confirmed, the event's "recorded"; one event.
	if st, tl, ev := count(o.ID); st != string(orders.Confirmed) || tl != 4 || ev != 1 {
		t.Fatalf("after the confirmation: %s, %d timeline entries, %d events; want confirmed, 4, 1", st, tl, ev)
	}
	settled, err := store.CheckKey(ctx, o.UserID, "k", "h", 0)
	if err != nil || settled == nil || settled.Order.Status != orders.Confirmed {
		t.Fatalf("the key is not settled with the confirmation: %+v %v", settled, err)
	}

	// The order as the caller last saw it is stale: another driver confirmed it.
	conns := counted.Stat().NewConnsCount()
	for _, c := range []struct {
		name   string
		decide func(*orders.Order) (orders.Change, error)
		ok     bool
	}{{"confirm", confirm, true}, {"fail", fail, false}} {
		rt.Reset()
		got, err := store.UpdateKnown(ctx, o, c.decide, note)
		if c.ok && (err != nil || got.Status != orders.Confirmed) {
			t.Errorf("%s a stale order: %+v %v, want it confirmed as stored", c.name, got, err)
		}
		if !c.ok && !fault.Is(err, fault.Conflict, fault.CodeInvalidTransition) {
			t.Errorf("%s a stale order: %+v %v, want invalid_transition", c.name, got, err)
		}
		if st, tl, ev := count(o.ID); st != string(orders.Confirmed) || tl > 5 || ev != 1 {
			t.Errorf("after %s of a stale order: %s, %d timeline entries, %d events; want confirmed, at most 5 (the note), 1",
				c.name, st, tl, ev)
		}
		// The counter counts the COMMIT the failed batch carried, which
		// PostgreSQL skipped (the state above shows nothing of it written).
		if cnt := rt.Counts(); cnt.Commits > 2 || cnt.Trips > 4 {
			t.Errorf("%s of a stale order: %+v, want the failed batch and its ROLLBACK, then Update (at most 4 round trips)", c.name, cnt)
		}
	}
	if n := counted.Stat().NewConnsCount() - conns; n != 0 {
		t.Errorf("%d new connections: a failed assertion's connection was closed instead of rolled back", n)
	}
	var inTx int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity
		WHERE datname = current_database() AND state LIKE 'idle in transaction%'`).Scan(&inTx); err != nil || inTx != 0 {
		t.Fatalf("%d sessions left in a transaction (%v)", inTx, err)
	}
}

// The recovery's claim, run every minute, reads the open sagas, not every
// order ever placed: among 6,000 finished orders (their sagas written with a
// payment token, then cleared, as a checkout leaves them), it takes the two
// pending orders left past RecoverAfter and the order still owing a refund
// (their leases ended at one moment: oldest first; that the least recently
// tried comes first is the saga's TestRecoveryTakesTurnsAmongTheOrdersItCannotFinish),
// then the confirmed cart order still owing its cart removal
// (older than them), and leaves the young pending order and the ones whose
// lease still runs. On a table never analyzed (this machine runs with autovacuum
// off) and on one analyzed.
func TestClaimStaleReadsTheOpenSagasOnly(t *testing.T) {
	for _, analyzed := range []bool{false, true} {
		t.Run(fmt.Sprintf("analyzed=%v", analyzed), func(t *testing.T) {
			pool := pgtest.Open(t, ordersdb.Migrations())
			ctx := context.Background()
			const finished = 6000
			owed, stale1, stale2, young, leased := uuid.New(), uuid.New(), uuid.New(), uuid.New(), uuid.New()
			cartOwed, cartLeased := uuid.New(), uuid.New()
			_, err := pool.Exec(ctx, `
				INSERT INTO orders (id, user_id, status, total_amount, currency, shipping_address, created_at, updated_at)
				SELECT gen_random_uuid(), gen_random_uuid(), CASE WHEN n % 10 = 0 THEN 'cancelled' ELSE 'confirmed' END,
				       100, 'USD', '{}', now() - interval '3 days' + n * interval '1 second', now() - interval '2 days'
				FROM generate_series(1, $1::int) n;
				INSERT INTO order_sagas (order_id, payment_token, lease_until) SELECT id, 'tok_visa', now() FROM orders;
				UPDATE order_sagas s SET payment_token = NULL, lease_until = o.updated_at,
				       compensation = CASE WHEN o.status = 'cancelled' THEN 'done' ELSE '' END
				FROM orders o WHERE o.id = s.order_id;
				INSERT INTO orders (id, user_id, status, total_amount, currency, shipping_address, created_at, updated_at)
				VALUES ($2, gen_random_uuid(), 'cancelled', 100, 'USD', '{}', now() - interval '3 hours', now() - interval '3 hours'),
				       ($3, gen_random_uuid(), 'pending', 100, 'USD', '{}', now() - interval '2 hours', now() - interval '2 hours'),
				       ($4, gen_random_uuid(), 'pending', 100, 'USD', '{}', now() - interval '1 hour', now() - interval '1 hour'),
				       ($5, gen_random_uuid(), 'pending', 100, 'USD', '{}', now() - interval '10 seconds', now()),
				       ($6, gen_random_uuid(), 'pending', 100, 'USD', '{}', now() - interval '4 hours', now());
				INSERT INTO order_sagas (order_id, payment_token, compensation, lease_until)
				VALUES ($2, NULL, 'pending', now() - interval '1 minute'), ($3, 'tok_visa', '', now() - interval '1 minute'),
				       ($4, 'tok_visa', '', now() - interval '1 minute'), ($5, 'tok_visa', '', now() - interval '1 second'),
				       ($6, 'tok_visa', '', now() + interval '1 minute');
				INSERT INTO orders (id, user_id, status, total_amount, currency, shipping_address, created_at, updated_at)
				VALUES ($7, gen_random_uuid(), 'confirmed', 100, 'USD', '{}', now() - interval '6 hours', now() - interval '6 hours'),
				       ($8, gen_random_uuid(), 'confirmed', 100, 'USD', '{}', now() - interval '5 hours', now());
				INSERT INTO order_sagas (order_id, from_cart, cart_owed, lease_until)
				VALUES ($7, true, true, now() - interval '1 second'), ($8, true, true, now() + interval '1 minute')`,
				pgx.QueryExecModeSimpleProtocol, finished, owed.String(), stale1.String(), stale2.String(), young.String(), leased.String(),
				cartOwed.String(), cartLeased.String())
			if err != nil {
				t.Fatal(err)
			}
			if analyzed {
				if _, err := pool.Exec(ctx, `ANALYZE orders, order_sagas`); err != nil {
					t.Fatal(err)
				}
			}

			tx, err := pool.Begin(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer tx.Rollback(ctx) //nolint:errcheck
			orders0, sagas0 := pgtest.RowsRead(t, tx, "orders"), pgtest.RowsRead(t, tx, "order_sagas")
			claims, err := ordersdb.ClaimStaleIn(ctx, tx, 10*time.Minute, time.Minute, 10, nil)
			if err != nil {
				t.Fatal(err)
			}
			var ids []uuid.UUID
			for _, c := range claims {
				ids = append(ids, c.OrderID)
			}
			ordersRead, sagasRead := pgtest.RowsRead(t, tx, "orders")-orders0, pgtest.RowsRead(t, tx, "order_sagas")-sagas0
			t.Logf("claimed %d of %d orders, reading %d orders and %d sagas", len(ids), finished+7, ordersRead, sagasRead)
			// The confirmed cart order still owing its cart removal is taken
			// once its lease has run out, after the orders that owe money,
			// though it is older.
			if diff := cmp.Diff([]uuid.UUID{owed, stale1, stale2, cartOwed}, ids); diff != "" {
				t.Errorf("claimed (-want +got):\n%s", diff)
			}
			// The five sagas whose lease ran out, their orders, and the four
			// leases written: a scan reads the 6,007 of each.
			if ordersRead > 20 || sagasRead > 20 {
				t.Errorf("the claim read %d orders and %d sagas; want the open ones only (20 at most of each)", ordersRead, sagasRead)
			}
		})
	}
}

// Expired keys are purged in batches of postgres.DeleteBatch, each its own
// commit, so a backlog holds its locks one batch at a time and what a purge
// deleted before its run's deadline stays deleted; a key still valid stays.
// Until 2026-12-03 one DELETE took the whole backlog.
func TestPurgeKeysDeletesInBatches(t *testing.T) {
	pool := pgtest.Open(t, ordersdb.Migrations())
	counted, rt := pgtest.Counted(t, pool)
	store := ordersdb.New(counted)
	ctx := context.Background()
	const n = 2*postgres.DeleteBatch + 7
	if _, err := pool.Exec(ctx, `INSERT INTO idempotency_keys (user_id, key, request_hash, expires_at)
		SELECT gen_random_uuid(), 'k', 'h', now() - interval '1 hour' - i * interval '1 second' FROM generate_series(1, $1::int) i;
		INSERT INTO idempotency_keys (user_id, key, request_hash, expires_at) VALUES (gen_random_uuid(), 'kept', 'h', now() + interval '1 hour')`,
		pgx.QueryExecModeSimpleProtocol, n); err != nil {
		t.Fatal(err)
	}
	rt.Reset()
	deleted, err := store.PurgeKeys(ctx)
	if err != nil || deleted != n {
		t.Fatalf("PurgeKeys = %d, %v; want %d deleted", deleted, err, n)
	}
	if c := rt.Counts(); c.Commits != 3 {
		t.Errorf("the purge committed %d times, want 3 (batches of %d, %d and 7)", c.Commits, postgres.DeleteBatch, postgres.DeleteBatch)
	}
	var left []string
	if err := pool.QueryRow(ctx, `SELECT array_agg(key) FROM idempotency_keys`).Scan(&left); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"kept"}, left); diff != "" {
		t.Errorf("keys left (-want +got):\n%s", diff)
	}
}

// A timeline is read in pages of seq > the cursor, so an order's entries must
// commit in seq order: an entry that commits after a later one was read
// would be skipped by a client following next_cursor. Every writer of an
// order's entries locks the order's row before drawing their seq: here a
// writer that holds the row (FOR UPDATE as Update's locked read, FOR NO KEY
// UPDATE as UpdateKnown's UPDATE) writes and commits its entry while Record
// waits; Record's entry then comes after it. Until 2026-12-04 Record drew its
// seq first and waited only in its foreign-key check (on FOR UPDATE; not at
// all on FOR NO KEY UPDATE): its entry could commit after a later one.
func TestTimelineEntriesCommitInSeqOrder(t *testing.T) {
	pool := pgtest.Open(t, ordersdb.Migrations())
	store := ordersdb.New(pool)
	ctx := context.Background()
	for _, lock := range []string{"FOR UPDATE", "FOR NO KEY UPDATE"} {
		o := orderstest.Seed(t, store, uuid.New(), orders.Confirmed)
		tx, err := pool.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var holder int
		if err := tx.QueryRow(ctx, `SELECT pg_backend_pid() FROM orders WHERE id = $1 `+lock, o.ID).Scan(&holder); err != nil {
			t.Fatal(err)
		}
		recorded := make(chan error, 1)
		go func() {
			recorded <- store.Record(ctx, o.ID, ordersdb.Note{Step: orders.StepCart, Outcome: orders.StepOK, Detail: "recorded"})
		}()
		// Wait until Record waits for the row's holder.
		deadline := time.Now().Add(5 * time.Second)
		for waiting := 0; waiting == 0; {
			if time.Now().After(deadline) {
				_ = tx.Rollback(ctx)
				t.Fatalf("%s: Record never waited for the order's row", lock)
			}
			if err := pool.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE $1 = ANY (pg_blocking_pids(pid))`,
				holder).Scan(&waiting); err != nil {
				t.Fatal(err)
			}
			time.Sleep(10 * time.Millisecond)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO order_events (order_id, step, outcome, detail) VALUES ($1, $2, $3, 'locked writer')`,
			o.ID, orders.StepCancelled, orders.StepOK); err != nil {
			t.Fatal(err)
		}
		if err := tx.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		if err := <-recorded; err != nil {
			t.Fatal(err)
		}
		steps, _, err := store.Timeline(ctx, o.ID, 0, 100)
		if err != nil {
			t.Fatal(err)
		}
		var details []string
		for _, st := range steps {
			if st.Detail == "recorded" || st.Detail == "locked writer" {
				details = append(details, st.Detail)
			}
		}
		if want := []string{"locked writer", "recorded"}; !cmp.Equal(details, want) {
			t.Errorf("%s: timeline in seq order %v, want %v (commit order)", lock, details, want)
		}
	}
}

// Two runs that each took a confirmed cart order's lines out of its cart
// (the first's claim lost just after it checked it) both flush the removal:
// only the one whose write settles it writes the cart's entries, so the
// timeline says once that the lines were taken out. The other's own entries
// are written.
func TestOnlyTheRunThatSettlesTheCartRemovalNotesIt(t *testing.T) {
	pool := pgtest.Open(t, ordersdb.Migrations())
	store := ordersdb.New(pool)
	ctx := context.Background()
	o := newOrder(t, uuid.New())
	if err := store.Create(ctx, ordersdb.Placement{Order: o, PaymentToken: "tok_visa", FromCart: true, Lease: time.Hour}); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `UPDATE order_sagas SET cart_owed = true WHERE order_id = $1`, o.ID); err != nil {
		t.Fatal(err)
	}
	for run := range 2 {
		own := ordersdb.Note{At: time.Now(), Step: orders.StepRecovery, Outcome: orders.StepOK, Detail: fmt.Sprintf("run %d", run)}
		cart := ordersdb.Note{At: time.Now(), Step: orders.StepCart, Outcome: orders.StepOK, Detail: "the ordered lines were taken out of the cart"}
		if err := store.RecordCartSettled(ctx, o.ID, []ordersdb.Note{cart}, own); err != nil {
			t.Fatal(err)
		}
	}
	steps, _, err := store.Timeline(ctx, o.ID, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, s := range steps {
		if s.Step == orders.StepCart || s.Step == orders.StepRecovery {
			got = append(got, s.Step+": "+s.Detail)
		}
	}
	want := []string{orders.StepRecovery + ": run 0", orders.StepCart + ": the ordered lines were taken out of the cart", orders.StepRecovery + ": run 1"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("timeline (-want +got):\n%s", diff)
	}
	var owed bool
	if err := pool.QueryRow(ctx, `SELECT cart_owed FROM order_sagas WHERE order_id = $1`, o.ID).Scan(&owed); err != nil {
		t.Fatal(err)
	}
	if owed {
		t.Error("the cart removal is still owed")
	}
}
