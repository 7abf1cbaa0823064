package saga_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/shopfaas/shop/internal/auth"
	"github.com/shopfaas/shop/internal/cart"
	"github.com/shopfaas/shop/internal/cart/cartredis"
	"github.com/shopfaas/shop/internal/cart/cartredis/cartredistest"
	"github.com/shopfaas/shop/internal/catalogclient"
	"github.com/shopfaas/shop/internal/catalogclient/catalogtest"
	"github.com/shopfaas/shop/internal/fault"
	"github.com/shopfaas/shop/internal/orders"
	"github.com/shopfaas/shop/internal/orders/ordersdb"
	"github.com/shopfaas/shop/internal/orders/ordersgw"
	"github.com/shopfaas/shop/internal/orders/orderstest"
	"github.com/shopfaas/shop/internal/orders/saga"
	"github.com/shopfaas/shop/internal/postgres/pgtest"
	"github.com/shopfaas/shop/internal/telemetry"
)

type env struct {
	saga    *saga.Saga
	store   *ordersdb.Store
	pool    *pgxpool.Pool
	svc     *orderstest.Server
	catalog *catalogtest.Server
	product catalogclient.Product
	user    auth.Identity
	cfg     saga.Config
}

// setup gives a saga over a fresh orders database, the internal contracts
// served over HTTP, and one product priced 12.99 USD with 5 units in stock.
func setup(t *testing.T, mod func(*saga.Config)) *env {
	t.Helper()
	pool := pgtest.Open(t, ordersdb.Migrations())
	e := &env{pool: pool, store: ordersdb.New(pool), svc: orderstest.New(t), catalog: catalogtest.New(t),
		user: auth.Identity{UserID: uuid.Must(uuid.NewV7()), Role: auth.RoleCustomer}}
	e.product = e.catalog.Add("SKU-1", 1299, "USD")
	e.svc.SetStock(e.product.ID, 5)
	gw, err := ordersgw.New(e.svc.URL, orderstest.Token, nil, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	cfg := saga.Config{Store: e.store, Stock: gw, Payments: gw, Catalog: e.catalog.Client(t),
		Timeout: 10 * time.Second, Backoff: 20 * time.Millisecond, RecoverAfter: time.Minute}
	if mod != nil {
		mod(&cfg)
	}
	e.cfg = cfg
	e.saga, err = saga.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func (e *env) request(qty int, token string) orders.PlaceRequest {
	return orders.PlaceRequest{
		Items:           []orders.ItemRequest{{ProductID: e.product.ID, Quantity: qty}},
		ShippingAddress: orders.Address{Name: "Ada", Line1: "1 Loop Rd", City: "Springfield", PostalCode: "12345", Country: "US"},
		Payment:         orders.PaymentMethod{Token: token},
	}
}

// same fails unless a and b are the same checkout result: the same order as
// answered and the same detail (create-order renders them into the same bytes).
func same(t *testing.T, a, b orders.Checkout) {
	t.Helper()
	if diff := cmp.Diff(a, b, cmpopts.IgnoreFields(orders.Checkout{}, "Replayed")); diff != "" {
		t.Fatalf("checkouts differ (-a +b):\n%s", diff)
	}
}

func (e *env) count(t *testing.T, sql string, args ...any) int {
	t.Helper()
	var n int
	if err := e.pool.QueryRow(context.Background(), sql, args...).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func (e *env) steps(t *testing.T, id uuid.UUID) []string {
	t.Helper()
	tl, _, err := e.store.Timeline(context.Background(), id, 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, s := range tl {
		out = append(out, s.Step+":"+s.Outcome)
	}
	return out
}

func TestPlaceConfirmsAndRecordsEveryStep(t *testing.T) {
	e := setup(t, nil)
	res, err := e.saga.Place(context.Background(), e.user, e.request(2, "tok_visa"), "")
	if err != nil {
		t.Fatal(err)
	}
	if res.Outcome() != orders.OutcomeConfirmed {
		t.Fatalf("outcome %s: %+v", res.Outcome(), res)
	}
	v := res.Order.View()
	if v.Status != orders.Confirmed || v.Total != (orders.Money{Amount: 2598, Currency: "USD"}) ||
		len(v.Items) != 1 || v.Items[0].UnitPrice.Amount != 1299 {
		t.Fatalf("order %+v", v)
	}
	// The hold stays held: the sweep (expire-reservations) turns it into a
	// sale later; commit-stock is not part of the checkout.
	if onHand, reserved := e.svc.Stock(e.product.ID); onHand != 5 || reserved != 2 {
		t.Fatalf("stock on_hand %d reserved %d, want 5 2", onHand, reserved)
	}
	if got := e.svc.Reservation(v.ID); got != "held" {
		t.Fatalf("reservation %q after the checkout, want held", got)
	}
	if c := e.svc.Counts(); c.Commits != 0 || c.Calls["commit-stock"] != 0 || c.Calls["reserve-stock"] != 1 || c.Calls["charge-payment"] != 1 {
		t.Fatalf("calls %v, commits %d: want reserve and charge once, commit-stock never", c.Calls, c.Commits)
	}
	want := []string{"order.created:ok", "stock.reserve:ok", "payment.charge:ok",
		"order.confirmed:ok", "order.placed.v1:recorded"}
	if diff := cmp.Diff(want, e.steps(t, v.ID)); diff != "" {
		t.Fatalf("timeline (-want +got):\n%s", diff)
	}
	if n := e.count(t, `SELECT count(*) FROM outbox WHERE type = 'order.placed.v1' AND subject = $1`, v.ID.String()); n != 1 {
		t.Fatalf("%d order.placed.v1 events, want 1", n)
	}
	var tok *string
	if err := e.pool.QueryRow(context.Background(), `SELECT payment_token FROM order_sagas WHERE order_id = $1`, v.ID).Scan(&tok); err != nil || tok != nil {
		t.Fatalf("payment token kept after the saga: %v %v", tok, err)
	}
}

func TestConcurrentSameKeyPlacesOneOrder(t *testing.T) {
	e := setup(t, nil)
	e.svc.SetHook(func(fn string, _ uuid.UUID) (time.Duration, int, int) {
		if fn == "charge-payment" {
			return 300 * time.Millisecond, 0, 0
		}
		return 0, 0, 0
	})
	const n = 20
	// Each twin reserves its unit beside its write and gives it back once
	// it finds the key taken: with fewer units than twins, those holds could
	// refuse the winner out_of_stock (an undersell, see saga.Place), which
	// is not what this test is about.
	e.svc.SetStock(e.product.ID, n)
	results := make([]orders.Checkout, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], errs[i] = e.saga.Place(context.Background(), e.user, e.request(1, "tok_visa"), "key-1")
		}()
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("request %d: %v", i, errs[i])
		}
		if results[i].Outcome() != orders.OutcomeConfirmed {
			t.Fatalf("request %d: outcome %s", i, results[i].Outcome())
		}
		same(t, results[i], results[0])
	}
	if got := e.count(t, `SELECT count(*) FROM orders`); got != 1 {
		t.Fatalf("%d orders, want 1", got)
	}
	if c := e.svc.Counts(); c.Charges != 1 || c.Calls["charge-payment"] != 1 {
		t.Fatalf("charges %d, charge calls %d, want 1 and 1", c.Charges, c.Calls["charge-payment"])
	}
	// One unit held for the sweep to sell, and no twin's hold left behind.
	if onHand, reserved := e.svc.Stock(e.product.ID); onHand != n || reserved != 1 {
		t.Fatalf("stock on_hand %d reserved %d, want %d 1", onHand, reserved, n)
	}
	// A later replay answers the same, marked as a replay.
	again, err := e.saga.Place(context.Background(), e.user, e.request(1, "tok_visa"), "key-1")
	if err != nil || !again.Replayed {
		t.Fatalf("replay %+v %v", again, err)
	}
	same(t, again, results[0])
	// The key is scoped per user: another user's identical key is a new order.
	other := auth.Identity{UserID: uuid.Must(uuid.NewV7()), Role: auth.RoleCustomer}
	if res, err := e.saga.Place(context.Background(), other, e.request(1, "tok_visa"), "key-1"); err != nil || res.Replayed || res.Outcome() != orders.OutcomeConfirmed {
		t.Fatalf("other user's key: %+v %v", res, err)
	}
}

// TestConcurrentSameKeyWithShortWaitNeverPlacesTwo: N concurrent requests
// with one key while the first is still charging, and a KeyWait shorter than
// the charge: exactly one order, one charge, and every answer is that
// checkout or 409 request_in_progress — never a second order, never another
// error.
func TestConcurrentSameKeyWithShortWaitNeverPlacesTwo(t *testing.T) {
	e := setup(t, func(c *saga.Config) { c.KeyWait = 100 * time.Millisecond })
	e.svc.SetHook(func(fn string, _ uuid.UUID) (time.Duration, int, int) {
		if fn == "charge-payment" {
			return 400 * time.Millisecond, 0, 0
		}
		return 0, 0, 0
	})
	const n = 16
	// Each twin reserves its unit beside its write and gives it back once
	// it finds the key taken: with fewer units than twins, those holds could
	// refuse the winner out_of_stock (an undersell, see saga.Place), which
	// is not what this test is about.
	e.svc.SetStock(e.product.ID, n)
	results := make([]orders.Checkout, n)
	errs := make([]error, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			results[i], errs[i] = e.saga.Place(context.Background(), e.user, e.request(1, "tok_visa"), "key-short")
		}()
	}
	close(start)
	wg.Wait()
	var placed []orders.Checkout
	inProgress := 0
	for i := range n {
		switch {
		case errs[i] == nil && !results[i].Replayed:
			placed = append(placed, results[i])
		case errs[i] == nil:
			// A replay: checked against the placed checkout below.
		case fault.Is(errs[i], fault.Conflict, "request_in_progress"):
			inProgress++
		default:
			t.Fatalf("request %d: %v, want the checkout or request_in_progress", i, errs[i])
		}
	}
	if len(placed) != 1 || placed[0].Outcome() != orders.OutcomeConfirmed {
		t.Fatalf("%d requests placed an order, want 1: %+v", len(placed), placed)
	}
	for i := range n {
		if errs[i] == nil {
			same(t, results[i], placed[0])
		}
	}
	if inProgress == 0 {
		t.Errorf("no request was answered request_in_progress: the race this test is about did not happen")
	}
	if got := e.count(t, `SELECT count(*) FROM orders`); got != 1 {
		t.Fatalf("%d orders, want 1", got)
	}
	if c := e.svc.Counts(); c.Charges != 1 || c.Calls["charge-payment"] != 1 {
		t.Fatalf("charges %d, charge calls %d, want 1 and 1", c.Charges, c.Calls["charge-payment"])
	}
}

func TestSameKeyOtherBodyIsRefused(t *testing.T) {
	e := setup(t, nil)
	if _, err := e.saga.Place(context.Background(), e.user, e.request(1, "tok_visa"), "k"); err != nil {
		t.Fatal(err)
	}
	_, err := e.saga.Place(context.Background(), e.user, e.request(2, "tok_visa"), "k")
	if !fault.Is(err, fault.Conflict, "idempotency_key_reused") {
		t.Fatalf("got %v, want idempotency_key_reused", err)
	}
}

func TestSameKeyWhileRunningIsInProgress(t *testing.T) {
	e := setup(t, func(c *saga.Config) { c.KeyWait = 200 * time.Millisecond })
	charging, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	e.svc.SetHook(func(fn string, _ uuid.UUID) (time.Duration, int, int) {
		if fn == "charge-payment" {
			once.Do(func() { close(charging) })
			<-release
		}
		return 0, 0, 0
	})
	done := placeAsync(e.saga, e.user, e.request(1, "tok_visa"), "slow")
	// The first request holds the key once its order is written: its charge
	// is then in flight.
	select {
	case <-charging:
	case r := <-done:
		t.Fatalf("the first request ended before its charge: %s %v", r.res.Outcome(), r.err)
	}
	_, err := e.saga.Place(context.Background(), e.user, e.request(1, "tok_visa"), "slow")
	close(release)
	if !fault.Is(err, fault.Conflict, "request_in_progress") {
		t.Fatalf("got %v, want request_in_progress", err)
	}
	if r := <-done; r.err != nil || r.res.Outcome() != orders.OutcomeConfirmed {
		t.Fatalf("first request: outcome %s %v", r.res.Outcome(), r.err)
	}
}

// A create-order killed mid-checkout leaves its order pending under the lease
// its request wrote, which nothing renews or releases any longer; so does one
// cut off from its database, as here (the charge is made, then the request's
// pool loses the server: the confirmation, the look-up, the lease's release
// all fail, and the order stays pending). The same request asked again with
// its key is answered within its own wait (KeyWait): 202 with the pending
// order, replayed, once that lease has run out, with no second order and no
// second charge. Until 2026-12-07 the lease was the saga timeout + 10 s
// (30 s by default), and every retry in that time waited KeyWait to be
// answered 409 request_in_progress.
func TestACheckoutThatDiesFreesItsKeyWithinTheLease(t *testing.T) {
	// A 1 s lease against the default 5 s KeyWait: the default 4 s lease
	// would leave the retry's wait a margin of about a second, short on a
	// loaded machine.
	e := setup(t, func(c *saga.Config) { c.Lease = time.Second })
	s, f := e.withFaults(t)
	var died atomic.Bool
	e.svc.SetHook(func(fn string, _ uuid.UUID) (time.Duration, int, int) {
		if fn == "charge-payment" && died.CompareAndSwap(false, true) {
			f.SetDown(true)
		}
		return 0, 0, 0
	})
	ctx := context.Background()
	first, err := s.Place(ctx, e.user, e.request(1, "tok_visa"), "k")
	if !died.Load() {
		t.Fatal("the charge was never made: the test proves nothing")
	}
	if err != nil || first.Outcome() != orders.OutcomePending {
		t.Fatalf("the request that lost its database: %s %v, want pending", first.Outcome(), err)
	}
	start := time.Now()
	again, err := e.saga.Place(ctx, e.user, e.request(1, "tok_visa"), "k")
	if err != nil || !again.Replayed || again.Order.ID != first.Order.ID || again.Outcome() != orders.OutcomePending {
		t.Fatalf("asked again (answered after %s): %s %+v %v, want the pending order replayed",
			time.Since(start).Round(time.Millisecond), again.Outcome(), again.Order, err)
	}
	if n := e.count(t, `SELECT count(*) FROM orders WHERE user_id = $1`, e.user.UserID); n != 1 {
		t.Fatalf("%d orders for one key, want 1", n)
	}
	if c := e.svc.Counts(); c.Calls["charge-payment"] != 1 || c.Captures != 1 {
		t.Fatalf("%d charge calls, %d captures; want 1 and 1", c.Calls["charge-payment"], c.Captures)
	}
}

// A checkout that runs longer than its lease (Config.Lease: short, so that
// one that dies frees its key soon) keeps it while it runs: the lease is
// renewed for as long as the saga drives the order. A retry meanwhile waits
// and is answered request_in_progress, never the pending order of a checkout
// still running; the checkout then ends as it would have.
func TestALiveCheckoutKeepsItsKeyPastItsLease(t *testing.T) {
	const lease = 2 * time.Second // renewed every 667 ms, each renewal given as long
	e := setup(t, func(c *saga.Config) { c.Lease = lease; c.KeyWait = 100 * time.Millisecond })
	charging, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	e.svc.SetHook(func(fn string, _ uuid.UUID) (time.Duration, int, int) {
		if fn == "charge-payment" {
			once.Do(func() { close(charging) })
			<-release
		}
		return 0, 0, 0
	})
	done := placeAsync(e.saga, e.user, e.request(1, "tok_visa"), "slow")
	select {
	case <-charging:
	case r := <-done:
		t.Fatalf("the checkout ended before its charge: %s %v", r.res.Outcome(), r.err)
	}
	// The order was written (with a lease of its length) before its charge
	// began; wait, by the database's clock, the lease's length twice over.
	ctx := context.Background()
	e.untilDBClock(t, 2*lease)
	again, err := e.saga.Place(ctx, e.user, e.request(1, "tok_visa"), "slow")
	close(release)
	if !fault.Is(err, fault.Conflict, fault.CodeRequestInProgress) {
		t.Fatalf("asked again while the checkout runs: %s %+v %v, want request_in_progress", again.Outcome(), again.Order, err)
	}
	if r := <-done; r.err != nil || r.res.Outcome() != orders.OutcomeConfirmed {
		t.Fatalf("the checkout: %s %v, want confirmed", r.res.Outcome(), r.err)
	}
	if c := e.svc.Counts(); c.Calls["charge-payment"] != 1 || c.Captures != 1 {
		t.Fatalf("%d charge calls, %d captures; want 1 and 1", c.Calls["charge-payment"], c.Captures)
	}
}

func TestDeclineReleasesStockAndFailsOrder(t *testing.T) {
	e := setup(t, nil)
	res, err := e.saga.Place(context.Background(), e.user, e.request(2, "tok_chargeDeclined"), "d")
	if err != nil {
		t.Fatal(err)
	}
	if res.Outcome() != orders.OutcomeDeclined || res.Detail != "the payment was declined" {
		t.Fatalf("got %s %q", res.Outcome(), res.Detail)
	}
	o, err := e.store.Get(context.Background(), res.Order.ID)
	if err != nil || o.Status != orders.PaymentFailed {
		t.Fatalf("order %+v %v", o, err)
	}
	if c := e.svc.Counts(); c.Releases != 1 || c.Captures != 0 {
		t.Fatalf("releases %d captures %d, want 1 0", c.Releases, c.Captures)
	}
	if onHand, reserved := e.svc.Stock(e.product.ID); onHand != 5 || reserved != 0 {
		t.Fatalf("stock %d/%d, want 5/0", onHand, reserved)
	}
	if n := e.count(t, `SELECT count(*) FROM outbox WHERE type = 'order.payment_failed.v1'`); n != 1 {
		t.Fatalf("%d payment_failed events", n)
	}
	if n := e.count(t, `SELECT count(*) FROM order_sagas WHERE compensation = 'done'`); n != 1 {
		t.Fatalf("compensation not settled")
	}
	// The key replays the 402.
	again, err := e.saga.Place(context.Background(), e.user, e.request(2, "tok_chargeDeclined"), "d")
	if err != nil || !again.Replayed || again.Outcome() != orders.OutcomeDeclined {
		t.Fatalf("replay %+v %v", again, err)
	}
	same(t, again, res)
}

func TestOutOfStockCancelsWithReasonAndNeverCharges(t *testing.T) {
	e := setup(t, nil)
	res, err := e.saga.Place(context.Background(), e.user, e.request(6, "tok_visa"), "")
	if err != nil {
		t.Fatal(err)
	}
	if res.Outcome() != orders.OutcomeOutOfStock {
		t.Fatalf("got %s %q", res.Outcome(), res.Detail)
	}
	o, err := e.store.Get(context.Background(), res.Order.ID)
	if err != nil || o.Status != orders.Cancelled || o.Reason != orders.ReasonOutOfStock {
		t.Fatalf("order %+v %v", o, err)
	}
	if c := e.svc.Counts(); c.Calls["charge-payment"] != 0 {
		t.Fatalf("charged an order without stock")
	}
	// Its buyer is told (notify-user); update-product-stats counts nothing
	// for a cancellation of an order it never saw placed.
	e.wantOneCancellation(t, o)
}

// wantOneCancellation fails unless the outbox holds one event for order o,
// its order.cancelled.v1 carrying its buyer and its reason, for notify-user.
func (e *env) wantOneCancellation(t *testing.T, o orders.Order) {
	t.Helper()
	var typ, user, reason string
	var n int
	if err := e.pool.QueryRow(context.Background(), `SELECT count(*) OVER (), type, envelope->'data'->>'user_id', envelope->'data'->>'reason'
		FROM outbox WHERE subject = $1`, o.ID.String()).Scan(&n, &typ, &user, &reason); err != nil {
		t.Fatalf("the order's events: %v; want its order.cancelled.v1", err)
	}
	if n != 1 || typ != "order.cancelled.v1" || user != o.UserID.String() || reason != o.Reason {
		t.Errorf("%d events for the order, the first %s for user %s, reason %q; want one order.cancelled.v1 for %s, reason %q",
			n, typ, user, reason, o.UserID, o.Reason)
	}
}

// A pending order that recovery cancels (its stock gone while reserve-stock
// was unavailable) tells its buyer, answered 202 pending, how it ended: one
// order.cancelled.v1 with the buyer and the reason, which notify-user turns
// into a notification. Until 2026-12-05 a cancellation before the order was
// placed wrote no event, and the buyer was never told.
func TestAPendingOrderRecoveryCancelsIsTold(t *testing.T) {
	e := setup(t, nil)
	e.svc.SetHook(func(fn string, _ uuid.UUID) (time.Duration, int, int) {
		if fn == "reserve-stock" {
			return 0, http.StatusServiceUnavailable, 0
		}
		return 0, 0, 0
	})
	res, err := e.saga.Place(context.Background(), e.user, e.request(2, "tok_visa"), "")
	if err != nil || res.Outcome() != orders.OutcomePending {
		t.Fatalf("got %s %v; want pending", res.Outcome(), err)
	}
	e.svc.SetStock(e.product.ID, 0)
	e.svc.SetHook(nil)
	e.age(t)
	if rep, err := e.saga.Recover(context.Background(), 10); err != nil || rep.Failed != 1 {
		t.Fatalf("recover: %+v %v", rep, err)
	}
	o, err := e.store.Get(context.Background(), res.Order.ID)
	if err != nil || o.Status != orders.Cancelled || o.Reason != orders.ReasonOutOfStock {
		t.Fatalf("order %+v %v; want cancelled out_of_stock", o, err)
	}
	e.wantOneCancellation(t, o)
}

func TestUnknownProductIs422AndFreesTheKey(t *testing.T) {
	e := setup(t, nil)
	req := e.request(1, "tok_visa")
	req.Items[0].ProductID = uuid.Must(uuid.NewV7())
	_, err := e.saga.Place(context.Background(), e.user, req, "u")
	if !fault.Is(err, fault.Invalid, "unknown_product") {
		t.Fatalf("got %v", err)
	}
	if n := e.count(t, `SELECT count(*) FROM idempotency_keys`); n != 0 {
		t.Fatalf("key kept after a failure before the order existed")
	}
}

// A catalog 404 that is not get-product's answer for the product (a
// misconfigured locator meeting a function's "no such route") is an outage:
// the checkout is unavailable, not refused as unknown_product, and no order
// or key is written.
func TestACatalog404ThatIsNotGetProductsIsUnavailableNotUnknownProduct(t *testing.T) {
	e := setup(t, nil)
	e.catalog.SetUnrouted(true)
	_, err := e.saga.Place(context.Background(), e.user, e.request(1, "tok_visa"), "u")
	if !fault.Is(err, fault.Unavailable, "") {
		t.Fatalf("got %v, want unavailable", err)
	}
	if n := e.count(t, `SELECT count(*) FROM orders`); n != 0 {
		t.Fatalf("%d orders written while the catalog was unreachable", n)
	}
	e.catalog.SetUnrouted(false)
	if _, err := e.saga.Place(context.Background(), e.user, e.request(1, "tok_visa"), "u"); err != nil {
		t.Fatalf("once the catalog is reached again: %v", err)
	}
}

func TestClientHangingUpMidCheckoutStillCompletes(t *testing.T) {
	e := setup(t, nil)
	e.svc.SetHook(func(fn string, _ uuid.UUID) (time.Duration, int, int) {
		if fn == "charge-payment" {
			return 500 * time.Millisecond, 0, 0
		}
		return 0, 0, 0
	})
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(150*time.Millisecond, cancel)
	res, err := e.saga.Place(ctx, e.user, e.request(1, "tok_visa"), "hangup")
	if err != nil {
		t.Fatal(err)
	}
	if ctx.Err() == nil {
		t.Fatal("the client context was never cancelled; the test proves nothing")
	}
	if res.Outcome() != orders.OutcomeConfirmed {
		t.Fatalf("got %s", res.Outcome())
	}
	if n := e.count(t, `SELECT count(*) FROM orders WHERE status = 'confirmed'`); n != 1 {
		t.Fatalf("%d confirmed orders, want 1", n)
	}
	if c := e.svc.Counts(); c.Commits != 0 || c.Captures != 1 {
		t.Fatalf("commits %d captures %d, want 0 1", c.Commits, c.Captures)
	}
}

// processorDown makes every charge answer 503, as a card processor that is
// down: a checkout stays pending, and recovery retries it.
func (e *env) processorDown() {
	e.svc.SetHook(func(fn string, _ uuid.UUID) (time.Duration, int, int) {
		if fn == "charge-payment" {
			return 0, http.StatusServiceUnavailable, 0
		}
		return 0, 0, 0
	})
}

// placePending places n orders of one unit each, without keys, while the
// card processor is down, and returns their ids: each is answered pending.
// The processor stays down (e.svc's hook) until the test changes it.
func (e *env) placePending(t *testing.T, n int) []uuid.UUID {
	t.Helper()
	e.processorDown()
	ids := make([]uuid.UUID, n)
	for i := range n {
		res, err := e.saga.Place(context.Background(), e.user, e.request(1, "tok_visa"), "")
		if err != nil || res.Outcome() != orders.OutcomePending {
			t.Fatalf("place %d: %s %v; want pending", i, res.Outcome(), err)
		}
		ids[i] = res.Order.ID
	}
	return ids
}

// age makes every pending order look older than RecoverAfter with an expired lease.
func (e *env) age(t *testing.T) {
	t.Helper()
	if _, err := e.pool.Exec(context.Background(), `UPDATE orders SET created_at = created_at - interval '1 hour';
		UPDATE order_sagas SET lease_until = now() - interval '1 second'`); err != nil {
		t.Fatal(err)
	}
}

func TestRecoverFinishesAPendingOrderWhoseChargeCrashed(t *testing.T) {
	e := setup(t, nil)
	// The processor is down: nothing is captured, the order stays pending.
	e.processorDown()
	res, err := e.saga.Place(context.Background(), e.user, e.request(1, "tok_visa"), "r")
	if err != nil {
		t.Fatal(err)
	}
	v := res.Order.View()
	if res.Outcome() != orders.OutcomePending || v.Status != orders.Pending {
		t.Fatalf("got %s %+v", res.Outcome(), v)
	}
	// Not yet stale: recovery leaves it alone.
	if rep, err := e.saga.Recover(context.Background(), 10); err != nil || rep.Driven != 0 {
		t.Fatalf("recovered a fresh order: %+v %v", rep, err)
	}
	e.svc.SetHook(nil)
	e.age(t)
	rep, err := e.saga.Recover(context.Background(), 10)
	if err != nil || rep.Confirmed != 1 {
		t.Fatalf("recover: %+v %v", rep, err)
	}
	o, _ := e.store.Get(context.Background(), v.ID)
	if o.Status != orders.Confirmed {
		t.Fatalf("status %s", o.Status)
	}
	if c := e.svc.Counts(); c.Charges != 1 || c.Commits != 0 {
		t.Fatalf("charges %d commits %d, want 1 0", c.Charges, c.Commits)
	}
	// The key now replays the confirmed order.
	again, err := e.saga.Place(context.Background(), e.user, e.request(1, "tok_visa"), "r")
	if err != nil || !again.Replayed || again.Outcome() != orders.OutcomeConfirmed || again.Order.View().Status != orders.Confirmed {
		t.Fatalf("replay after recovery: %+v %v", again, err)
	}
}

// Recovery takes turns among the orders it cannot finish: an order it has
// just driven waits behind those it has not tried since. Until 2026-12-05 it
// took the oldest order first every time, so one that kept failing slowly
// (each drive up to 27 s, a run claims for only its first 3 s under the
// default exec timeout) held every newer order back until it healed or was
// given up 12 hours later (found by helper-125).
func TestRecoveryTakesTurnsAmongTheOrdersItCannotFinish(t *testing.T) {
	e := setup(t, nil)
	ctx := context.Background()
	ids := e.placePending(t, 2)
	e.age(t)
	claimed := func() []bool {
		t.Helper()
		out := make([]bool, len(ids))
		for i, id := range ids {
			if err := e.pool.QueryRow(ctx, `SELECT lease_until > now() FROM order_sagas WHERE order_id = $1`, id).Scan(&out[i]); err != nil {
				t.Fatal(err)
			}
		}
		return out
	}
	for run, want := range [][]bool{{true, false}, {false, true}} {
		if rep, err := e.saga.Recover(ctx, 1); err != nil || rep.Pending != 1 {
			t.Fatalf("run %d: %+v %v; want one order driven and still pending", run, rep, err)
		}
		if got := claimed(); !slices.Equal(got, want) {
			t.Fatalf("run %d drove %v (older, newer); want %v", run, got, want)
		}
		// Every lease runs out, each as long after its claim as before.
		if _, err := e.pool.Exec(ctx, `UPDATE order_sagas SET lease_until = lease_until - interval '1 hour'`); err != nil {
			t.Fatal(err)
		}
	}
}

// An order recovery cannot read (here its stored address is not an
// address) is counted in the run's Errors, and the run goes on with the
// others. Until 2026-12-05 such a drive was only logged: the run counted
// ok, so RecoveryStalled never fired for an order claimed and failed every
// minute for ever (found by helper-138).
func TestAnOrderRecoveryCannotReadIsCountedAndTheOthersDriven(t *testing.T) {
	e := setup(t, nil)
	ctx := context.Background()
	ids := e.placePending(t, 2)
	e.svc.SetHook(nil)
	e.age(t)
	if _, err := e.pool.Exec(ctx, `UPDATE orders SET shipping_address = '[1]' WHERE id = $1`, ids[0]); err != nil {
		t.Fatal(err)
	}
	rep, err := e.saga.Recover(ctx, 10)
	if err != nil || rep.Errors != 1 || rep.Driven != 1 || rep.Confirmed != 1 {
		t.Fatalf("recover: %+v %v; want one error and the other order confirmed", rep, err)
	}
	if o, err := e.store.Get(ctx, ids[1]); err != nil || o.Status != orders.Confirmed {
		t.Fatalf("the readable order: %s %v", o.Status, err)
	}
}

// An order still pending past GiveUpAfter (default 12 h) — its charge's
// answers lost through a long outage, so the processor may hold a capture
// the shop never recorded — is no longer charged again: recovery ends it
// payment_failed (reason expired, order.payment_failed.v1 tells the
// customer), releases its hold and voids its charge key, which refunds the
// capture. Younger, it is still driven. A real processor forgets a key after a while
// (Stripe: 24 h); a charge retried past that could capture twice. Until
// 2026-12-05 recovery retried such an order's charge every minute for ever.
func TestRecoveryGivesUpOnAnOrderPendingTooLong(t *testing.T) {
	e := setup(t, nil)
	ctx := context.Background()
	// The processor captures, and every answer is lost.
	e.svc.SetHook(func(fn string, _ uuid.UUID) (time.Duration, int, int) {
		if fn == "charge-payment" {
			return 0, 0, http.StatusServiceUnavailable
		}
		return 0, 0, 0
	})
	res, err := e.saga.Place(ctx, e.user, e.request(1, "tok_visa"), "")
	if err != nil || res.Outcome() != orders.OutcomePending {
		t.Fatalf("place: %s %v, want pending", res.Outcome(), err)
	}
	id := res.Order.View().ID
	if got := e.svc.Payment(id); got != "captured" {
		t.Fatalf("payment %q at the processor, want captured (its answers lost)", got)
	}
	aged := func(hours int) {
		t.Helper()
		if _, err := e.pool.Exec(ctx, `UPDATE orders SET created_at = now() - make_interval(hours => $2) WHERE id = $1;`, id, hours); err != nil {
			t.Fatal(err)
		}
		if _, err := e.pool.Exec(ctx, `UPDATE order_sagas SET lease_until = now() - interval '1 second' WHERE order_id = $1`, id); err != nil {
			t.Fatal(err)
		}
	}
	aged(11)
	charges := e.svc.Counts().Calls["charge-payment"]
	if rep, err := e.saga.Recover(ctx, 10); err != nil || rep.Pending != 1 {
		t.Fatalf("recovery at 11 h: %+v %v; want the order still driven, still pending", rep, err)
	}
	if n := e.svc.Counts().Calls["charge-payment"]; n == charges {
		t.Fatal("recovery at 11 h did not try the charge again")
	}
	aged(13)
	charges = e.svc.Counts().Calls["charge-payment"]
	// The inventory is down too: the refund must not wait for it (the
	// processor's memory of the charge's key is running out).
	e.svc.SetHook(func(fn string, _ uuid.UUID) (time.Duration, int, int) {
		switch fn {
		case "charge-payment":
			return 0, 0, http.StatusServiceUnavailable
		case "release-stock":
			return 0, http.StatusServiceUnavailable, 0
		}
		return 0, 0, 0
	})
	rep, err := e.saga.Recover(ctx, 10)
	if err != nil || rep.Driven != 1 || rep.Expired != 1 || rep.Failed != 0 {
		t.Fatalf("recovery at 13 h: %+v %v; want the order driven and given up on", rep, err)
	}
	o, err := e.store.Get(ctx, id)
	if err != nil || o.Status != orders.PaymentFailed || o.Reason != orders.ReasonExpired {
		t.Fatalf("order %s/%s (%v), want payment_failed/expired", o.Status, o.Reason, err)
	}
	if n := e.count(t, `SELECT count(*) FROM outbox WHERE type = 'order.payment_failed.v1'`); n != 1 {
		t.Errorf("%d order.payment_failed.v1 events, want 1: the customer is told", n)
	}
	if n := e.svc.Counts().Calls["charge-payment"]; n != charges {
		t.Errorf("charge-payment called %d more times by the run that gave up, want none", n-charges)
	}
	if got := e.svc.Payment(id); got != "refunded" {
		t.Errorf("payment %q, want the capture refunded while the inventory is down", got)
	}
	if got := e.svc.Reservation(id); got == "released" {
		t.Fatalf("reservation %q with release-stock down: the test proves nothing", got)
	}
	// The release stays owed; the next run, the inventory back, settles it.
	e.svc.SetHook(nil)
	e.age(t)
	if rep, err := e.saga.Recover(ctx, 10); err != nil || rep.Driven != 1 || rep.Compensations != 1 || rep.Failed != 0 {
		t.Fatalf("the run settling the release: %+v %v; want it counted a compensation, not the order's end again", rep, err)
	}
	if got := e.svc.Reservation(id); got != "released" {
		t.Errorf("reservation %q, want released", got)
	}
	if c := e.svc.Counts(); c.Refunds != 1 {
		t.Errorf("%d refunds, want 1", c.Refunds)
	}
	if onHand, reserved := e.svc.Stock(e.product.ID); onHand != 5 || reserved != 0 {
		t.Errorf("stock %d on hand, %d reserved; want 5, 0", onHand, reserved)
	}
	e.age(t)
	if rep, err := e.saga.Recover(ctx, 10); err != nil || rep.Driven != 0 {
		t.Errorf("the next run: %+v %v; want nothing left to drive", rep, err)
	}
}

// An earlier run's hold expired (the sweep gave it back; reserve-stock
// answers reservation_released): the saga takes the stock again
// (commit-stock) after the charge and before it confirms, and the units are
// sold at once.
func TestARecoveredOrderWhoseHoldExpiredTakesTheStockAgain(t *testing.T) {
	e := setup(t, nil)
	e.processorDown()
	res, err := e.saga.Place(context.Background(), e.user, e.request(2, "tok_visa"), "")
	if err != nil || res.Outcome() != orders.OutcomePending {
		t.Fatalf("got %+v %v", res, err)
	}
	id := res.Order.View().ID
	e.svc.Expire(id)
	e.svc.SetHook(nil)
	e.age(t)
	if rep, err := e.saga.Recover(context.Background(), 10); err != nil || rep.Confirmed != 1 {
		t.Fatalf("recover: %+v %v", rep, err)
	}
	if c := e.svc.Counts(); c.Commits != 1 || c.Calls["commit-stock"] != 1 || c.Refunds != 0 {
		t.Fatalf("calls %v commits %d refunds %d, want commit-stock once, no refund", c.Calls, c.Commits, c.Refunds)
	}
	if got := e.svc.Reservation(id); got != "committed" {
		t.Fatalf("reservation %q, want committed (taken again)", got)
	}
	if onHand, reserved := e.svc.Stock(e.product.ID); onHand != 3 || reserved != 0 {
		t.Fatalf("stock on_hand %d reserved %d, want 3 0", onHand, reserved)
	}
	steps := e.steps(t, id)
	commit, confirm := slices.Index(steps, "stock.commit:ok"), slices.Index(steps, "order.confirmed:ok")
	if !slices.Contains(steps, "stock.reserve:refused") || commit < 0 || confirm < commit {
		t.Fatalf("timeline %v: want the refused reserve, then the commit, then the confirmation", steps)
	}
}

// An earlier run's hold was released, not expired: a release is final
// (inventory.Hold.CanCommit), so step 3 meets commit-stock's 409
// reservation_released, and the order fails, its capture refunded, its stock
// untouched: no order is confirmed on a hold given back for good.
func TestARecoveredOrderWhoseHoldWasReleasedFailsAndIsRefunded(t *testing.T) {
	e := setup(t, nil)
	ctx := context.Background()
	e.processorDown()
	res, err := e.saga.Place(ctx, e.user, e.request(2, "tok_visa"), "")
	if err != nil || res.Outcome() != orders.OutcomePending {
		t.Fatalf("got %+v %v", res, err)
	}
	id := res.Order.View().ID
	if err := e.cfg.Stock.Release(ctx, id); err != nil { // a release-stock from elsewhere
		t.Fatal(err)
	}
	if got := e.svc.Reservation(id); got != "released" {
		t.Fatalf("reservation %q, want released: the test proves nothing", got)
	}
	e.svc.SetHook(nil)
	e.age(t)
	if rep, err := e.saga.Recover(ctx, 10); err != nil || rep.Failed != 1 || rep.Confirmed != 0 {
		t.Fatalf("recover: %+v %v; want the order failed", rep, err)
	}
	o, err := e.store.Get(ctx, id)
	if err != nil || o.Status != orders.Cancelled || o.Reason != orders.ReasonRejected {
		t.Fatalf("order %s/%s %v; want cancelled rejected", o.Status, o.Reason, err)
	}
	if c := e.svc.Counts(); c.Captures != 1 || c.Refunds != 1 || c.Commits != 0 || c.Calls["commit-stock"] != 1 {
		t.Fatalf("calls %v captures %d refunds %d commits %d; want commit-stock refused once, the capture refunded",
			c.Calls, c.Captures, c.Refunds, c.Commits)
	}
	if got := e.svc.Payment(id); got != "refunded" {
		t.Errorf("payment %q, want refunded", got)
	}
	if got := e.svc.Reservation(id); got != "released" {
		t.Errorf("reservation %q, want still released", got)
	}
	if onHand, reserved := e.svc.Stock(e.product.ID); onHand != 5 || reserved != 0 {
		t.Errorf("stock on_hand %d reserved %d, want 5 0: nothing sold", onHand, reserved)
	}
	if steps := e.steps(t, id); !slices.Contains(steps, "stock.commit:refused") {
		t.Errorf("timeline %v: want the refused commit", steps)
	}
	e.wantOneCancellation(t, o) // charged and refunded: its buyer is told
}

func TestRecoverRefundsACaptureWhoseStockIsGone(t *testing.T) {
	e := setup(t, nil)
	// The charge is captured but its answer is lost, every time.
	e.svc.SetHook(func(fn string, _ uuid.UUID) (time.Duration, int, int) {
		if fn == "charge-payment" {
			return 0, 0, http.StatusGatewayTimeout
		}
		return 0, 0, 0
	})
	res, err := e.saga.Place(context.Background(), e.user, e.request(2, "tok_visa"), "")
	if err != nil || res.Outcome() != orders.OutcomePending {
		t.Fatalf("got %+v %v", res, err)
	}
	id := res.Order.View().ID
	// Meanwhile the hold expires and the stock is sold elsewhere.
	e.svc.Expire(id)
	e.svc.SetStock(e.product.ID, 0)
	e.svc.SetHook(nil)
	e.age(t)
	rep, err := e.saga.Recover(context.Background(), 10)
	if err != nil || rep.Failed != 1 {
		t.Fatalf("recover: %+v %v", rep, err)
	}
	o, _ := e.store.Get(context.Background(), id)
	if o.Status != orders.Cancelled || o.Reason != orders.ReasonOutOfStock {
		t.Fatalf("order %s/%s", o.Status, o.Reason)
	}
	if got := e.svc.Payment(id); got != "refunded" {
		t.Fatalf("payment %q: a capture without a confirmed order", got)
	}
	if c := e.svc.Counts(); c.Charges != 1 || c.Refunds != 1 {
		t.Fatalf("charges %d refunds %d", c.Charges, c.Refunds)
	}
	e.wantOneCancellation(t, o) // charged and refunded: its buyer is told
}

// The saga's twin of payments' TestRefundBeforeTheChargeLandsVoidsIt: a
// charge whose answer the saga never got (its client gave up) is still on its
// way through charge-payment when a refusal fails the order and the saga
// refunds it. The refund finds no payment and voids the order's charge key,
// so the charge that lands after it is declined: no capture is left behind an
// order that is not confirmed, and no later charge of the order captures
// either.
func TestARefundBeforeTheChargeLandsLeavesNoCapture(t *testing.T) {
	e := setup(t, nil)
	gw, res, err := e.placeWithALateCharge(t, http.StatusConflict) // a refusal the table does not name: failed, refund owed
	if err != nil || res.Outcome() != orders.OutcomeRejected || res.Order.Status != orders.PaymentFailed {
		t.Fatalf("place: %s %+v %v, want rejected payment_failed", res.Outcome(), res.Order, err)
	}
	id := res.Order.ID
	e.svc.Idle(t) // the first charge has landed
	if c := e.svc.Counts(); c.Calls["charge-payment"] != 2 || c.Calls["refund-payment"] != 1 || c.Captures != 0 {
		t.Fatalf("calls %v, captures %d: want two charges, one refund, nothing captured", c.Calls, c.Captures)
	}
	if got := e.svc.Payment(id); got != "declined" {
		t.Fatalf("payment %q after the late charge landed, want declined (voided)", got)
	}
	err = gw.Charge(context.Background(), saga.Charge{OrderID: id, UserID: e.user.UserID, Amount: res.Order.Total, Token: "tok_visa"})
	if fault.KindOf(err) != fault.PaymentRequired {
		t.Fatalf("a later charge of the order: %v, want payment_declined", err)
	}
	if c := e.svc.Counts(); c.Captures != 0 {
		t.Fatalf("%d captures for a failed order", c.Captures)
	}
}

// A charge refused as invalid (422 invalid_payment_token) after an earlier
// try timed out — a processor with single-use tokens refuses the retry while
// the first try is still in flight — ends the order payment_failed with the
// charge key voided too (refund-payment, which answers none): the first try,
// landing late, captures nothing, and no later charge of the order does.
// Until 2026-12-07 that refusal only released the stock and marked the
// compensation done, and the late try captured the order's money.
func TestATokenRefusedAfterATimedOutChargeLeavesNoCapture(t *testing.T) {
	e := setup(t, nil)
	gw, res, err := e.placeWithALateCharge(t, http.StatusUnprocessableEntity) // invalid_payment_token: the token was used
	if err != nil || res.Outcome() != orders.OutcomeTokenRefused || res.Order.Status != orders.PaymentFailed {
		t.Fatalf("place: %s %+v %v, want invalid_payment_token payment_failed", res.Outcome(), res.Order, err)
	}
	id := res.Order.ID
	e.svc.Idle(t) // the first charge has landed
	if c := e.svc.Counts(); c.Calls["charge-payment"] != 2 || c.Calls["refund-payment"] != 1 || c.Captures != 0 {
		t.Fatalf("calls %v, captures %d: want two charges, one refund, nothing captured", c.Calls, c.Captures)
	}
	if got := e.svc.Payment(id); got != "declined" {
		t.Fatalf("payment %q after the late charge landed, want declined (voided)", got)
	}
	if got := e.svc.Reservation(id); got != "released" {
		t.Fatalf("reservation %q, want released", got)
	}
	if n := e.count(t, `SELECT count(*) FROM order_sagas WHERE order_id = $1 AND compensation = 'done'`, id); n != 1 {
		t.Fatal("the compensation is not done")
	}
	err = gw.Charge(context.Background(), saga.Charge{OrderID: id, UserID: e.user.UserID, Amount: res.Order.Total, Token: "tok_visa"})
	if fault.KindOf(err) != fault.PaymentRequired {
		t.Fatalf("a later charge of the order: %v, want payment_declined", err)
	}
	if c := e.svc.Counts(); c.Captures != 0 {
		t.Fatalf("%d captures for a failed order", c.Captures)
	}
}

// placeWithALateCharge places one order through a payments client that gives
// up on a call after 300ms, over a service whose first charge hangs past that
// timeout (it lands once the order is placed) and whose second, the saga's
// retry, answers refusal. It returns the client, for a later charge of the
// order, and what Place returned.
func (e *env) placeWithALateCharge(t *testing.T, refusal int) (*ordersgw.Gateway, orders.Checkout, error) {
	t.Helper()
	land := make(chan struct{})
	var charges atomic.Int64
	e.svc.SetHook(func(fn string, _ uuid.UUID) (time.Duration, int, int) {
		if fn != "charge-payment" {
			return 0, 0, 0
		}
		switch charges.Add(1) {
		case 1:
			<-land // past the client's timeout: the saga tries again
		case 2:
			return 0, refusal, 0
		}
		return 0, 0, 0
	})
	gw, err := ordersgw.New(e.svc.URL, orderstest.Token, nil, 300*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	cfg := e.cfg
	cfg.Payments = gw
	s, err := saga.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	res, err := s.Place(context.Background(), e.user, e.request(1, "tok_visa"), "")
	close(land)
	return gw, res, err
}

func TestConcurrentRecoveryDrivesEachOrderOnce(t *testing.T) {
	e := setup(t, nil)
	e.svc.SetStock(e.product.ID, 100)
	e.placePending(t, 6)
	e.svc.SetHook(func(fn string, _ uuid.UUID) (time.Duration, int, int) {
		if fn == "charge-payment" {
			return 50 * time.Millisecond, 0, 0
		}
		return 0, 0, 0
	})
	e.age(t)
	before := e.svc.Counts().Calls["charge-payment"]
	var wg sync.WaitGroup
	reps := make([]saga.Report, 3)
	for i := range 3 {
		wg.Add(1)
		go func() { defer wg.Done(); reps[i], _ = e.saga.Recover(context.Background(), 10) }()
	}
	wg.Wait()
	total := reps[0].Driven + reps[1].Driven + reps[2].Driven
	if total != 6 {
		t.Fatalf("drove %d orders, want 6 (%+v)", total, reps)
	}
	if calls := e.svc.Counts().Calls["charge-payment"] - before; calls != 6 {
		t.Fatalf("%d charge calls, want 6", calls)
	}
	if n := e.count(t, `SELECT count(*) FROM orders WHERE status = 'confirmed'`); n != 6 {
		t.Fatalf("%d confirmed", n)
	}
}

// logLines collects what a saga logs, for a test to read; the saga's
// goroutines may write at once.
type logLines struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (l *logLines) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logLines) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// logger is a logger of every level into l.
func (l *logLines) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// waitFor waits (up to 3 s) until l holds msg.
func (l *logLines) waitFor(t *testing.T, msg string) {
	t.Helper()
	for end := time.Now().Add(3 * time.Second); !strings.Contains(l.String(), msg); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("no %q logged within 3 s; the log:\n%s", msg, l.String())
		}
	}
}

// waitBefore waits until l holds msg, and fails the test once ctx is done
// first: ctx is what the wait must beat (a held call's own deadline).
func (l *logLines) waitBefore(t *testing.T, ctx context.Context, msg string) {
	t.Helper()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !strings.Contains(l.String(), msg) {
		select {
		case <-ctx.Done():
			t.Fatalf("no %q logged before the held call's deadline (%v): the test proves nothing; the log:\n%s", msg, context.Cause(ctx), l.String())
		case <-tick.C:
		}
	}
}

// untilDBClock waits until d has passed from now by the database's clock
// (the clock leases are written and read by), for at most d + 5 s.
func (e *env) untilDBClock(t *testing.T, d time.Duration) {
	t.Helper()
	var until time.Time
	if err := e.pool.QueryRow(context.Background(), `SELECT now() + $1::float8 * interval '1 second'`, d.Seconds()).Scan(&until); err != nil {
		t.Fatal(err)
	}
	for end := time.Now().Add(d + 5*time.Second); e.count(t, `SELECT (clock_timestamp() < $1)::int`, until) == 1; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("the database's clock did not pass %s", until)
		}
	}
}

// holdFirstCharge makes the first charge-payment call wait until the
// returned release is called (then, and every later call, it is answered as
// usual); charging is closed once that first call has begun, and before it
// waits, first runs (nil: nothing).
func (e *env) holdFirstCharge(t *testing.T, first func()) (charging <-chan struct{}, release func()) {
	t.Helper()
	began, released := make(chan struct{}), make(chan struct{})
	var once, releaseOnce sync.Once
	e.svc.SetHook(func(fn string, _ uuid.UUID) (time.Duration, int, int) {
		if fn != "charge-payment" {
			return 0, 0, 0
		}
		held := false
		once.Do(func() { held = true })
		if held {
			if first != nil {
				first()
			}
			close(began)
			<-released
		}
		return 0, 0, 0
	})
	release = func() { releaseOnce.Do(func() { close(released) }) }
	t.Cleanup(release)
	return began, release
}

// A recovery run claims an order for Config.Lease and renews its claim while
// it drives the order (keepClaim), so a run that drives longer than the lease
// keeps the order: a second run meanwhile claims nothing, and the first ends
// the order with one charge. (Against a claim of Lease that nothing renewed,
// the second run took the order.)
func TestALiveRecoveryRunKeepsItsClaimPastItsLease(t *testing.T) {
	const lease = 2 * time.Second // renewed every 667 ms: a margin against a loaded machine
	e := setup(t, func(c *saga.Config) { c.Lease = lease })
	ctx := context.Background()
	ids := e.placePending(t, 1)
	e.age(t)
	charging, release := e.holdFirstCharge(t, nil)
	done := make(chan saga.Report, 1)
	go func() { rep, _ := e.saga.Recover(ctx, 10); done <- rep }()
	select {
	case <-charging:
	case rep := <-done:
		t.Fatalf("the run ended before its charge: %+v", rep)
	}
	// Half a lease past it (the gateway's 5 s timeout would end the held
	// charge at the first run's 5 s).
	e.untilDBClock(t, lease+lease/2)
	if rep, err := e.saga.Recover(ctx, 10); err != nil || rep.Driven != 0 {
		t.Fatalf("a second run while the first drives the order: %+v %v; want nothing claimed", rep, err)
	}
	if o, err := e.store.Get(ctx, ids[0]); err != nil || o.Status != orders.Pending {
		t.Fatalf("order %s %v once the second run ended, want still pending (the first run still charging): the test proves nothing", o.Status, err)
	}
	release()
	if rep := <-done; rep.Confirmed != 1 {
		t.Fatalf("the first run: %+v, want the order confirmed", rep)
	}
	if o, err := e.store.Get(ctx, ids[0]); err != nil || o.Status != orders.Confirmed {
		t.Fatalf("order %s %v, want confirmed", o.Status, err)
	}
	if c := e.svc.Counts(); c.Captures != 1 {
		t.Fatalf("%d captures, want 1", c.Captures)
	}
}

// A recovery run whose claim another run took over — here the claim count is
// bumped in the database, as ClaimStale bumps it, while the run's charge is
// held — stops driving the order at its next renewal: the charge call is cut
// and settled as unknown (the order left pending, nothing given back, no
// failure), and the run that holds the claim finishes it with one capture,
// the cut charge's. Until 2026-12-07 the run only logged the loss and drove
// on beside the other run: it waited for its charge and confirmed the order.
// The cut charge is no failure of charge-payment: the cut run notes,
// counts and logs no failed try (until 2026-12-08 its timeline told the
// customer "attempt 1: charge-payment is unavailable", the step's failure
// was counted and logged at WARN).
func TestARecoveryRunWhoseClaimIsTakenOverStopsDriving(t *testing.T) {
	const lease = time.Second // renewed every 333 ms
	logs := &logLines{}
	e := setup(t, func(c *saga.Config) { c.Lease = lease; c.Log = logs.logger() })
	ctx := context.Background()
	ids := e.placePending(t, 1)
	e.age(t)
	before, logged := e.steps(t, ids[0]), len(logs.String()) // the checkout's
	reg := prometheus.NewRegistry()
	cutCtx := telemetry.WithShop(ctx, telemetry.NewShop(reg))
	charging, release := e.holdFirstCharge(t, nil)
	done := make(chan saga.Report, 1)
	go func() { rep, _ := e.saga.Recover(cutCtx, 1); done <- rep }()
	select {
	case <-charging:
	case rep := <-done:
		t.Fatalf("the run ended before its charge: %+v", rep)
	}
	// Another run's claim: the count moves on, for a minute.
	if _, err := e.pool.Exec(ctx, `UPDATE order_sagas SET attempts = attempts + 1, lease_until = now() + interval '1 minute'
		WHERE order_id = $1`, ids[0]); err != nil {
		t.Fatal(err)
	}
	// Well before the gateway's 5 s timeout ends the held charge.
	select {
	case rep := <-done:
		// Counted taken over, not still pending (until 2026-12-08 it was,
		// and fed OrdersStuckPending): the run that took it over counts it.
		if rep.Driven != 1 || rep.TakenOver != 1 || rep.Pending != 0 {
			t.Fatalf("the run whose claim was taken over: %+v, want its order counted taken over, not pending", rep)
		}
	case <-time.After(3 * time.Second):
		release()
		rep := <-done
		o, _ := e.store.Get(ctx, ids[0])
		t.Fatalf("the run still drove the order 3 s after its claim was taken over; released, it ended %+v, the order %s", rep, o.Status)
	}
	o, err := e.store.Get(ctx, ids[0])
	if err != nil || o.Status != orders.Pending {
		t.Fatalf("order %s %v once the cut run ended, want pending", o.Status, err)
	}
	if n := e.count(t, `SELECT count(*) FROM order_sagas WHERE order_id = $1 AND payment_token IS NOT NULL AND compensation <> 'pending'`, ids[0]); n != 1 {
		t.Fatalf("the cut run left the saga without its token or owing a compensation (%d rows as expected)", n)
	}
	// Its reservation is noted (reserve-stock answered it), the cut charge not.
	if diff := cmp.Diff(append(before, "stock.reserve:ok"), e.steps(t, ids[0])); diff != "" {
		t.Errorf("the cut run's timeline entries (-want +got):\n%s", diff)
	}
	if err := testutil.GatherAndCompare(reg, strings.NewReader(""), "shop_saga_step_failures_total"); err != nil {
		t.Errorf("the cut run counted a failure: %v", err)
	}
	if got := logs.String()[logged:]; strings.Contains(got, "saga step failed") || !strings.Contains(got, "claim lost, left to the run that took the order over") {
		t.Errorf("the cut run's log, want no failed step and the cut said at INFO:\n%s", got)
	}
	// The held charge captures once let go; the run that took the order
	// over (its claim run out here, so the next run is that one) confirms it.
	release()
	if _, err := e.pool.Exec(ctx, `UPDATE order_sagas SET lease_until = now() - interval '1 second' WHERE order_id = $1`, ids[0]); err != nil {
		t.Fatal(err)
	}
	if rep, err := e.saga.Recover(ctx, 1); err != nil || rep.Confirmed != 1 {
		t.Fatalf("the run that took the order over: %+v %v, want it confirmed", rep, err)
	}
	if c := e.svc.Counts(); c.Captures != 1 || c.Refunds != 0 {
		t.Fatalf("%d captures %d refunds, want 1 0", c.Captures, c.Refunds)
	}
}

// A recovery run whose claim is taken over while its decision waits on the
// order's row lock — here held by the test, which plays the run that took the
// order over and ends the order itself before letting go — finds the order
// ended by that run once its write goes through: its write fails (its
// fallback read runs on the cut drive's context) or finds the order ended
// otherwise. That is the claim's loss, not a fault of the orders database: it
// is logged at INFO as "claim lost", the run writes nothing over the other
// run's end, and neither ERROR nor WARN is logged. Until 2026-12-08 the
// confirmation's failure was an ERROR "confirm order", and the failure's a
// WARN "the order ended otherwise before its failure".
func TestARecoveryRunThatLosesItsClaimDuringItsDecisionLogsTheLossNotAFailure(t *testing.T) {
	cases := map[string]struct {
		charge int           // the held charge's answer: 0 captured, 402 declined
		ended  orders.Status // the order as the run that took it over ends it
		reason string
	}{
		"confirmation": {0, orders.Cancelled, orders.ReasonOutOfStock},
		"failure":      {http.StatusPaymentRequired, orders.Confirmed, ""},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			const lease = time.Second // renewed every 333 ms
			logs := &logLines{}
			e := setup(t, func(cfg *saga.Config) { cfg.Lease = lease; cfg.Log = logs.logger() })
			ctx := context.Background()
			id := e.placePending(t, 1)[0]
			e.age(t)
			charging, released := make(chan struct{}), make(chan struct{})
			var once sync.Once
			e.svc.SetHook(func(fn string, _ uuid.UUID) (time.Duration, int, int) {
				if fn != "charge-payment" {
					return 0, 0, 0
				}
				once.Do(func() { close(charging); <-released })
				return 0, c.charge, 0
			})
			done := make(chan saga.Report, 1)
			go func() { rep, _ := e.saga.Recover(ctx, 1); done <- rep }()
			<-charging
			// The order's row, locked: the run's decision waits for it.
			tx, err := e.pool.Begin(ctx)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = tx.Rollback(ctx) })
			if _, err := tx.Exec(ctx, `SELECT 1 FROM orders WHERE id = $1 FOR UPDATE`, id); err != nil {
				t.Fatal(err)
			}
			close(released)
			e.waitForALockWait(t)
			// Another run's claim: the count moves on, and the run's next
			// renewal finds it.
			if _, err := e.pool.Exec(ctx, `UPDATE order_sagas SET attempts = attempts + 1, lease_until = now() + interval '1 minute'
				WHERE order_id = $1`, id); err != nil {
				t.Fatal(err)
			}
			logs.waitFor(t, "another recovery run claimed the order this run drives")
			logged := len(logs.String())
			if _, err := tx.Exec(ctx, `UPDATE orders SET status = $2, reason = $3, updated_at = now() WHERE id = $1`, id, c.ended, c.reason); err != nil {
				t.Fatal(err)
			}
			if err := tx.Commit(ctx); err != nil {
				t.Fatal(err)
			}
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				t.Fatal("the run did not end within 10 s of the other run's end of the order")
			}
			got := logs.String()[logged:]
			if strings.Contains(got, "level=ERROR") || strings.Contains(got, "level=WARN") || !strings.Contains(got, "claim lost, left to the run that took the order over") {
				t.Errorf("the cut run's log, want the loss at INFO and no ERROR or WARN:\n%s", got)
			}
			if o, err := e.store.Get(ctx, id); err != nil || o.Status != c.ended || o.Reason != c.reason {
				t.Errorf("order %s/%s %v, want %s/%s as the other run ended it", o.Status, o.Reason, err, c.ended, c.reason)
			}
		})
	}
}

// A recovery run that dies while it drives an order — here its database is
// gone from the middle of the order's charge on, so no renewal of its claim
// arrives — leaves the order to the next run once its claim (Config.Lease)
// has run out, and that run finishes it: one capture, the dead run's charge
// answered from the first. Until 2026-12-07 the claim was the saga timeout +
// 10 s (30 s by default), unrenewed: the order waited that long.
//
// The dead run's claim ends Lease after its last renewal that reached the
// database: before the break, or, for a renewal the database received just
// before it, within that renewal's own timeout (one renewal interval,
// Lease/3) after it. So a run that starts later than Lease + Lease/3 after
// the break claims the order; the margin is this test's polling (every
// 50 ms) and the start of a run on a loaded machine. The test judges each
// run by when it began, so a slow empty run that began while the claim
// held cannot fail it. (Until
// 2026-12-08 the test allowed Lease + 4 s, and passed claims of three
// leases.) The run dies before its first renewal (its claim is the one
// ClaimStale wrote), or at a renewal, after one at least reached the
// database: that renewal commits and its answer is lost as the database
// goes away, so the claim is the renewal's, Lease from the break (until
// 2026-12-08 only the first case was tested, and a renewal that extended
// the claim by more than Lease passed).
func TestADeadRecoveryRunsOrderIsClaimedAgainWithinTheLease(t *testing.T) {
	const lease = time.Second
	for _, renewed := range []bool{false, true} {
		t.Run(map[bool]string{false: "before its first renewal", true: "after a renewal"}[renewed], func(t *testing.T) {
			e := setup(t, func(c *saga.Config) { c.Lease = lease })
			ctx := context.Background()
			ids := e.placePending(t, 1)
			e.age(t)
			s, f := e.withFaults(t)
			var first func()
			if !renewed {
				first = func() { f.SetDown(true) }
			}
			charging, release := e.holdFirstCharge(t, first)
			dead := make(chan struct{})
			go func() { defer close(dead); _, _ = s.Recover(ctx, 10) }()
			select {
			case <-charging:
			case <-dead:
				t.Fatal("the run ended before its charge")
			}
			if renewed {
				e.dieAtARenewal(t, f, ids[0])
			}
			e.takenOverWithin(t, lease+lease/3+500*time.Millisecond)
			release()
			<-dead
			if o, err := e.store.Get(ctx, ids[0]); err != nil || o.Status != orders.Confirmed {
				t.Fatalf("order %s %v, want confirmed", o.Status, err)
			}
			if c := e.svc.Counts(); c.Captures != 1 {
				t.Fatalf("%d captures, want 1", c.Captures)
			}
		})
	}
}

// dieAtARenewal waits until a renewal of the claim of order id reached the
// database (its lease_until moved on), then breaks the database for good at
// the next: it commits, and its answer is lost. It returns once it has.
func (e *env) dieAtARenewal(t *testing.T, f *pgtest.Faults, id uuid.UUID) {
	t.Helper()
	leaseUntil := func() time.Time {
		var at time.Time
		if err := e.pool.QueryRow(context.Background(), `SELECT lease_until FROM order_sagas WHERE order_id = $1`, id).Scan(&at); err != nil {
			t.Fatal(err)
		}
		return at
	}
	claimed := leaseUntil()
	for end := time.Now().Add(5 * time.Second); !leaseUntil().After(claimed); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatal("no renewal of the claim reached the database within 5 s")
		}
	}
	broke := make(chan struct{})
	f.Arm(pgtest.Fault{Marker: "AND attempts = $2", Committed: true, Down: true, Then: func() { close(broke) }})
	select {
	case <-broke:
	case <-time.After(5 * time.Second):
		t.Fatal("no renewal of the claim within 5 s of the first")
	}
}

// takenOverWithin runs recovery until a run takes the order over and
// confirms it, and fails the test when a run that began later than bound
// from now did not.
func (e *env) takenOverWithin(t *testing.T, bound time.Duration) {
	t.Helper()
	start := time.Now() // the break came just before
	var rep saga.Report
	var began time.Duration // of the last run, the one that claimed the order
	for rep.Driven == 0 {
		began = time.Since(start)
		var err error
		if rep, err = e.saga.Recover(context.Background(), 10); err != nil {
			t.Fatal(err)
		}
		if rep.Driven != 0 {
			break
		}
		// Judged by when the run began, not when it ended: a slow run
		// that began while the claim held says nothing; one that began
		// after the claim ran out must have taken the order.
		if began > bound {
			t.Fatalf("a run that began %s after the dead run's break did not take the order over (its claim lasts %s after its last renewal, renewed every %s)",
				began.Round(time.Millisecond), e.cfg.Lease, e.cfg.Lease/3)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("taken over by a run that began %s after the dead run's break", began.Round(time.Millisecond))
	if rep.Confirmed != 1 {
		t.Fatalf("the run that took the order over: %+v, want it confirmed", rep)
	}
}

// A run never drives an order twice, even when the claim of one it drove
// has run out before the run ends (its claim, no longer renewed, lasts at
// most Config.Lease after the drive): here each drive outlasts the lease, so
// the first order is claimable again while the run drives the second.
// (Without the run's list of the orders it drove, it drove them in turn
// until its window closed.)
func TestARecoveryRunDrivesEachOrderOnce(t *testing.T) {
	const lease = time.Second
	e := setup(t, func(c *saga.Config) { c.Lease = lease })
	ctx := context.Background()
	e.placePending(t, 2)
	e.age(t)
	e.svc.SetHook(func(fn string, _ uuid.UUID) (time.Duration, int, int) {
		if fn == "charge-payment" {
			return lease / 2, http.StatusServiceUnavailable, 0 // three tries: a drive of 1.5 s
		}
		return 0, 0, 0
	})
	rep, err := e.saga.Recover(ctx, 10)
	if err != nil || rep.Driven != 2 || rep.Pending != 2 {
		t.Fatalf("recover: %+v %v; want each of the two orders driven once, still pending", rep, err)
	}
}

// A retry of a checkout answered 202 while a recovery run drives its order,
// or right after a run left it pending, is answered at once, 202 with the
// pending order replayed: the request that placed the order ended long ago
// (recovery claims an order only RecoverAfter after it was placed), and the
// run may drive it for the whole saga timeout, its claim then live for up to
// Config.Lease (4 s here) more. Until 2026-12-07 such a retry waited KeyWait
// (5 s) and was answered 409 request_in_progress. Once a run ends the order,
// the key replays its end. (A claim that held the key fails both retries: the
// first waits KeyWait, the second until the claim runs out.)
func TestARetryWhileOrAfterRecoveryDrivesTheOrderIsReplayedAtOnce(t *testing.T) {
	e := setup(t, nil)
	ctx := context.Background()
	e.processorDown()
	first, err := e.saga.Place(ctx, e.user, e.request(1, "tok_visa"), "k")
	if err != nil || first.Outcome() != orders.OutcomePending {
		t.Fatalf("place: %s %v, want pending", first.Outcome(), err)
	}
	e.age(t)
	retry := func(when string, want orders.Outcome) {
		t.Helper()
		start := time.Now()
		again, err := e.saga.Place(ctx, e.user, e.request(1, "tok_visa"), "k")
		waited := time.Since(start)
		if err != nil || !again.Replayed || again.Order.ID != first.Order.ID || again.Outcome() != want {
			t.Fatalf("asked again %s (after %s): %s %+v %v, want the order replayed %s",
				when, waited.Round(time.Millisecond), again.Outcome(), again.Order, err, want)
		}
		// Well under the 5 s a retry waits on a key it takes as running
		// (KeyWait), with room for a loaded machine.
		if waited > 3*time.Second {
			t.Fatalf("asked again %s, the replay waited %s for a recovery run", when, waited.Round(time.Millisecond))
		}
	}
	// The run's first charge is held while the retry is asked, then it and
	// the others are answered 503, as the processor is still down.
	charging, released := make(chan struct{}), make(chan struct{})
	var hold, release sync.Once
	t.Cleanup(func() { release.Do(func() { close(released) }) })
	e.svc.SetHook(func(fn string, _ uuid.UUID) (time.Duration, int, int) {
		if fn != "charge-payment" {
			return 0, 0, 0
		}
		hold.Do(func() { close(charging); <-released })
		return 0, http.StatusServiceUnavailable, 0
	})
	done := make(chan saga.Report, 1)
	go func() { rep, _ := e.saga.Recover(ctx, 10); done <- rep }()
	select {
	case <-charging:
	case rep := <-done:
		t.Fatalf("the run ended before its charge: %+v", rep)
	}
	retry("while recovery drives the order", orders.OutcomePending)
	release.Do(func() { close(released) })
	if rep := <-done; rep.Pending != 1 {
		t.Fatalf("the run: %+v, want the order driven and still pending", rep)
	}
	retry("right after a run left the order pending", orders.OutcomePending)
	// The processor is back: the next run confirms the order.
	e.svc.SetHook(nil)
	e.age(t)
	if rep, err := e.saga.Recover(ctx, 10); err != nil || rep.Confirmed != 1 {
		t.Fatalf("the next run: %+v %v, want the order confirmed", rep, err)
	}
	retry("once a run ended the order", orders.OutcomeConfirmed)
	if n := e.count(t, `SELECT count(*) FROM orders WHERE user_id = $1`, e.user.UserID); n != 1 {
		t.Fatalf("%d orders for one key, want 1", n)
	}
	if c := e.svc.Counts(); c.Captures != 1 {
		t.Fatalf("%d captures, want 1", c.Captures)
	}
}

// One recovery run drives each order in a span of its own: "recover order",
// a child of the run's span, with the order's id, linked to the span of the
// checkout that wrote the order; and the order.placed.v1 the recovered order
// publishes carries a traceparent that descends from that span.
func TestEachRecoveredOrderIsASpanLinkedToItsCheckout(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	prevTP, prevProp := otel.GetTracerProvider(), otel.GetTextMapPropagator()
	t.Cleanup(func() { otel.SetTracerProvider(prevTP); otel.SetTextMapPropagator(prevProp) })
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	otel.SetTracerProvider(tp)
	otel.SetTextMapPropagator(propagation.TraceContext{})
	tracer := tp.Tracer("test")

	e := setup(t, nil)
	e.processorDown()
	checkouts := map[string]trace.SpanContext{} // order id → its checkout's span
	for range 2 {
		ctx, span := tracer.Start(context.Background(), "checkout")
		res, err := e.saga.Place(ctx, e.user, e.request(1, "tok_visa"), "")
		span.End()
		if err != nil || res.Outcome() != orders.OutcomePending {
			t.Fatalf("%s %v", res.Outcome(), err)
		}
		checkouts[res.Order.View().ID.String()] = span.SpanContext()
	}
	e.svc.SetHook(nil)
	e.age(t)
	ctx, run := tracer.Start(context.Background(), "recover-orders run")
	rep, err := e.saga.Recover(ctx, 10)
	run.End()
	if err != nil || rep.Confirmed != 2 {
		t.Fatalf("recover: %+v %v", rep, err)
	}

	ended := rec.Ended()
	byID := map[trace.SpanID]sdktrace.ReadOnlySpan{}
	var recovered []sdktrace.ReadOnlySpan
	for _, sp := range ended {
		byID[sp.SpanContext().SpanID()] = sp
		if sp.Name() == "recover order" {
			recovered = append(recovered, sp)
		}
	}
	if len(recovered) != 2 {
		t.Fatalf("%d recover order spans, want one per order (2)", len(recovered))
	}
	for _, sp := range recovered {
		var id string
		for _, kv := range sp.Attributes() {
			if kv.Key == "order.id" {
				id = kv.Value.AsString()
			}
		}
		checkout, ok := checkouts[id]
		if !ok {
			t.Errorf("recover order span with order.id %q, want one of %v", id, slices.Collect(maps.Keys(checkouts)))
			continue
		}
		delete(checkouts, id)
		if sp.Parent().SpanID() != run.SpanContext().SpanID() || sp.SpanContext().TraceID() != run.SpanContext().TraceID() {
			t.Errorf("order %s: span parent %s, want the run's span %s", id, sp.Parent().SpanID(), run.SpanContext().SpanID())
		}
		if links := sp.Links(); len(links) != 1 || links[0].SpanContext.TraceID() != checkout.TraceID() || links[0].SpanContext.SpanID() != checkout.SpanID() {
			t.Errorf("order %s: links %+v, want one to its checkout's span %s/%s", id, links, checkout.TraceID(), checkout.SpanID())
		}
		var tp string
		if err := e.pool.QueryRow(context.Background(), `SELECT envelope->>'traceparent' FROM outbox WHERE type = 'order.placed.v1' AND subject = $1`,
			id).Scan(&tp); err != nil {
			t.Fatalf("order %s: order.placed.v1: %v", id, err)
		}
		parts := strings.Split(tp, "-")
		if len(parts) != 4 || parts[1] != sp.SpanContext().TraceID().String() {
			t.Errorf("order %s: order.placed.v1 traceparent %q, want one in the recover order span's trace %s", id, tp, sp.SpanContext().TraceID())
			continue
		}
		if !descends(byID, parts[2], sp.SpanContext().SpanID()) {
			t.Errorf("order %s: order.placed.v1 traceparent %q does not descend from the recover order span %s", id, tp, sp.SpanContext().SpanID())
		}
	}
}

// descends reports whether the span spanID (hex) is ancestor or one of its
// descendants among spans.
func descends(spans map[trace.SpanID]sdktrace.ReadOnlySpan, spanID string, ancestor trace.SpanID) bool {
	id, err := trace.SpanIDFromHex(spanID)
	for seen := 0; err == nil && seen <= len(spans); seen++ {
		if id == ancestor {
			return true
		}
		sp, ok := spans[id]
		if !ok {
			return false
		}
		id = sp.Parent().SpanID()
	}
	return false
}

func TestCancelTwiceRefundsAndRestocksOnce(t *testing.T) {
	e := setup(t, nil)
	res, err := e.saga.Place(context.Background(), e.user, e.request(2, "tok_visa"), "")
	if err != nil || res.Outcome() != orders.OutcomeConfirmed {
		t.Fatalf("%s %v", res.Outcome(), err)
	}
	id := res.Order.View().ID
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Add(1)
		go func() { defer wg.Done(); _, errs[i] = e.saga.Cancel(context.Background(), e.user, id) }()
	}
	wg.Wait()
	ok := 0
	for _, err := range errs {
		switch {
		case err == nil:
			ok++
		case !fault.Is(err, fault.Conflict, "not_cancellable"):
			t.Fatalf("cancel: %v", err)
		}
	}
	if ok != 1 {
		t.Fatalf("%d cancels succeeded, want 1", ok)
	}
	if c := e.svc.Counts(); c.Refunds != 1 || c.Releases != 1 {
		t.Fatalf("refunds %d releases %d, want 1 1", c.Refunds, c.Releases)
	}
	if onHand, _ := e.svc.Stock(e.product.ID); onHand != 5 {
		t.Fatalf("on hand %d after restock, want 5", onHand)
	}
	if n := e.count(t, `SELECT count(*) FROM outbox WHERE type = 'order.cancelled.v1'`); n != 1 {
		t.Fatalf("%d cancelled events", n)
	}
}

// A slow driver's charge, retried after its first try's answer was lost, may
// reach payments only after recovery gave the order up (GiveUpAfter): the
// order ended payment_failed, its capture refunded. charge-payment then
// answers 402 payment_declined (a key refunded since never captures again),
// and the slow driver's refusal changes nothing: the order keeps the status
// and reason recovery gave it, the capture is refunded once, nothing is
// confirmed and the customer is told once.
func TestAChargeRefusedAfterRecoveryRefundedKeepsTheOrdersEnd(t *testing.T) {
	e := setup(t, nil)
	ctx := context.Background()
	var calls atomic.Int32
	charging, release := make(chan uuid.UUID, 1), make(chan struct{})
	e.svc.SetHook(func(fn string, id uuid.UUID) (time.Duration, int, int) {
		if fn != "charge-payment" {
			return 0, 0, 0
		}
		switch calls.Add(1) {
		case 1:
			return 0, 0, http.StatusServiceUnavailable // captured, the answer lost
		case 2:
			charging <- id
			<-release
		}
		return 0, 0, 0 // a later charge fails the test below, not hangs it
	})
	done := placeAsync(e.saga, e.user, e.request(1, "tok_visa"), "")
	var id uuid.UUID
	select {
	case id = <-charging:
	case r := <-done:
		t.Fatalf("the checkout ended before its retried charge: %s %v", r.res.Outcome(), r.err)
	}
	if got := e.svc.Payment(id); got != "captured" {
		t.Fatalf("payment %q, want captured by the first try", got)
	}
	// Recovery gives the order up while the retry is in flight.
	if _, err := e.pool.Exec(ctx, `UPDATE orders SET created_at = now() - interval '13 hours' WHERE id = $1`, id); err != nil {
		t.Fatal(err)
	}
	o, err := e.saga.Drive(ctx, id)
	if err != nil || o.Status != orders.PaymentFailed || o.Reason != orders.ReasonExpired {
		t.Fatalf("recovery: %s/%s %v, want payment_failed/expired", o.Status, o.Reason, err)
	}
	if got := e.svc.Payment(id); got != "refunded" {
		t.Fatalf("payment %q after recovery, want refunded", got)
	}
	close(release)
	r := <-done
	if r.err != nil || r.res.Order.Status != orders.PaymentFailed {
		t.Fatalf("the slow checkout: %+v %v, want the order payment_failed", r.res.Order, r.err)
	}
	stored, err := e.store.Get(ctx, id)
	if err != nil || stored.Status != orders.PaymentFailed || stored.Reason != orders.ReasonExpired {
		t.Fatalf("order %s/%s %v, want payment_failed/expired as recovery ended it", stored.Status, stored.Reason, err)
	}
	if c := e.svc.Counts(); c.Captures != 1 || c.Refunds != 1 || c.Calls["charge-payment"] != 2 {
		t.Errorf("captures %d refunds %d charge calls %d, want 1 1 2", c.Captures, c.Refunds, c.Calls["charge-payment"])
	}
	if n := e.count(t, `SELECT count(*) FROM outbox WHERE type = 'order.payment_failed.v1'`); n != 1 {
		t.Errorf("%d order.payment_failed.v1 events, want 1", n)
	}
	if n := e.count(t, `SELECT count(*) FROM outbox WHERE type = 'order.placed.v1'`); n != 0 {
		t.Errorf("%d order.placed.v1 events, want none", n)
	}
	if n := e.count(t, `SELECT count(*) FROM order_sagas WHERE order_id = $1 AND compensation = 'done'`, id); n != 1 {
		t.Error("compensation not settled")
	}
}

// A driver whose step is refused with an undo that refunds nothing (a
// reserve-stock refusal: release only) may find the order ended already in
// the refusal's status by others: here another driver confirmed it while the
// slow driver's reserve-stock was in flight, and its owner cancelled it, the
// refund failing (owed). The slow driver must not mark that compensation
// done after a release only: it gives back all an ended order may owe, as
// recovery does, and the capture is refunded. Until 2026-12-07 it released,
// marked the compensation done, and the captured money was never refunded.
func TestARefusalOnAnOrderCancelledMeanwhileStillRefundsIt(t *testing.T) {
	for _, key := range []string{"", "cancelled-meanwhile"} {
		t.Run("key="+key, func(t *testing.T) { refusalOnAnOrderCancelledMeanwhile(t, key) })
	}
}

// refusalOnAnOrderCancelledMeanwhile is TestARefusalOnAnOrderCancelledMeanwhileStillRefundsIt
// with key as the checkout's Idempotency-Key ("" for none): with one, the
// checkout answers what its key replays (the confirmation settled it), as a
// refusal finding the order ended in another status does (611cc97e); until
// 2026-12-07 it answered the order as stored, 409 not_cancellable.
func refusalOnAnOrderCancelledMeanwhile(t *testing.T, key string) {
	e := setup(t, nil)
	ctx := context.Background()
	id, r := e.refusedAfterACancel(t, "reserve-stock", http.StatusConflict, key, true) // refused: cancelled, release only
	e.answersTheEnd(t, r, key)
	if got := e.svc.Payment(id); got != "refunded" {
		t.Errorf("payment %q, want the cancelled order's capture refunded", got)
	}
	if c := e.svc.Counts(); c.Refunds != 1 || c.Captures != 1 {
		t.Errorf("captures %d refunds %d, want 1 1", c.Captures, c.Refunds)
	}
	if n := e.count(t, `SELECT count(*) FROM order_sagas WHERE order_id = $1 AND compensation = 'done'`, id); n != 1 {
		t.Error("compensation not settled")
	}
	stored, err := e.store.Get(ctx, id)
	if err != nil || stored.Status != orders.Cancelled || stored.Reason != orders.ReasonCancelled {
		t.Fatalf("order %s/%s %v, want cancelled by its owner", stored.Status, stored.Reason, err)
	}
	if n := e.count(t, `SELECT count(*) FROM outbox WHERE type = 'order.cancelled.v1'`); n != 1 {
		t.Errorf("%d order.cancelled.v1 events, want 1", n)
	}
}

// A refusal may find the order ended already in another status than its own:
// here the slow checkout's charge is refused (422, payment_failed) after
// another driver confirmed the order and its owner cancelled it. The order
// ended, so the checkout answers how: without a key, the order as it is,
// cancelled; with one, what the key replays (the confirmation settled it), as
// a lost confirmation's answer is. Until 2026-12-07 it answered the order as
// the run last saw it, 202 pending, and logged an error.
func TestARefusalOnAnOrderEndedOtherwiseAnswersTheOrdersEnd(t *testing.T) {
	for _, key := range []string{"", "refused-after-cancel"} {
		t.Run("key="+key, func(t *testing.T) { refusalOnAnOrderEndedOtherwise(t, key) })
	}
}

func refusalOnAnOrderEndedOtherwise(t *testing.T, key string) {
	e := setup(t, nil)
	id, r := e.refusedAfterACancel(t, "charge-payment", http.StatusUnprocessableEntity, key, false) // refused: payment_failed
	e.answersTheEnd(t, r, key)
	if got := e.svc.Payment(id); got != "refunded" {
		t.Errorf("payment %q, want the cancelled order's capture refunded", got)
	}
}

// refusedAfterACancel places an order of e's user with key (none when "")
// whose first call of fn is held until another driver has confirmed the
// order and its owner has cancelled it (with refund-payment down when
// refundDown: the refund stays owed), then answered status. It returns the
// order's id and the slow checkout's answer.
func (e *env) refusedAfterACancel(t *testing.T, fn string, status int, key string, refundDown bool) (uuid.UUID, placed) {
	t.Helper()
	ctx := context.Background()
	var calls atomic.Int32
	held, release := make(chan uuid.UUID, 1), make(chan struct{})
	e.svc.SetHook(func(f string, id uuid.UUID) (time.Duration, int, int) {
		if f == fn && calls.Add(1) == 1 {
			held <- id
			<-release
			return 0, status, 0
		}
		return 0, 0, 0
	})
	done := placeAsync(e.saga, e.user, e.request(1, "tok_visa"), key)
	var id uuid.UUID
	select {
	case id = <-held:
	case r := <-done:
		t.Fatalf("the checkout ended before its %s: %s %v", fn, r.res.Outcome(), r.err)
	}
	// Another driver confirms the order once it is written (reserve-stock
	// runs beside the write).
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		if _, err := e.store.Get(ctx, id); err == nil {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("the order was not written within 5 s: %v", err)
		}
	}
	if o, err := e.saga.Drive(ctx, id); err != nil || o.Status != orders.Confirmed {
		t.Fatalf("the other driver: %s %v, want confirmed", o.Status, err)
	}
	// Its owner cancels it.
	e.svc.SetHook(func(f string, _ uuid.UUID) (time.Duration, int, int) {
		if refundDown && f == "refund-payment" {
			return 0, http.StatusServiceUnavailable, 0
		}
		return 0, 0, 0
	})
	if o, err := e.saga.Cancel(ctx, e.user, id); err != nil || o.Status != orders.Cancelled {
		t.Fatalf("cancel: %s %v", o.Status, err)
	}
	if got := e.svc.Payment(id); refundDown && got != "captured" {
		t.Fatalf("payment %q with refund-payment down: the test proves nothing", got)
	}
	e.svc.SetHook(nil)
	close(release)
	return id, <-done
}

// answersTheEnd checks r, the answer of a checkout (with key, or none when
// "") refused after its order was confirmed and cancelled by its owner: the
// order as it ended without a key; with one, what the key replays (the
// confirmation settled it).
func (e *env) answersTheEnd(t *testing.T, r placed, key string) {
	t.Helper()
	if r.err != nil {
		t.Fatal(r.err)
	}
	if key == "" {
		if r.res.Order.Status != orders.Cancelled || r.res.Order.Reason != orders.ReasonCancelled || r.res.Outcome() != orders.OutcomeCancelled {
			t.Fatalf("the slow checkout: %s/%s, want the order as it ended, cancelled by its owner", r.res.Order.Status, r.res.Order.Reason)
		}
		return
	}
	again, err := e.saga.Place(context.Background(), e.user, e.request(1, "tok_visa"), key)
	if err != nil || !again.Replayed || again.Outcome() != orders.OutcomeConfirmed {
		t.Fatalf("asked again with its key: %s %+v %v, want a replay of the confirmation it settled", again.Outcome(), again, err)
	}
	if r.res.Order.Status != again.Order.Status || r.res.Outcome() != again.Outcome() {
		t.Fatalf("the slow checkout: %s (%s), want what its key replays: %s", r.res.Order.Status, r.res.Outcome(), again.Outcome())
	}
}

// A cancellation may commit with its answer lost (the connection resets
// after COMMIT). The cancel reads the order again: cancelled, it restocks and
// refunds now and answers the cancelled order, as a retry could not (409
// not_cancellable). Until 2026-12-05 it answered 503 and left both to
// recovery, and the customer was told twice that a cancellation that had
// gone through failed (found by helper-125).
func TestALostAnswerOfACancellationStillRefunds(t *testing.T) {
	e := setup(t, nil)
	s, f := e.withFaults(t)
	ctx := context.Background()
	res, err := s.Place(ctx, e.user, e.request(2, "tok_visa"), "")
	if err != nil || res.Outcome() != orders.OutcomeConfirmed {
		t.Fatalf("place: %s %v", res.Outcome(), err)
	}
	// Update's batch: the UPDATE of the order, the writes, COMMIT.
	f.Arm(pgtest.Fault{Marker: "UPDATE orders SET status = $2, reason = $3, updated_at = $4 WHERE id = $1", Committed: true})
	o, err := s.Cancel(ctx, e.user, res.Order.ID)
	if f.Fired() != 1 {
		t.Fatal("the cancellation's write was not broken: the test proves nothing")
	}
	if err != nil || o.Status != orders.Cancelled || o.Reason != orders.ReasonCancelled {
		t.Fatalf("cancel: %+v %v; want the order cancelled", o, err)
	}
	if c := e.svc.Counts(); c.Refunds != 1 || c.Releases != 1 {
		t.Errorf("refunds %d releases %d, want 1 1", c.Refunds, c.Releases)
	}
	if n := e.count(t, `SELECT count(*) FROM order_sagas WHERE compensation = 'done'`); n != 1 {
		t.Error("compensation not settled")
	}
	if n := e.count(t, `SELECT count(*) FROM outbox WHERE type = 'order.cancelled.v1'`); n != 1 {
		t.Errorf("%d cancelled events, want 1", n)
	}
	if _, err := s.Cancel(ctx, e.user, res.Order.ID); !fault.Is(err, fault.Conflict, "not_cancellable") {
		t.Errorf("a second cancel: %v, want not_cancellable", err)
	}
}

func TestCancelByAnotherUserIsNotFoundAndAdminMayCancel(t *testing.T) {
	e := setup(t, nil)
	res, _ := e.saga.Place(context.Background(), e.user, e.request(1, "tok_visa"), "")
	id := res.Order.View().ID
	other := auth.Identity{UserID: uuid.Must(uuid.NewV7()), Role: auth.RoleCustomer}
	if _, err := e.saga.Cancel(context.Background(), other, id); fault.KindOf(err) != fault.NotFound {
		t.Fatalf("other user: %v", err)
	}
	if c := e.svc.Counts(); c.Refunds != 0 {
		t.Fatal("refunded on a refused cancel")
	}
	admin := auth.Identity{UserID: uuid.Must(uuid.NewV7()), Role: auth.RoleAdmin}
	o, err := e.saga.Cancel(context.Background(), admin, id)
	if err != nil || o.Status != orders.Cancelled {
		t.Fatalf("admin cancel: %+v %v", o, err)
	}
}

func TestCancelOfFailedOrderIsNotCancellable(t *testing.T) {
	e := setup(t, nil)
	res, _ := e.saga.Place(context.Background(), e.user, e.request(1, "tok_chargeDeclinedInsufficientFunds"), "")
	_, err := e.saga.Cancel(context.Background(), e.user, res.Order.ID)
	if !fault.Is(err, fault.Conflict, "not_cancellable") {
		t.Fatalf("got %v", err)
	}
}

func TestRefusedTokenFailsTheOrderAndReleasesStock(t *testing.T) {
	e := setup(t, nil)
	res, err := e.saga.Place(context.Background(), e.user, e.request(1, "tok_unknown"), "")
	if err != nil {
		t.Fatal(err)
	}
	if res.Outcome() != orders.OutcomeTokenRefused {
		t.Fatalf("got %s %q", res.Outcome(), res.Detail)
	}
	o, _ := e.store.Get(context.Background(), res.Order.ID)
	if o.Status != orders.PaymentFailed {
		t.Fatalf("status %s", o.Status)
	}
	if _, reserved := e.svc.Stock(e.product.ID); reserved != 0 {
		t.Fatalf("%d units still reserved", reserved)
	}
	// The charge key is voided as well (refund-payment answers none): the
	// refusal may answer a retry while an earlier try is in flight (see
	// TestATokenRefusedAfterATimedOutChargeLeavesNoCapture).
	if c := e.svc.Counts(); c.Calls["refund-payment"] != 1 || c.Captures != 0 || e.svc.Payment(res.Order.ID) != "declined" {
		t.Fatalf("calls %v, captures %d, payment %q: want one refund, nothing captured, the key voided",
			c.Calls, c.Captures, e.svc.Payment(res.Order.ID))
	}
}

// A function the gateway does not have (404 without a problem body: faasd
// deletes and recreates a function to update it) is an outage, not a refusal:
// the order stays pending, nothing is refunded, and recovery confirms it once
// the function is back.
func TestAMissingFunctionLeavesTheOrderPendingUntilItIsBack(t *testing.T) {
	e := setup(t, nil)
	e.svc.SetMissing("charge-payment", true)
	res, err := e.saga.Place(context.Background(), e.user, e.request(1, "tok_visa"), "")
	if err != nil || res.Outcome() != orders.OutcomePending {
		t.Fatalf("got %+v %v, want a pending order", res, err)
	}
	if c := e.svc.Counts(); c.Captures != 0 || c.Refunds != 0 || c.Releases != 0 {
		t.Fatalf("captures %d refunds %d releases %d, want 0 0 0", c.Captures, c.Refunds, c.Releases)
	}
	e.svc.SetMissing("charge-payment", false)
	e.age(t)
	if rep, err := e.saga.Recover(context.Background(), 10); err != nil || rep.Confirmed != 1 {
		t.Fatalf("recover: %+v %v", rep, err)
	}
	if c := e.svc.Counts(); c.Captures != 1 || c.Refunds != 0 || c.Releases != 0 {
		t.Fatalf("captures %d refunds %d releases %d, want 1 0 0", c.Captures, c.Refunds, c.Releases)
	}
}

// TestCheckoutIsTwoOrdersTransactions: a confirmed checkout with an
// Idempotency-Key costs the orders database a read of the key (no commit),
// one transaction for the pending order with its key (one round trip) and one
// for the confirmation — which carries the steps' timeline entries, the event
// and the settled key — in one round trip too: BEGIN, the order's status
// asserted and changed, the writes and COMMIT in one batch
// (ordersdb.Store.UpdateKnown; it was two, BEGIN with the locked order and
// its lines, then the writes with COMMIT): at most 3 round trips (4 before);
// every step's outcome still shows in the timeline.
func TestCheckoutIsTwoOrdersTransactions(t *testing.T) {
	e := setup(t, nil)
	pool, rt := pgtest.Counted(t, e.pool)
	s := e.over(t, pool)
	key := uuid.NewString()
	rt.Reset()
	res, err := s.Place(context.Background(), e.user, e.request(1, "tok_visa"), key)
	if err != nil || res.Outcome() != orders.OutcomeConfirmed {
		t.Fatalf("place: %+v %v", res, err)
	}
	c := rt.Counts()
	t.Logf("keyed checkout: %d round trips, %d statements, %d commits", c.Trips, c.Statements, c.Commits)
	if c.Commits != 2 || c.Trips > 3 {
		t.Errorf("checkout: %d round trips and %d commits in the orders database, want at most 3 and 2 (the key's read, the pending order with its key, the confirmation)", c.Trips, c.Commits)
	}
	// Statements at most, one line: the key's read; the order, the key's
	// DELETE and INSERT, the line, the saga and the created entry; BEGIN, the
	// order's asserted UPDATE, the saga's UPDATE, the outbox INSERT with its
	// NOTIFY, the timeline's four entries in one INSERT, the key's
	// settlement, COMMIT. 20 with the locked read, one INSERT per entry and
	// the NOTIFY a statement of its own.
	if c.Statements > 14 {
		t.Errorf("checkout: %d statements in the orders database, want at most 14", c.Statements)
	}
	want := []string{"order.created:ok", "stock.reserve:ok", "payment.charge:ok",
		"order.confirmed:ok", "order.placed.v1:recorded"}
	if diff := cmp.Diff(want, e.steps(t, res.Order.ID)); diff != "" {
		t.Fatalf("timeline (-want +got):\n%s", diff)
	}
	// A replay reads the key, then the order with its lines (2 round trips): no commit, and it
	// does not depend on the catalog (pricing runs beside the key's read, and is cancelled).
	e.catalog.SetDown(true)
	rt.Reset()
	again, err := s.Place(context.Background(), e.user, e.request(1, "tok_visa"), key)
	if err != nil || !again.Replayed {
		t.Fatalf("replay: %+v %v", again, err)
	}
	same(t, again, res)
	c = rt.Counts()
	t.Logf("replay: %d round trips, %d commits", c.Trips, c.Commits)
	if c.Commits != 0 || c.Trips > 2 {
		t.Errorf("replay: %d round trips, %d commits; want at most 2 and 0", c.Trips, c.Commits)
	}
}

// meeting lets its parties in at once: each arrival waits until want parties
// are in (or patience runs out, as it does for every party of a caller that
// sends them one after the other), and most is how many were ever in at once.
type meeting struct {
	mu             sync.Mutex
	want, in, most int
	all            chan struct{}
}

func newMeeting(want int) *meeting { return &meeting{want: want, all: make(chan struct{})} }

func (m *meeting) arrive() {
	m.mu.Lock()
	m.in++
	if m.in > m.most {
		m.most = m.in
		if m.most == m.want {
			close(m.all)
		}
	}
	m.mu.Unlock()
	select {
	case <-m.all:
	case <-time.After(2 * time.Second): // below the catalog client's 3 s per call
	}
	m.mu.Lock()
	m.in--
	m.mu.Unlock()
}

func (m *meeting) maxIn() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.most
}

type meetingLimit struct{ m *meeting }

func (l meetingLimit) Allow(context.Context, string) error { l.m.arrive(); return nil }

func (meetingLimit) Refused(string) error { return nil }

type meetingCatalog struct {
	saga.Catalog
	m *meeting
}

func (c meetingCatalog) GetProduct(ctx context.Context, id uuid.UUID) (catalogclient.Product, error) {
	c.m.arrive()
	return c.Catalog.GetProduct(ctx, id)
}

// meetingTracer makes the key's read (ordersdb.Store.CheckKey) a party.
type meetingTracer struct{ m *meeting }

func (t meetingTracer) TraceQueryStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceQueryStartData) context.Context {
	if strings.Contains(d.SQL, "FROM idempotency_keys WHERE user_id") {
		t.m.arrive()
	}
	return ctx
}

func (meetingTracer) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

// Before the pending order is written a checkout waits on three other
// servers: the caller's limit (Redis), the key (the orders database) and the
// price of every line (get-product through the gateway). None needs another's
// answer, so all are asked at once: with a 2-line order, the limit, the key
// and both lines are in flight together. The checkout answers as before.
func TestLimitKeyAndPricesAreAskedAtOnce(t *testing.T) {
	e := setup(t, nil)
	second := e.catalog.Add("SKU-2", 500, "USD")
	e.svc.SetStock(second.ID, 5)
	m := newMeeting(4)
	pc := e.pool.Config()
	pc.ConnConfig.Tracer = meetingTracer{m}
	pool, err := pgxpool.NewWithConfig(context.Background(), pc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	cfg := e.cfg
	cfg.Store = ordersdb.New(pool)
	cfg.Limit = meetingLimit{m}
	cfg.Catalog = meetingCatalog{Catalog: cfg.Catalog, m: m}
	s, err := saga.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	req := e.request(1, "tok_visa")
	req.Items = append(req.Items, orders.ItemRequest{ProductID: second.ID, Quantity: 2})
	res, err := s.Place(context.Background(), e.user, req, uuid.NewString())
	if n := m.maxIn(); n != 4 {
		t.Errorf("at most %d of the limit, the key's read and the 2 lines' prices were asked at once, want all 4", n)
	}
	if err != nil || res.Outcome() != orders.OutcomeConfirmed || res.Order.Total.Amount != 1299+2*500 {
		t.Fatalf("place: %+v %v", res, err)
	}
}

// refusingLimit refuses every request and remembers it, as ratelimit.Limiter
// does: Refused answers the refusal Allow gave.
type refusingLimit struct {
	mu      sync.Mutex
	allowed int // Allow calls
	refused bool
}

func (l *refusingLimit) Allow(context.Context, string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.allowed++
	l.refused = true
	return fault.E(fault.RateLimited, fault.CodeRateLimited, "too many requests")
}

func (l *refusingLimit) Refused(string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.refused {
		return nil
	}
	return fault.E(fault.RateLimited, fault.CodeRateLimited, "too many requests")
}

type countingCatalog struct {
	saga.Catalog
	calls *atomic.Int64
}

func (c countingCatalog) GetProduct(ctx context.Context, id uuid.UUID) (catalogclient.Product, error) {
	c.calls.Add(1)
	return c.Catalog.GetProduct(ctx, id)
}

// A caller the limit refused is refused again, in the same window, before
// anything starts: no count, no key read, no get-product call (only its
// first refused request ran beside pricing).
func TestARefusedCallerStartsNothing(t *testing.T) {
	e := setup(t, nil)
	limit := &refusingLimit{}
	var calls atomic.Int64
	cfg := e.cfg
	cfg.Limit = limit
	cfg.Catalog = countingCatalog{Catalog: cfg.Catalog, calls: &calls}
	s, err := saga.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Place(context.Background(), e.user, e.request(1, "tok_visa"), uuid.NewString()); !fault.Is(err, fault.RateLimited, fault.CodeRateLimited) {
		t.Fatalf("first: %v, want rate_limited", err)
	}
	before := calls.Load()
	for range 3 {
		if _, err := s.Place(context.Background(), e.user, e.request(1, "tok_visa"), uuid.NewString()); !fault.Is(err, fault.RateLimited, fault.CodeRateLimited) {
			t.Fatalf("again: %v, want rate_limited", err)
		}
	}
	if n := calls.Load() - before; n != 0 || limit.allowed != 1 {
		t.Errorf("three requests of a refused caller made %d get-product calls and %d counts, want 0 and 0", n, limit.allowed-1)
	}
}

// watchedStock is the stock service behind the fake gateway with its calls
// recorded: every reserve-stock call is also sent on reserving as it starts.
type watchedStock struct {
	saga.Stock
	reserving chan uuid.UUID
	releasing chan uuid.UUID // every release-stock call, as it starts
	gate      chan struct{}  // when not nil, reserve-stock calls wait for it to close
	mu        sync.Mutex
	calls     []string // "reserve <order id>", "release <order id>", in order
	cancelled int      // reserve-stock calls whose context was done when they ended
}

func newWatchedStock(s saga.Stock) *watchedStock {
	return &watchedStock{Stock: s, reserving: make(chan uuid.UUID, 16), releasing: make(chan uuid.UUID, 16)}
}

func (w *watchedStock) record(call string, id uuid.UUID) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.calls = append(w.calls, call+" "+id.String())
}

func (w *watchedStock) Reserve(ctx context.Context, id uuid.UUID, lines []orders.Line) error {
	w.record("reserve", id)
	w.reserving <- id
	if w.gate != nil {
		<-w.gate
	}
	err := w.Stock.Reserve(ctx, id, lines)
	if ctx.Err() != nil {
		w.mu.Lock()
		w.cancelled++
		w.mu.Unlock()
	}
	return err
}

func (w *watchedStock) Release(ctx context.Context, id uuid.UUID) error {
	w.record("release", id)
	w.releasing <- id
	return w.Stock.Release(ctx, id)
}

func (w *watchedStock) called(call string, id uuid.UUID) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for _, c := range w.calls {
		if c == call+" "+id.String() {
			n++
		}
	}
	return n
}

// withWatchedStock is e's saga with its stock calls watched.
func (e *env) withWatchedStock(t *testing.T) (*saga.Saga, *watchedStock) {
	t.Helper()
	w := newWatchedStock(e.cfg.Stock)
	cfg := e.cfg
	cfg.Stock = w
	s, err := saga.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s, w
}

// holdOrderWrites holds the orders table in SHARE mode, in a transaction of
// its own, until the function it returns is called (or the test ends): the
// write of a pending order (ordersdb.Store.Create) waits for it; reads do not.
func (e *env) holdOrderWrites(t *testing.T) (release func()) {
	t.Helper()
	ctx := context.Background()
	tx, err := e.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `LOCK TABLE orders IN SHARE MODE`); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	release = func() { once.Do(func() { _ = tx.Rollback(ctx) }) }
	t.Cleanup(release)
	return release
}

// reservedWhileHeld waits for n reserve-stock calls to start while the write
// of the order is held up (holdOrderWrites), and returns the order ids; it
// reports an error for those that do not start within 5 s.
func reservedWhileHeld(t *testing.T, w *watchedStock, n int) []uuid.UUID {
	t.Helper()
	var ids []uuid.UUID
	timeout := time.After(5 * time.Second)
	for len(ids) < n {
		select {
		case id := <-w.reserving:
			ids = append(ids, id)
		case <-timeout:
			t.Errorf("%d of %d reserve-stock calls started while the pending order's write was held up, want all: reserve-stock waits for the write", len(ids), n)
			return ids
		}
	}
	return ids
}

// waitForALockWait waits until a session of e's database waits on a lock
// (a write on the unique key a transaction not committed yet inserted).
func (e *env) waitForALockWait(t *testing.T) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		if e.count(t, `SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'`) > 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("no session waited on a lock within 5 s")
		}
	}
}

type placed struct {
	res orders.Checkout
	err error
}

func placeAsync(s *saga.Saga, who auth.Identity, req orders.PlaceRequest, key string) <-chan placed {
	ch := make(chan placed, 1)
	go func() {
		res, err := s.Place(context.Background(), who, req, key)
		ch <- placed{res, err}
	}()
	return ch
}

// reserve-stock starts while the pending order is being written, not after:
// with the order's write held up by a lock, the reservation is made and the
// order not yet visible; once the write goes through, the checkout confirms
// with reserve-stock called once and the timeline of a sequential checkout.
func TestReserveRunsWhileTheOrderIsWritten(t *testing.T) {
	e := setup(t, nil)
	s, w := e.withWatchedStock(t)
	release := e.holdOrderWrites(t)
	done := placeAsync(s, e.user, e.request(2, "tok_visa"), uuid.NewString())
	ids := reservedWhileHeld(t, w, 1)
	if len(ids) == 1 {
		if n := e.count(t, `SELECT count(*) FROM orders`); n != 0 {
			t.Errorf("%d orders visible while their write was held up", n)
		}
		if _, reserved := e.svc.Stock(e.product.ID); reserved != 2 {
			t.Errorf("%d units reserved before the order was written, want 2", reserved)
		}
	}
	release()
	p := <-done
	if p.err != nil || p.res.Outcome() != orders.OutcomeConfirmed {
		t.Fatalf("place: %+v %v", p.res, p.err)
	}
	if len(ids) == 1 && ids[0] != p.res.Order.ID {
		t.Errorf("reserved order %s, placed %s", ids[0], p.res.Order.ID)
	}
	if c := e.svc.Counts(); c.Calls["reserve-stock"] != 1 || c.Commits != 0 || c.Releases != 0 {
		t.Errorf("reserve-stock calls %d, commits %d, releases %d; want 1 0 0", c.Calls["reserve-stock"], c.Commits, c.Releases)
	}
	want := []string{"order.created:ok", "stock.reserve:ok", "payment.charge:ok",
		"order.confirmed:ok", "order.placed.v1:recorded"}
	if diff := cmp.Diff(want, e.steps(t, p.res.Order.ID)); diff != "" {
		t.Fatalf("timeline (-want +got):\n%s", diff)
	}
}

// The reservation made beside the order's write runs on the saga's context,
// not the client's: a client that hangs up while it is in flight does not cut
// it short, and the checkout confirms.
func TestReserveBesideTheWriteOutlivesTheClient(t *testing.T) {
	e := setup(t, nil)
	s, w := e.withWatchedStock(t)
	w.gate = make(chan struct{})
	release := e.holdOrderWrites(t)
	ctx, hangUp := context.WithCancel(context.Background())
	defer hangUp()
	done := make(chan placed, 1)
	go func() {
		res, err := s.Place(ctx, e.user, e.request(1, "tok_visa"), "")
		done <- placed{res, err}
	}()
	reservedWhileHeld(t, w, 1)
	hangUp()
	close(w.gate)
	release()
	p := <-done
	if p.err != nil || p.res.Outcome() != orders.OutcomeConfirmed {
		t.Fatalf("place: %s %+v %v", p.res.Outcome(), p.res, p.err)
	}
	w.mu.Lock()
	cancelled := w.cancelled
	w.mu.Unlock()
	if cancelled != 0 {
		t.Errorf("%d reserve-stock calls ended with their context done, want 0", cancelled)
	}
	if c := e.svc.Counts(); c.Calls["reserve-stock"] != 1 || c.Commits != 0 {
		t.Errorf("reserve-stock calls %d, commits %d; want 1 and 0", c.Calls["reserve-stock"], c.Commits)
	}
}

// Two requests with one key both reserve while their writes are held up;
// the one whose write finds the key taken writes nothing and gives its hold
// back at once, then answers as before: the winner's checkout, replayed.
func TestTheTwinThatLosesTheKeyReleasesItsHold(t *testing.T) {
	e := setup(t, nil)
	s, w := e.withWatchedStock(t)
	release := e.holdOrderWrites(t)
	key := uuid.NewString()
	a := placeAsync(s, e.user, e.request(2, "tok_visa"), key)
	b := placeAsync(s, e.user, e.request(2, "tok_visa"), key)
	ids := reservedWhileHeld(t, w, 2)
	release()
	pa, pb := <-a, <-b
	if pa.err != nil || pb.err != nil {
		t.Fatalf("place: %v, %v", pa.err, pb.err)
	}
	if pa.res.Replayed == pb.res.Replayed {
		t.Fatalf("replayed %v and %v, want one placed and one replay", pa.res.Replayed, pb.res.Replayed)
	}
	won, lost := pa.res, pb.res
	if won.Replayed {
		won, lost = lost, won
	}
	if won.Outcome() != orders.OutcomeConfirmed {
		t.Fatalf("outcome %s", won.Outcome())
	}
	same(t, lost, won)
	if n := e.count(t, `SELECT count(*) FROM orders`); n != 1 {
		t.Fatalf("%d orders, want 1", n)
	}
	if len(ids) != 2 {
		t.FailNow()
	}
	twin := ids[0]
	if twin == won.Order.ID {
		twin = ids[1]
	}
	if twin == won.Order.ID {
		t.Fatalf("both reservations were of the placed order %s", won.Order.ID)
	}
	if n := w.called("release", twin); n != 1 {
		t.Errorf("the twin's hold was released %d times, want 1", n)
	}
	if n := w.called("release", won.Order.ID); n != 0 {
		t.Errorf("the placed order's hold was released %d times", n)
	}
	if got := e.svc.Reservation(twin); got != "released" {
		t.Errorf("the twin's hold is %q, want released", got)
	}
	if onHand, reserved := e.svc.Stock(e.product.ID); onHand != 5 || reserved != 2 {
		t.Errorf("stock on_hand %d reserved %d, want 5 2 (the order's hold, for the sweep)", onHand, reserved)
	}
	if c := e.svc.Counts(); c.Charges != 1 {
		t.Errorf("%d charges, want 1", c.Charges)
	}
}

// A reservation refused for want of stock while the order is written ends
// the order exactly as before: cancelled out_of_stock (with its
// order.cancelled.v1, since 2026-12-05), never charged, with reserve-stock
// called once and its refusal in the timeline and the metrics.
func TestOutOfStockWhileTheOrderIsWritten(t *testing.T) {
	e := setup(t, nil)
	s, w := e.withWatchedStock(t)
	reg := prometheus.NewRegistry()
	ctx := telemetry.WithShop(context.Background(), telemetry.NewShop(reg))
	release := e.holdOrderWrites(t)
	done := make(chan placed, 1)
	go func() {
		res, err := s.Place(ctx, e.user, e.request(6, "tok_visa"), uuid.NewString())
		done <- placed{res, err}
	}()
	reservedWhileHeld(t, w, 1)
	release()
	p := <-done
	if p.err != nil || p.res.Outcome() != orders.OutcomeOutOfStock {
		t.Fatalf("place: %s %+v %v", p.res.Outcome(), p.res, p.err)
	}
	o, err := e.store.Get(context.Background(), p.res.Order.ID)
	if err != nil || o.Status != orders.Cancelled || o.Reason != orders.ReasonOutOfStock {
		t.Fatalf("order %+v %v", o, err)
	}
	if c := e.svc.Counts(); c.Calls["reserve-stock"] != 1 || c.Calls["charge-payment"] != 0 {
		t.Errorf("reserve-stock calls %d, charge-payment calls %d; want 1 and 0", c.Calls["reserve-stock"], c.Calls["charge-payment"])
	}
	want := []string{"order.created:ok", "stock.reserve:refused", "order.cancelled:ok", "order.cancelled.v1:recorded", "stock.release:ok"}
	if diff := cmp.Diff(want, e.steps(t, p.res.Order.ID)); diff != "" {
		t.Errorf("timeline (-want +got):\n%s", diff)
	}
	metrics := `
# HELP shop_reservation_conflicts_total Reservations refused for want of stock, seen by the checkout saga.
# TYPE shop_reservation_conflicts_total counter
shop_reservation_conflicts_total 1
# HELP shop_saga_step_failures_total Saga step attempts that failed, by step and kind: refused (the other service said no) or error (transient; retried).
# TYPE shop_saga_step_failures_total counter
shop_saga_step_failures_total{kind="refused",step="stock.reserve"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(metrics), "shop_reservation_conflicts_total", "shop_saga_step_failures_total"); err != nil {
		t.Error(err)
	}
}

// A reservation that fails transiently while the order is written is tried
// again by the saga, after the write, and the order confirms.
func TestATransientReserveWhileTheOrderIsWrittenIsRetried(t *testing.T) {
	e := setup(t, nil)
	s, w := e.withWatchedStock(t)
	var reserves atomic.Int64
	e.svc.SetHook(func(fn string, _ uuid.UUID) (time.Duration, int, int) {
		if fn == "reserve-stock" && reserves.Add(1) == 1 {
			return 0, http.StatusServiceUnavailable, 0
		}
		return 0, 0, 0
	})
	release := e.holdOrderWrites(t)
	done := placeAsync(s, e.user, e.request(1, "tok_visa"), uuid.NewString())
	reservedWhileHeld(t, w, 1)
	release()
	p := <-done
	if p.err != nil || p.res.Outcome() != orders.OutcomeConfirmed {
		t.Fatalf("place: %s %+v %v", p.res.Outcome(), p.res, p.err)
	}
	if c := e.svc.Counts(); c.Calls["reserve-stock"] != 2 || c.Commits != 0 {
		t.Errorf("reserve-stock calls %d, commits %d; want 2 and 0", c.Calls["reserve-stock"], c.Commits)
	}
	want := []string{"order.created:ok", "stock.reserve:error", "stock.reserve:ok", "payment.charge:ok",
		"order.confirmed:ok", "order.placed.v1:recorded"}
	if diff := cmp.Diff(want, e.steps(t, p.res.Order.ID)); diff != "" {
		t.Errorf("timeline (-want +got):\n%s", diff)
	}
}

// When the key a twin held becomes free again while a request waits for it,
// the request writes its order after all, under another order id than the
// one whose hold it gave back, and reserves again: no order is written with
// a released hold (which commit-stock refuses: a release is final).
func TestAWriteAfterTheKeyIsFreeAgainIsANewOrder(t *testing.T) {
	e := setup(t, nil)
	s, w := e.withWatchedStock(t)
	ctx := context.Background()
	key, req := uuid.NewString(), e.request(2, "tok_visa")
	// The twin: a key claimed in a transaction not committed yet, so the
	// request finds the key free, then finds it taken when it writes.
	twin, err := e.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = twin.Rollback(ctx) })
	if _, err := twin.Exec(ctx, `INSERT INTO idempotency_keys (user_id, key, request_hash, expires_at)
		VALUES ($1, $2, $3, now() + interval '1 hour')`, e.user.UserID, key, req.Hash()); err != nil {
		t.Fatal(err)
	}
	done := placeAsync(s, e.user, req, key)
	ids := reservedWhileHeld(t, w, 1)
	e.waitForALockWait(t) // the request's write, on the twin's key
	if err := twin.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	var released uuid.UUID
	select {
	case released = <-w.releasing:
	case <-time.After(5 * time.Second):
		t.Errorf("no hold was released after the write found the key taken")
	}
	// The twin's key goes away (as an abandoned key would): the request,
	// still waiting for it, finds it free.
	if _, err := e.pool.Exec(ctx, `DELETE FROM idempotency_keys WHERE user_id = $1 AND key = $2`, e.user.UserID, key); err != nil {
		t.Fatal(err)
	}
	p := <-done
	if p.err != nil || p.res.Replayed || p.res.Outcome() != orders.OutcomeConfirmed {
		t.Fatalf("place: %+v %v", p.res, p.err)
	}
	if len(ids) != 1 || released != ids[0] {
		t.Fatalf("reserved %v while the write was held up, released %s", ids, released)
	}
	id := p.res.Order.ID
	if id == ids[0] {
		t.Fatalf("the order was written under the id %s whose hold was given back", id)
	}
	if got := e.svc.Reservation(ids[0]); got != "released" {
		t.Errorf("the first hold is %q, want released", got)
	}
	if got := e.svc.Reservation(id); got != "held" {
		t.Errorf("the order's hold is %q, want held (for the sweep)", got)
	}
	if n := w.called("reserve", id); n != 1 {
		t.Errorf("the order was reserved %d times, want 1", n)
	}
	if onHand, reserved := e.svc.Stock(e.product.ID); onHand != 5 || reserved != 2 {
		t.Errorf("stock on_hand %d reserved %d, want 5 2 (the order's hold, for the sweep)", onHand, reserved)
	}
	want := []string{"order.created:ok", "stock.reserve:ok", "payment.charge:ok",
		"order.confirmed:ok", "order.placed.v1:recorded"}
	if diff := cmp.Diff(want, e.steps(t, id)); diff != "" {
		t.Errorf("timeline (-want +got):\n%s", diff)
	}
}

// When the orders database cannot be reached, the order is certainly not
// written: the hold taken beside its write is given back at once (not at its
// expiry, 15 min later), and the checkout fails as before, unavailable.
func TestAnUnreachableOrdersDatabaseGivesTheHoldBack(t *testing.T) {
	e := setup(t, nil)
	down, err := pgxpool.New(context.Background(), "postgres://shop@127.0.0.1:1/orders?connect_timeout=2")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(down.Close)
	w := newWatchedStock(e.cfg.Stock)
	cfg := e.cfg
	cfg.Store, cfg.Stock = ordersdb.New(down), w
	s, err := saga.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.Place(context.Background(), e.user, e.request(2, "tok_visa"), "")
	if fault.KindOf(err) != fault.Unavailable {
		t.Fatalf("place: %v, want unavailable", err)
	}
	var id uuid.UUID
	select {
	case id = <-w.reserving:
	default:
		t.Fatal("no reservation was made beside the write")
	}
	if got := e.svc.Reservation(id); got != "released" {
		t.Errorf("the hold is %q, want released", got)
	}
	if onHand, reserved := e.svc.Stock(e.product.ID); onHand != 5 || reserved != 0 {
		t.Errorf("stock on_hand %d reserved %d, want 5 0", onHand, reserved)
	}
}

// withFaults is e's saga over a pool of e's database whose connections break
// as the returned Faults plans.
func (e *env) withFaults(t *testing.T) (*saga.Saga, *pgtest.Faults) {
	t.Helper()
	pool, f := pgtest.WithFaults(t, e.pool)
	return e.over(t, pool), f
}

// placeBreakingConfirmation places an order of e's user through a saga
// whose confirmation's round trip breaks — after its COMMIT when committed,
// before the statement reaches the server otherwise — and runs then with the
// order's id in the instant before the saga reads the order again. It fails
// the test unless the break happened.
func (e *env) placeBreakingConfirmation(t *testing.T, committed bool, key string, then func(id uuid.UUID)) (orders.Checkout, error) {
	t.Helper()
	s, f := e.withFaults(t)
	ctx := context.Background()
	f.Arm(pgtest.Fault{Marker: "WITH u AS (UPDATE orders SET status", Committed: committed, Then: func() {
		var id uuid.UUID
		if err := e.pool.QueryRow(ctx, `SELECT id FROM orders WHERE user_id = $1`, e.user.UserID).Scan(&id); err != nil {
			t.Error(err)
			return
		}
		then(id)
	}})
	res, err := s.Place(ctx, e.user, e.request(2, "tok_visa"), key)
	if f.Fired() != 1 {
		t.Fatal("the confirmation was not broken: the test proves nothing")
	}
	return res, err
}

// over returns a saga configured as e's whose orders store is on pool (the
// same database through another pool).
func (e *env) over(t *testing.T, pool *pgxpool.Pool) *saga.Saga {
	t.Helper()
	cfg := e.cfg
	cfg.Store = ordersdb.New(pool)
	s, err := saga.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// noLockWaits waits (up to 2 s) until no server process of e's database
// waits for a lock, then a moment more: a write that waited has then taken
// its lock and committed, or is gone.
func (e *env) noLockWaits(t *testing.T) {
	t.Helper()
	for end := time.Now().Add(2 * time.Second); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		if e.count(t, `SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'`) == 0 {
			break
		}
	}
	time.Sleep(100 * time.Millisecond)
}

// orderWrite picks the round trip of ordersdb.Store.Create, the pending
// order's batch.
const orderWrite = "INSERT INTO orders ("

// The order's write (one batch, its own implicit transaction) may commit and
// its answer be lost: the connection resets after COMMIT. A customer answered
// 503 with no order believes the checkout failed and, without an
// Idempotency-Key, buys again, while recover-orders charges and confirms the
// first order minutes later: charged twice. So the checkout settles the doubt
// before it answers: written, the saga goes on (201); the database gone
// since, the order is answered pending (202, naming it: the customer follows
// it instead of buying again); not written, the hold is given back and the
// answer is 503, as before. Whichever, once recover-orders has run, the
// customer's one purchase is one capture.
func TestALostAnswerOfTheOrdersWriteNeverChargesTwice(t *testing.T) {
	for _, tt := range []struct {
		name  string
		fault pgtest.Fault
		want  orders.Outcome // "" for an error, answered with no order
	}{
		{"written", pgtest.Fault{Marker: orderWrite, Committed: true}, orders.OutcomeConfirmed},
		{"written and the database gone", pgtest.Fault{Marker: orderWrite, Committed: true, Down: true}, orders.OutcomePending},
		{"not written", pgtest.Fault{Marker: orderWrite}, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := setup(t, nil)
			s, f := e.withFaults(t)
			f.Arm(tt.fault)
			res, err := s.Place(context.Background(), e.user, e.request(1, "tok_visa"), "")
			if f.Fired() != 1 {
				t.Fatal("the order's write was not broken: the test proves nothing")
			}
			f.SetDown(false)
			if tt.want == "" {
				if fault.KindOf(err) != fault.Unavailable {
					t.Fatalf("place: %+v %v, want unavailable", res, err)
				}
				if n := e.count(t, `SELECT count(*) FROM orders`); n != 0 {
					t.Fatalf("%d orders written, want 0", n)
				}
				if _, reserved := e.svc.Stock(e.product.ID); reserved != 0 {
					t.Fatalf("%d units held for an order never written, want 0 (given back)", reserved)
				}
				// Told nothing was placed, the customer buys again.
				if res, err = s.Place(context.Background(), e.user, e.request(1, "tok_visa"), ""); err != nil {
					t.Fatalf("the second purchase: %v", err)
				}
			} else if err != nil || res.Outcome() != tt.want {
				// Today's answer: 503 with no order. The customer buys
				// again, as the test's customer does here.
				again, aerr := s.Place(context.Background(), e.user, e.request(1, "tok_visa"), "")
				e.age(t)
				_, _ = e.saga.Recover(context.Background(), 10)
				t.Fatalf("place: %s %v, want %s naming the order; the customer bought again (%s %v): %d captures",
					res.Outcome(), err, tt.want, again.Outcome(), aerr, e.svc.Counts().Captures)
			}
			id := res.Order.ID
			if o, err := e.store.Get(context.Background(), id); err != nil || o.Status != res.Order.Status {
				t.Fatalf("the order answered: %+v %v, want it stored as answered (%s)", o, err, res.Order.Status)
			}
			e.age(t)
			if _, err := e.saga.Recover(context.Background(), 10); err != nil {
				t.Fatal(err)
			}
			if o, err := e.store.Get(context.Background(), id); err != nil || o.Status != orders.Confirmed {
				t.Fatalf("after recovery: %+v %v, want confirmed", o, err)
			}
			if n := e.count(t, `SELECT count(*) FROM orders WHERE user_id = $1`, e.user.UserID); n != 1 {
				t.Fatalf("%d orders, want 1", n)
			}
			if c := e.svc.Counts(); c.Captures != 1 {
				t.Fatalf("%d captures for one purchase, want 1", c.Captures)
			}
		})
	}
}

// A checkout whose order's write lost its answer keeps its key while it
// settles the write: the lease is renewed from the write on, not only once
// the write is known to be made. Until 2026-12-07 the renewals began only
// then, so a first reserve-stock try slower than the lease (here held) let a
// retry with the key be answered the pending order, 202, while the first
// request went on to confirm it.
func TestACheckoutSettlingItsWriteKeepsItsKey(t *testing.T) {
	const lease = 2 * time.Second
	e := setup(t, func(c *saga.Config) { c.Lease = lease; c.KeyWait = 100 * time.Millisecond })
	s, f := e.withFaults(t)
	f.Arm(pgtest.Fault{Marker: orderWrite, Committed: true})
	reserving, release := make(chan struct{}), make(chan struct{})
	var held atomic.Bool
	e.svc.SetHook(func(fn string, _ uuid.UUID) (time.Duration, int, int) {
		if fn == "reserve-stock" && held.CompareAndSwap(false, true) {
			close(reserving)
			<-release // the first request's first try only
		}
		return 0, 0, 0
	})
	done := placeAsync(s, e.user, e.request(1, "tok_visa"), "settling")
	select {
	case <-reserving:
	case r := <-done:
		t.Fatalf("the checkout ended before its reservation: %s %v", r.res.Outcome(), r.err)
	}
	ctx := context.Background()
	for deadline := time.Now().Add(5 * time.Second); f.Fired() != 1 || e.count(t, `SELECT count(*) FROM orders`) != 1; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("within 5 s the order's write did not break (%d) or the order is not written", f.Fired())
		}
	}
	// The order is written and its write's answer lost; the request waits for
	// its first reservation before settling the write. Wait, by the
	// database's clock, the lease's length twice over.
	e.untilDBClock(t, 2*lease)
	again, err := e.saga.Place(ctx, e.user, e.request(1, "tok_visa"), "settling")
	close(release)
	if !fault.Is(err, fault.Conflict, fault.CodeRequestInProgress) {
		t.Fatalf("asked again while the checkout settles its write: %s %+v %v, want request_in_progress", again.Outcome(), again.Order, err)
	}
	if r := <-done; r.err != nil || r.res.Outcome() != orders.OutcomeConfirmed {
		t.Fatalf("the checkout: %s %v, want confirmed", r.res.Outcome(), r.err)
	}
	if c := e.svc.Counts(); c.Calls["charge-payment"] != 1 || c.Captures != 1 {
		t.Fatalf("%d charge calls, %d captures; want 1 and 1", c.Calls["charge-payment"], c.Captures)
	}
}

// A write that never went out is not in doubt, whatever the error: here
// every connection of the orders pool is taken (a burst of checkouts), and
// the order's write gives up waiting for one at the saga's deadline. Nothing
// was sent, so the checkout answers 503 "not placed" and gives its hold back
// at once. Until 2026-12-04 only a refused connection counted as "not
// written": this one was looked up, the look-up waited for a connection too,
// and the checkout answered 202 naming an order that was never written.
func TestAWriteThatNeverWentOutIsNotInDoubt(t *testing.T) {
	e := setup(t, func(c *saga.Config) { c.Timeout = 500 * time.Millisecond; c.RecoverAfter = time.Minute })
	pc := e.pool.Config()
	pc.MaxConns = 1
	pool, err := pgxpool.NewWithConfig(context.Background(), pc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	busy, err := pool.Acquire(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Release()
	res, err := e.over(t, pool).Place(context.Background(), e.user, e.request(1, "tok_visa"), "")
	if fault.KindOf(err) != fault.Unavailable || res.Order.ID != uuid.Nil {
		t.Fatalf("place: %s %+v %v, want unavailable naming no order", res.Outcome(), res.Order, err)
	}
	if n := e.count(t, `SELECT count(*) FROM orders`); n != 0 {
		t.Fatalf("%d orders written, want 0", n)
	}
	if _, reserved := e.svc.Stock(e.product.ID); reserved != 0 {
		t.Fatalf("%d units held for an order never written, want 0 (given back)", reserved)
	}
}

// With an Idempotency-Key, a checkout whose order's write may or may not
// have committed (the database gone before the look-up could tell) answers
// 503, not 202 naming an order that may not exist: asking again with the
// same key is safe and tells. Written, the key answers the order (in
// progress until recover-orders finishes it, then replayed); not written,
// the same key places it. Until 2026-12-04 it answered 202 pending, and the
// order it named was never written when the write had not committed (the
// chaos test found two such keys while PostgreSQL restarted).
func TestAnUnknownWriteWithAKeyIsAskedAgainWithTheKey(t *testing.T) {
	for _, committed := range []bool{true, false} {
		t.Run(fmt.Sprintf("committed=%v", committed), func(t *testing.T) {
			// A lease that outlasts the test: the written order's key is
			// then in progress whatever the machine's speed (past its
			// lease, it is the pending order replayed).
			e := setup(t, func(c *saga.Config) { c.KeyWait = 100 * time.Millisecond; c.Lease = time.Minute })
			s, f := e.withFaults(t)
			f.Arm(pgtest.Fault{Marker: orderWrite, Committed: committed, Down: true})
			res, err := s.Place(context.Background(), e.user, e.request(1, "tok_visa"), "k")
			if f.Fired() != 1 {
				t.Fatal("the order's write was not broken: the test proves nothing")
			}
			f.SetDown(false)
			if fault.KindOf(err) != fault.Unavailable || res.Order.ID != uuid.Nil {
				t.Fatalf("place: %s %+v %v, want unavailable naming no order", res.Outcome(), res.Order, err)
			}
			// The customer asks again with the key until it answers.
			again, err := s.Place(context.Background(), e.user, e.request(1, "tok_visa"), "k")
			if committed {
				if fault.CodeOf(err) != fault.CodeRequestInProgress {
					t.Fatalf("asked again: %s %v, want request_in_progress (the written order is pending)", again.Outcome(), err)
				}
				e.age(t)
				if _, err := e.saga.Recover(context.Background(), 10); err != nil {
					t.Fatal(err)
				}
				if again, err = s.Place(context.Background(), e.user, e.request(1, "tok_visa"), "k"); err != nil || !again.Replayed {
					t.Fatalf("asked again after recovery: %+v %v, want the order replayed", again, err)
				}
			}
			if err != nil || again.Order.Status != orders.Confirmed {
				t.Fatalf("asked again: %s %+v %v, want the order confirmed", again.Outcome(), again.Order, err)
			}
			if n := e.count(t, `SELECT count(*) FROM orders WHERE id = $1`, again.Order.ID); n != 1 {
				t.Fatalf("the order answered is not stored (%d rows)", n)
			}
			if n := e.count(t, `SELECT count(*) FROM orders WHERE user_id = $1`, e.user.UserID); n != 1 {
				t.Fatalf("%d orders for one key, want 1", n)
			}
			if c := e.svc.Counts(); c.Captures != 1 {
				t.Fatalf("%d captures for one purchase, want 1", c.Captures)
			}
		})
	}
}

// A checkout's write that its deadline cut may run on in PostgreSQL: here it
// waits behind a twin request's open transaction that holds the same key
// (as it could wait for its commit to reach a stalled disk), and the cancel
// pgx sends when it gives up does not land (cancels are best effort). A
// read then finds no order, and the checkout would answer 503 "not placed"
// while its write commits the moment the twin rolls back: a pending order the
// customer was told does not exist, which recover-orders charges, and a
// customer who buys again pays twice. So the checkout stops the write's
// server process before it reads (ordersdb.Store.Settle): the answer it
// gives then holds.
func TestAWriteCutByTheDeadlineIsStoppedBeforeTheAnswer(t *testing.T) {
	e := setup(t, func(c *saga.Config) { c.Timeout = 500 * time.Millisecond })
	pool, cancels := pgtest.WithoutCancels(t, e.pool)
	s := e.over(t, pool)
	ctx := context.Background()
	const key = "key-of-twins"
	twin, err := e.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer twin.Rollback(ctx)
	twinID := uuid.Must(uuid.NewV7())
	if _, err := twin.Exec(ctx, `INSERT INTO orders (id, user_id, status, reason, total_amount, currency, shipping_address, created_at, updated_at)
		VALUES ($1, $2, 'pending', '', 1299, 'USD', '{}', now(), now())`, twinID, e.user.UserID); err != nil {
		t.Fatal(err)
	}
	if _, err := twin.Exec(ctx, `INSERT INTO idempotency_keys (user_id, key, request_hash, order_id, expires_at)
		VALUES ($1, $2, 'twin', $3, now() + interval '1 hour')`, e.user.UserID, key, twinID); err != nil {
		t.Fatal(err)
	}
	res, err := s.Place(ctx, e.user, e.request(1, "tok_visa"), key)
	if cancels.Dropped() == 0 {
		t.Fatalf("place: %s %v: no write was cut by the deadline, the test proves nothing", res.Outcome(), err)
	}
	if err := twin.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	// A write still waiting takes the key now and commits.
	e.noLockWaits(t)
	n := e.count(t, `SELECT count(*) FROM orders WHERE user_id = $1`, e.user.UserID)
	switch {
	case err != nil && fault.KindOf(err) == fault.Unavailable && n == 0:
		// Not placed, and nothing was.
	case err == nil && res.Order.ID != uuid.Nil && n == 1:
		// Placed (pending), and it is.
	default:
		t.Fatalf("place answered %s (order %s) %v; %d orders written since", res.Outcome(), res.Order.ID, err, n)
	}
}

// lockAfterCharge is a Payments whose successful charge leaves the order's
// row locked by another transaction (tx, on pool), as a slow writer would,
// until the test rolls it back.
type lockAfterCharge struct {
	saga.Payments
	pool *pgxpool.Pool
	mu   sync.Mutex
	tx   pgx.Tx
}

func (p *lockAfterCharge) Charge(ctx context.Context, c saga.Charge) error {
	if err := p.Payments.Charge(ctx, c); err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.tx != nil {
		return nil
	}
	tx, err := p.pool.Begin(context.Background())
	if err != nil {
		return err
	}
	// FOR NO KEY UPDATE blocks the order's UPDATE, not the timeline's
	// inserts (their foreign key takes FOR KEY SHARE).
	if _, err := tx.Exec(context.Background(), `SELECT 1 FROM orders WHERE id = $1 FOR NO KEY UPDATE`, c.OrderID); err != nil {
		_ = tx.Rollback(context.Background())
		return err
	}
	p.tx = tx
	return nil
}

func (p *lockAfterCharge) release() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.tx != nil {
		_ = p.tx.Rollback(context.Background())
	}
}

// A confirmation that waits past the saga's deadline (behind a lock here;
// on a stalled disk alike) is cut at the deadline, not at its commit's own
// timeout 10 s later: that was outside the longest drive the function's
// exec_timeout is checked against (saga.LongestDrive), so create-order's
// answer could be cut while the order was confirmed. Cut, it is in doubt;
// the look-up settles it (its server process is stopped, the cancel pgx
// sends being best effort) and the order is answered pending, as stored:
// nothing commits it later, and recovery confirms it, charged once.
func TestAConfirmationPastTheDeadlineIsCutThereAndSettled(t *testing.T) {
	locker := &lockAfterCharge{}
	const timeout = time.Second
	e := setup(t, func(c *saga.Config) {
		locker.Payments = c.Payments
		c.Payments = locker
		c.Timeout = timeout
	})
	locker.pool = e.pool
	defer locker.release()
	pool, cancels := pgtest.WithoutCancels(t, e.pool)
	s := e.over(t, pool)
	ctx := context.Background()
	start := time.Now()
	res, err := s.Place(ctx, e.user, e.request(1, "tok_visa"), "")
	took := time.Since(start)
	if cancels.Dropped() == 0 {
		t.Fatalf("place: %s %v: no write was cut, the test proves nothing", res.Outcome(), err)
	}
	if took > saga.LongestDrive(timeout) {
		t.Fatalf("place took %s, past the longest drive (%s)", took, saga.LongestDrive(timeout))
	}
	if err != nil || res.Outcome() != orders.OutcomePending {
		t.Fatalf("place: %s %v, want pending", res.Outcome(), err)
	}
	locker.release()
	e.noLockWaits(t)
	if o, err := e.store.Get(ctx, res.Order.ID); err != nil || o.Status != orders.Pending {
		t.Fatalf("the order answered pending: %+v %v, want it stored pending", o, err)
	}
	e.age(t)
	if _, err := e.saga.Recover(ctx, 10); err != nil {
		t.Fatal(err)
	}
	if o, err := e.store.Get(ctx, res.Order.ID); err != nil || o.Status != orders.Confirmed {
		t.Fatalf("after recovery: %+v %v, want confirmed", o, err)
	}
	if c := e.svc.Counts(); c.Captures != 1 {
		t.Fatalf("%d captures, want 1", c.Captures)
	}
}

// pricingWaitsForReserve is a catalog whose get-product calls wait for a
// reserve-stock call to start (up to 2 s) before they answer, and count the
// calls that saw one start.
type pricingWaitsForReserve struct {
	saga.Catalog
	w    *watchedStock
	saw  *atomic.Int64
	took chan uuid.UUID // the order id each waiting call saw reserved
}

func (c pricingWaitsForReserve) GetProduct(ctx context.Context, id uuid.UUID) (catalogclient.Product, error) {
	select {
	case held := <-c.w.reserving:
		c.saw.Add(1)
		c.took <- held
	case <-time.After(2 * time.Second):
	}
	return c.Catalog.GetProduct(ctx, id)
}

// reserve-stock needs a checkout's products and quantities, not its prices,
// so its first try starts while the lines are priced (get-product through
// the gateway), not after: with get-product waiting for a reservation to
// start, the reservation starts, and the order is written under the order
// id that was reserved, with one reserve-stock call and the timeline of a
// sequential checkout.
func TestReserveRunsWhileTheLinesArePriced(t *testing.T) {
	e := setup(t, nil)
	w := newWatchedStock(e.cfg.Stock)
	var saw atomic.Int64
	took := make(chan uuid.UUID, 16)
	cfg := e.cfg
	cfg.Stock = w
	cfg.Catalog = pricingWaitsForReserve{Catalog: cfg.Catalog, w: w, saw: &saw, took: took}
	s, err := saga.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	res, err := s.Place(context.Background(), e.user, e.request(2, "tok_visa"), uuid.NewString())
	if err != nil || res.Outcome() != orders.OutcomeConfirmed {
		t.Fatalf("place: %+v %v", res, err)
	}
	if saw.Load() != 1 {
		t.Fatalf("reserve-stock started while the line was priced %d times, want 1: reserve-stock waits for the prices", saw.Load())
	}
	if held := <-took; held != res.Order.ID {
		t.Errorf("reserved order %s while pricing, placed %s", held, res.Order.ID)
	}
	if c := e.svc.Counts(); c.Calls["reserve-stock"] != 1 || c.Releases != 0 {
		t.Errorf("reserve-stock calls %d, releases %d; want 1 and 0", c.Calls["reserve-stock"], c.Releases)
	}
	if _, reserved := e.svc.Stock(e.product.ID); reserved != 2 {
		t.Errorf("%d units reserved, want the order's 2", reserved)
	}
	want := []string{"order.created:ok", "stock.reserve:ok", "payment.charge:ok",
		"order.confirmed:ok", "order.placed.v1:recorded"}
	if diff := cmp.Diff(want, e.steps(t, res.Order.ID)); diff != "" {
		t.Errorf("timeline (-want +got):\n%s", diff)
	}
}

// A request answered before any order is written — a replayed key, a key
// reused with another body, an unknown product, a refused limit — may have
// started reserve-stock beside pricing; whatever it held is given back at
// once, so the only units reserved are the placed order's.
func TestARequestAnsweredBeforeTheWriteLeavesNoHold(t *testing.T) {
	e := setup(t, nil)
	s, w := e.withWatchedStock(t)
	ctx := context.Background()
	first, err := s.Place(ctx, e.user, e.request(2, "tok_visa"), "k")
	if err != nil || first.Outcome() != orders.OutcomeConfirmed {
		t.Fatalf("place: %+v %v", first, err)
	}
	replay, err := s.Place(ctx, e.user, e.request(2, "tok_visa"), "k")
	if err != nil || !replay.Replayed {
		t.Fatalf("replay: %+v %v", replay, err)
	}
	if _, err := s.Place(ctx, e.user, e.request(1, "tok_visa"), "k"); !fault.Is(err, fault.Conflict, fault.CodeIdempotencyKeyReused) {
		t.Fatalf("reused key: %v", err)
	}
	unknown := e.request(1, "tok_visa")
	unknown.Items = append(unknown.Items, orders.ItemRequest{ProductID: uuid.Must(uuid.NewV7()), Quantity: 1})
	if _, err := s.Place(ctx, e.user, unknown, "u"); !fault.Is(err, fault.Invalid, fault.CodeUnknownProduct) {
		t.Fatalf("unknown product: %v", err)
	}
	cfg := e.cfg
	cfg.Stock = w
	cfg.Limit = &refusingLimit{}
	limited, err := saga.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := limited.Place(ctx, e.user, e.request(1, "tok_visa"), "l"); !fault.Is(err, fault.RateLimited, fault.CodeRateLimited) {
		t.Fatalf("limited: %v", err)
	}
	if onHand, reserved := e.svc.Stock(e.product.ID); onHand != 5 || reserved != 2 {
		t.Errorf("stock on_hand %d reserved %d, want 5 2 (the placed order's hold only)", onHand, reserved)
	}
	w.mu.Lock()
	calls := slices.Clone(w.calls)
	w.mu.Unlock()
	for _, c := range calls {
		id := uuid.MustParse(c[strings.IndexByte(c, ' ')+1:])
		if id == first.Order.ID {
			continue
		}
		if got := e.svc.Reservation(id); got != "" && got != "released" && got != "void" {
			t.Errorf("%s: the hold of an order never written is %q, want released", c, got)
		}
	}
	if n := e.count(t, `SELECT count(*) FROM orders`); n != 1 {
		t.Errorf("%d orders written, want 1", n)
	}
}

// A request that finds its key held by a running checkout waits for that
// checkout (up to KeyWait), whose answer it will most likely replay; the hold
// it took beside pricing is given back before the wait, not after, so it
// keeps no stock from other customers while it waits.
func TestARequestWaitingForItsKeyHoldsNoStock(t *testing.T) {
	e := setup(t, func(c *saga.Config) { c.KeyWait = 5 * time.Second })
	release, charging := make(chan struct{}), make(chan struct{}, 1)
	e.svc.SetHook(func(fn string, _ uuid.UUID) (time.Duration, int, int) {
		if fn == "charge-payment" {
			select {
			case charging <- struct{}{}:
			default:
			}
			<-release
		}
		return 0, 0, 0
	})
	first := placeAsync(e.saga, e.user, e.request(2, "tok_visa"), "slow")
	// The first checkout charges only once its order and key are written and
	// its stock is held: the second request then finds the key taken. (Its
	// hold alone is not enough: it is taken beside pricing, before the write,
	// and a second request could then win the key.)
	select {
	case <-charging:
	case <-time.After(5 * time.Second):
		t.Fatal("the first checkout did not reach its charge within 5 s")
	}
	if _, r := e.svc.Stock(e.product.ID); r != 2 {
		t.Fatalf("%d units reserved by the first checkout, want 2", r)
	}
	second := placeAsync(e.saga, e.user, e.request(2, "tok_visa"), "slow")
	// The second request has given its hold back once release-stock was
	// called (the first checkout is held at its charge): it is then waiting
	// for the key. A fixed sleep here checked nothing when the second
	// request had not started yet (helper-130).
	for deadline := time.Now().Add(3 * time.Second); e.svc.Counts().Calls["release-stock"] == 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			close(release)
			t.Fatal("the second request did not give its hold back before waiting for the key")
		}
	}
	_, reserved := e.svc.Stock(e.product.ID)
	close(release)
	if reserved != 2 {
		t.Errorf("%d units reserved while the second request waited for its key, want the first checkout's 2", reserved)
	}
	p1, p2 := <-first, <-second
	if p1.err != nil || p1.res.Outcome() != orders.OutcomeConfirmed {
		t.Fatalf("first: %+v %v", p1.res, p1.err)
	}
	if p2.err != nil || !p2.res.Replayed || p2.res.Order.ID != p1.res.Order.ID {
		t.Fatalf("second: %+v %v, want the first's checkout replayed", p2.res, p2.err)
	}
	if _, reserved := e.svc.Stock(e.product.ID); reserved != 2 {
		t.Errorf("%d units reserved after both answered, want the order's 2", reserved)
	}
}

// chargeContext is Payments that keeps the context of the saga's last charge:
// the saga's own, which ends at its deadline.
type chargeContext struct {
	saga.Payments
	mu  sync.Mutex
	ctx context.Context
}

func (p *chargeContext) Charge(ctx context.Context, c saga.Charge) error {
	p.mu.Lock()
	p.ctx = ctx
	p.mu.Unlock()
	return p.Payments.Charge(ctx, c)
}

func (p *chargeContext) saga() context.Context {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.ctx
}

// clearAfterTheDeadline is a Cart whose RemoveOrdered starts only once the saga's
// deadline has passed: the deadline expires right after the confirmation.
type clearAfterTheDeadline struct {
	saga.Cart
	charged *chargeContext
}

func (c clearAfterTheDeadline) RemoveOrdered(ctx context.Context, user, order uuid.UUID, lines []cart.Line, remember time.Duration) error {
	<-c.charged.saga().Done()
	return c.Cart.RemoveOrdered(ctx, user, order, lines, remember)
}

// A cart order confirmed right before the saga's deadline still has its lines
// taken out of the cart by the run that confirmed it, not a minute later by
// recovery. Until 2026-12-03 the cart was cleared on the saga's context, and
// kept its lines.
func TestTheCartIsEmptiedWhenTheDeadlinePassesAfterTheConfirmation(t *testing.T) {
	carts, _, _ := cartredistest.New(t, time.Hour)
	charged := &chargeContext{}
	e := setup(t, func(c *saga.Config) {
		charged.Payments = c.Payments
		c.Payments = charged
		c.Cart = clearAfterTheDeadline{Cart: carts, charged: charged}
		c.Timeout = time.Second // the clear starts at the deadline: shorter than its own bound
	})
	ctx := context.Background()
	res := e.placeFromCart(t, carts, 2)
	if lines, err := carts.Lines(ctx, e.user.UserID); err != nil || len(lines) != 0 {
		t.Errorf("cart after the confirmation: %v %v; want it empty", lines, err)
	}
	// Its timeline entry is written after the deadline too (saga.flush).
	if got := e.steps(t, res.Order.ID); !slices.Contains(got, "cart.clear:ok") {
		t.Errorf("timeline %v, want cart.clear:ok in it", got)
	}
}

// placeFromCart puts qty of e's product in the customer's cart and orders
// the cart, which must be confirmed.
func (e *env) placeFromCart(t *testing.T, carts *cartredis.Store, qty int) orders.Checkout {
	t.Helper()
	ctx := context.Background()
	if err := carts.SetLine(ctx, e.user.UserID, e.product.ID, qty, 50); err != nil {
		t.Fatal(err)
	}
	req := e.request(qty, "tok_visa")
	req.Items = nil // the cart's lines
	res, err := e.saga.Place(ctx, e.user, req, "")
	if err != nil || res.Outcome() != orders.OutcomeConfirmed {
		t.Fatalf("cart order: %s %v", res.Outcome(), err)
	}
	return res
}

// duringCharge is Payments that calls its during before each charge: a
// request of the same customer that lands while the checkout runs.
type duringCharge struct {
	saga.Payments
	during func()
}

func (p duringCharge) Charge(ctx context.Context, c saga.Charge) error {
	p.during()
	return p.Payments.Charge(ctx, c)
}

// A cart order takes from the cart what it ordered, nothing else: a line the
// customer added while the checkout ran (set-cart-item answered 200) stays,
// and so does an ordered line whose quantity they changed meanwhile. Until
// 2026-12-04 the confirmation deleted the whole cart, and with it lines no
// order holds.
func TestACartOrderRemovesOnlyWhatItOrdered(t *testing.T) {
	carts, _, _ := cartredistest.New(t, time.Hour)
	ctx := context.Background()
	added := uuid.New()
	var e *env
	e = setup(t, func(c *saga.Config) {
		c.Cart = carts
		c.Payments = duringCharge{Payments: c.Payments, during: func() {
			// A new line, and the ordered one's quantity changed from 2.
			for _, l := range []cart.Line{{ProductID: added, Quantity: 3}, {ProductID: e.product.ID, Quantity: 4}} {
				if err := carts.SetLine(ctx, e.user.UserID, l.ProductID, l.Quantity, 50); err != nil {
					t.Error(err)
				}
			}
		}}
	})
	res := e.placeFromCart(t, carts, 2)
	if len(res.Order.Items) != 1 || res.Order.Items[0].ProductID != e.product.ID {
		t.Fatalf("the order holds %+v, want the one line priced before the charge", res.Order.Items)
	}
	lines, err := carts.Lines(ctx, e.user.UserID)
	if err != nil {
		t.Fatal(err)
	}
	want := map[uuid.UUID]int{added: 3, e.product.ID: 4}
	got := map[uuid.UUID]int{}
	for _, l := range lines {
		got[l.ProductID] = l.Quantity
	}
	if !maps.Equal(got, want) {
		t.Errorf("cart after the confirmation: %v, want only the lines set during the checkout %v", got, want)
	}
}

// The confirmation (one batch, BEGIN to COMMIT) may commit and its answer be
// lost: the connection resets after COMMIT. The order is confirmed, so the
// checkout reads it again before answering: confirmed, it takes the ordered lines out of the cart and
// answers 201 (the answer a replay of its key gives), with each step in the
// timeline once. Until 2026-12-03 it
// answered 202 pending and kept the cart's lines, which the customer's next
// checkout bought again.
func TestALostAnswerOfTheConfirmationStillEmptiesTheCart(t *testing.T) {
	carts, _, _ := cartredistest.New(t, time.Hour)
	e := setup(t, func(c *saga.Config) { c.Cart = carts })
	s, f := e.withFaults(t)
	ctx := context.Background()
	if err := carts.SetLine(ctx, e.user.UserID, e.product.ID, 2, 50); err != nil {
		t.Fatal(err)
	}
	req := e.request(2, "tok_visa")
	req.Items = nil // the cart's lines
	// UpdateKnown's batch: BEGIN, the conditional UPDATE, the writes, COMMIT.
	f.Arm(pgtest.Fault{Marker: "WITH u AS (UPDATE orders SET status", Committed: true})
	res, err := s.Place(ctx, e.user, req, "cart-1")
	if f.Fired() != 1 {
		t.Fatal("the confirmation was not broken: the test proves nothing")
	}
	if err != nil || res.Outcome() != orders.OutcomeConfirmed {
		t.Fatalf("place: %s %v, want confirmed", res.Outcome(), err)
	}
	if o, err := e.store.Get(ctx, res.Order.ID); err != nil || o.Status != orders.Confirmed {
		t.Fatalf("stored %+v %v, want confirmed", o, err)
	}
	if lines, err := carts.Lines(ctx, e.user.UserID); err != nil || len(lines) != 0 {
		t.Errorf("cart after the confirmation: %v %v; want it empty", lines, err)
	}
	want := []string{"order.created:ok", "stock.reserve:ok", "payment.charge:ok",
		"order.confirmed:ok", "order.placed.v1:recorded", "cart.clear:ok"}
	if diff := cmp.Diff(want, e.steps(t, res.Order.ID)); diff != "" {
		t.Errorf("timeline (-want +got):\n%s", diff)
	}
	again, err := s.Place(ctx, e.user, req, "cart-1")
	if err != nil || !again.Replayed {
		t.Fatalf("replay: %+v %v", again, err)
	}
	same(t, again, res)
}

// A confirmation whose answer is lost may be followed, in the instant before
// the checkout reads the order again, by its owner's cancellation (the order
// is listed from its first write on). Cancelled, it was confirmed first, and
// only this run could confirm it: the checkout answers the confirmation as it
// was written — the answer its Idempotency-Key, settled with it, replays —
// with each step in the timeline once. Until 2026-12-05 the checkout took
// the confirmation as not written: it answered 202 pending for an order that
// had ended, and wrote the steps' entries (reserve, charge) a second time;
// until 2026-12-07 it answered the order as it then was, 409 not_cancellable,
// and the same request asked again with its key was answered 201 confirmed.
func TestALostConfirmationCancelledSinceIsNotWrittenAgain(t *testing.T) {
	e := setup(t, nil)
	res, err := e.placeBreakingConfirmation(t, true, "k-cancelled-since", func(id uuid.UUID) {
		if _, err := e.saga.Cancel(context.Background(), e.user, id); err != nil {
			t.Errorf("the owner's cancellation: %v", err)
		}
	})
	if err != nil || res.Outcome() != orders.OutcomeConfirmed {
		t.Fatalf("place: %s %v, want the confirmation as written, confirmed", res.Outcome(), err)
	}
	again, err := e.saga.Place(context.Background(), e.user, e.request(2, "tok_visa"), "k-cancelled-since")
	if err != nil || !again.Replayed {
		t.Fatalf("replay: %+v %v", again, err)
	}
	same(t, again, res)
	want := []string{"order.created:ok", "stock.reserve:ok", "payment.charge:ok", "order.confirmed:ok",
		"order.placed.v1:recorded", "order.cancelled:ok", "order.cancelled.v1:recorded", "stock.release:ok", "payment.refund:ok"}
	if diff := cmp.Diff(want, e.steps(t, res.Order.ID)); diff != "" {
		t.Errorf("timeline (-want +got):\n%s", diff)
	}
}

// A confirmation whose answer is lost may be this run's, committed with its
// step entries, or, when it never reached the database, another driver's (a
// recovery that claimed the order once this run's lease ran out, or, for a
// cut recovery run, the run that took it over), written with that driver's
// entries only. Either way each of this run's entries is in the timeline
// once: written with its confirmation, or by its flush after it. Until
// 2026-12-08 the run dropped its entries whenever it found the order
// confirmed, and its reservation and charge were lost from the timeline of
// an order another driver confirmed.
func TestALostConfirmationsEntriesAreWrittenOnce(t *testing.T) {
	for _, tt := range []struct {
		name      string
		committed bool
		want      []string
	}{
		{"committed", true, []string{"order.created:ok", "stock.reserve:ok", "payment.charge:ok",
			"order.confirmed:ok", "order.placed.v1:recorded"}},
		// The other driver's confirmation first, then this run's entries.
		{"confirmed by another driver", false, []string{"order.created:ok", "order.confirmed:ok",
			"order.placed.v1:recorded", "stock.reserve:ok", "payment.charge:ok"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := setup(t, nil)
			res, err := e.placeBreakingConfirmation(t, tt.committed, "", func(id uuid.UUID) {
				if tt.committed {
					return
				}
				if _, err := e.store.Update(context.Background(), id, func(o *orders.Order) (orders.Change, error) {
					return o.Confirm(time.Now())
				}); err != nil {
					t.Errorf("the other driver's confirmation: %v", err)
				}
			})
			if err != nil || res.Outcome() != orders.OutcomeConfirmed {
				t.Fatalf("place: %s %v, want confirmed", res.Outcome(), err)
			}
			if diff := cmp.Diff(tt.want, e.steps(t, res.Order.ID)); diff != "" {
				t.Errorf("timeline (-want +got):\n%s", diff)
			}
		})
	}
}

// confirmElsewhereThenCancel is what another driver and the owner may do to
// order id in the instant before this run's confirmation: a recovery that
// claimed it once this run's lease ran out confirms it (settling its key),
// then its owner cancels it.
func (e *env) confirmElsewhereThenCancel(t *testing.T, id uuid.UUID) {
	t.Helper()
	ctx := context.Background()
	if _, err := e.store.Update(ctx, id, func(o *orders.Order) (orders.Change, error) {
		return o.Confirm(time.Now())
	}); err != nil {
		t.Errorf("the other driver's confirmation: %v", err)
	}
	if _, err := e.saga.Cancel(ctx, e.user, id); err != nil {
		t.Errorf("the owner's cancellation: %v", err)
	}
}

// afterCharge is Payments that calls then with the order once its charge
// has been made.
type afterCharge struct {
	saga.Payments
	then func(id uuid.UUID)
}

func (p afterCharge) Charge(ctx context.Context, c saga.Charge) error {
	err := p.Payments.Charge(ctx, c)
	p.then(c.OrderID)
	return err
}

// Another driver (a recovery that claimed the order once this run's lease ran
// out) may confirm the order, and its owner cancel it, before this run's
// confirmation runs: the confirmation finds it cancelled and is refused. With
// an Idempotency-Key, settled by that other confirmation, the run answers
// what the key replays, byte for byte; without one, the order as stored, 409
// not_cancellable. Until 2026-12-07 (review) it answered 409 not_cancellable
// with a key that replayed 201.
func TestALostConfirmationConfirmedAndCancelledByOthersAnswersAsItsKey(t *testing.T) {
	for _, key := range []string{"k-others", ""} {
		t.Run("key="+key, func(t *testing.T) {
			var e *env
			e = setup(t, func(c *saga.Config) {
				c.Payments = afterCharge{Payments: c.Payments, then: func(id uuid.UUID) { e.confirmElsewhereThenCancel(t, id) }}
			})
			ctx := context.Background()
			res, err := e.saga.Place(ctx, e.user, e.request(2, "tok_visa"), key)
			if err != nil {
				t.Fatalf("place: %v", err)
			}
			if o, err := e.store.Get(ctx, res.Order.ID); err != nil || o.Status != orders.Cancelled {
				t.Fatalf("stored %+v %v, want cancelled: the test proves nothing", o, err)
			}
			if key == "" {
				if res.Outcome() != orders.OutcomeCancelled {
					t.Fatalf("place: %s, want cancelled (409 not_cancellable): no key to answer as", res.Outcome())
				}
				return
			}
			if res.Replayed {
				t.Error("the live answer says replayed")
			}
			again, err := e.saga.Place(ctx, e.user, e.request(2, "tok_visa"), key)
			if err != nil || !again.Replayed {
				t.Fatalf("replay: %+v %v", again, err)
			}
			same(t, again, res)
		})
	}
}

// A confirmation that never reached the server, followed in that instant by
// another driver's confirmation and the owner's cancellation, was not this
// run's: the run answers what the order's key was settled with (the other
// confirmation), not its own decision, whose updated_at no one wrote. Until
// 2026-12-07 (review) the live 201 differed from the replay in updated_at.
func TestALostConfirmationNeverWrittenAnswersAsItsKey(t *testing.T) {
	e := setup(t, nil)
	res, err := e.placeBreakingConfirmation(t, false, "k-never-written", func(id uuid.UUID) {
		e.confirmElsewhereThenCancel(t, id)
	})
	if err != nil || res.Outcome() != orders.OutcomeConfirmed {
		t.Fatalf("place: %s %v, want confirmed as the key was settled", res.Outcome(), err)
	}
	again, err := e.saga.Place(context.Background(), e.user, e.request(2, "tok_visa"), "k-never-written")
	if err != nil || !again.Replayed {
		t.Fatalf("replay: %+v %v", again, err)
	}
	same(t, again, res)
}

// A confirmation that never reached the database looks the same to the run as
// one whose answer was lost; if, in the instant before the re-read, another
// driver ended the still-pending order (a recovery that claimed it once this
// run's lease ran out: cancelled out of stock), the order was not confirmed.
// The run says so and keeps its steps' entries for the timeline. Until the
// review of 2026-12-05 the re-read took every cancelled order as confirmed
// by this run: it logged "it was confirmed" and dropped the reservation's
// and the charge's entries.
func TestALostConfirmationFailedSinceByAnotherIsNotTakenAsConfirmed(t *testing.T) {
	e := setup(t, nil)
	res, err := e.placeBreakingConfirmation(t, false, "", func(id uuid.UUID) {
		if _, err := e.store.Update(context.Background(), id, func(o *orders.Order) (orders.Change, error) {
			return o.Fail(orders.Failure{Status: orders.Cancelled, Reason: orders.ReasonOutOfStock, Detail: "not enough stock"}, time.Now())
		}); err != nil {
			t.Errorf("the other driver's failure: %v", err)
		}
	})
	if err != nil || res.Outcome() != orders.OutcomePending {
		t.Fatalf("place: %s %v, want pending: the confirmation was not written, so the run cannot answer how the order ended", res.Outcome(), err)
	}
	steps := e.steps(t, res.Order.ID)
	for _, want := range []string{"stock.reserve:ok", "payment.charge:ok"} {
		if !slices.Contains(steps, want) {
			t.Errorf("timeline %v lacks this run's %s", steps, want)
		}
	}
	if slices.Contains(steps, "order.confirmed:ok") {
		t.Errorf("timeline %v says confirmed", steps)
	}
}

// A refusal's write (the order failed, its compensation owed) may commit
// with its answer lost, as a confirmation may. The run reads the order again
// and goes on: the hold is given back now and the refusal answered, where it
// answered pending and left both to recovery (until 2026-12-03 evening).
func TestALostAnswerOfTheFailureStillReleasesTheStock(t *testing.T) {
	e := setup(t, nil)
	s, f := e.withFaults(t)
	ctx := context.Background()
	f.Arm(pgtest.Fault{Marker: "WITH u AS (UPDATE orders SET status", Committed: true})
	res, err := s.Place(ctx, e.user, e.request(2, "tok_chargeDeclined"), "d")
	if f.Fired() != 1 {
		t.Fatal("the failure's write was not broken: the test proves nothing")
	}
	if err != nil || res.Outcome() != orders.OutcomeDeclined || res.Detail != "the payment was declined" {
		t.Fatalf("place: %s %q %v, want declined", res.Outcome(), res.Detail, err)
	}
	if onHand, reserved := e.svc.Stock(e.product.ID); onHand != 5 || reserved != 0 {
		t.Fatalf("stock %d/%d, want 5/0 (the hold given back)", onHand, reserved)
	}
	if n := e.count(t, `SELECT count(*) FROM order_sagas WHERE compensation = 'done'`); n != 1 {
		t.Fatal("compensation not settled")
	}
	want := []string{"order.created:ok", "stock.reserve:ok", "payment.charge:refused",
		"order.payment_failed:ok", "order.payment_failed.v1:recorded", "stock.release:ok"}
	if diff := cmp.Diff(want, e.steps(t, res.Order.ID)); diff != "" {
		t.Errorf("timeline (-want +got):\n%s", diff)
	}
	again, err := s.Place(ctx, e.user, e.request(2, "tok_chargeDeclined"), "d")
	if err != nil || !again.Replayed {
		t.Fatalf("replay: %+v %v", again, err)
	}
	same(t, again, res)
}

// A run whose deadline passes in the middle of a step still records its
// steps' timeline entries, the error that left the order pending among them:
// the runbook for stuck pending orders starts from them. Until 2026-12-03 they
// were written on the expired saga context, and lost.
func TestARunPastItsDeadlineRecordsItsTimeline(t *testing.T) {
	e := setup(t, func(c *saga.Config) { c.Timeout = 500 * time.Millisecond })
	e.svc.SetHook(func(fn string, _ uuid.UUID) (time.Duration, int, int) {
		if fn == "charge-payment" {
			return time.Second, 0, 0 // answers after the saga's deadline
		}
		return 0, 0, 0
	})
	res, err := e.saga.Place(context.Background(), e.user, e.request(1, "tok_visa"), "")
	if err != nil || res.Outcome() != orders.OutcomePending {
		t.Fatalf("checkout: %s %v; want pending", res.Outcome(), err)
	}
	got := e.steps(t, res.Order.ID)
	for _, want := range []string{"order.created:ok", "stock.reserve:ok", "payment.charge:error"} {
		if !slices.Contains(got, want) {
			t.Errorf("timeline %v, want %s in it", got, want)
		}
	}
}

// A recovery run ends before its request's deadline (recover-orders' exec
// timeout) while services are slow: it claims no order once less than one
// drive's longest time is left before that deadline, then purges the expired
// keys in the time left. Until 2026-12-03 it claimed for Timeout, each drive taking up to
// Timeout more, so a run lasted up to twice Timeout, past the function's
// deadline: its last claim or the purge then failed on the expired context
// and the run counted as an error.
func TestARecoveryRunEndsBeforeItsDeadline(t *testing.T) {
	const timeout = 2 * time.Second
	e := setup(t, func(c *saga.Config) { c.Timeout = timeout })
	e.placePending(t, 3)
	e.age(t)
	// Slow, not down: each drive takes more than half the Timeout.
	e.svc.SetHook(func(fn string, _ uuid.UUID) (time.Duration, int, int) {
		if fn == "charge-payment" {
			return timeout * 6 / 10, 0, 0
		}
		return 0, 0, 0
	})
	// A drive's longest time (its Timeout, the detached cart clear and
	// timeline write) and a tenth of Timeout: room to claim one order only.
	ctx, cancel := context.WithTimeout(context.Background(), saga.LongestDrive(timeout)+timeout/10)
	defer cancel()
	rep, err := e.saga.Recover(ctx, 10)
	if err != nil {
		t.Fatalf("recovery run: %+v %v; want no error", rep, err)
	}
	if ctx.Err() != nil {
		t.Errorf("the run ended past its deadline (%+v)", rep)
	}
	if rep.Driven != 1 || rep.Confirmed != 1 {
		t.Errorf("report %+v; want the one order that fits driven and confirmed", rep)
	}
}

// A run whose deadline leaves no time to claim (less than a drive's longest
// time before it) claims nothing and says so: it is a failed run
// (fault.Unavailable), which recover-orders counts as one, so
// RecoveryRunsFailing sees recovery that never claims. Until 2026-12-06 it
// answered an empty report and no error, and counted ok while pending orders
// were never finished.
func TestARecoveryRunWithNoTimeToClaimFails(t *testing.T) {
	const timeout = 2 * time.Second
	e := setup(t, func(c *saga.Config) { c.Timeout = timeout })
	ids := e.placePending(t, 2)
	e.age(t)
	// The deadline is exactly a drive's longest time away: no claim window.
	ctx, cancel := context.WithTimeout(context.Background(), saga.LongestDrive(timeout))
	defer cancel()
	rep, err := e.saga.Recover(ctx, 10)
	if fault.KindOf(err) != fault.Unavailable {
		t.Errorf("recovery with no time to claim: %+v %v; want an unavailable error", rep, err)
	}
	if rep.Driven != 0 || rep.Errors != 0 {
		t.Errorf("report %+v; want nothing claimed", rep)
	}
	for _, id := range ids {
		if n := e.count(t, `SELECT count(*) FROM orders WHERE id = $1 AND status = 'pending'`, id); n != 1 {
			t.Errorf("order %s is no longer pending", id)
		}
	}
}

// An order whose payment keeps failing is retried by every recovery run (each
// minute), and each run made one timeline entry per try: some 2 million a
// year for one stuck order. Only the request's run and the first
// RecordedRecoveries recovery runs write their entries, the last of them with
// a note that later runs are not recorded; a run that changes the order (the
// confirmation once the processor is back) records its entries again.
func TestAStuckOrdersTimelineStopsGrowing(t *testing.T) {
	const recorded, attempts = saga.RecordedRecoveries, 3
	// Each run ages the order an hour (e.age), 15 in all: no giving up.
	e := setup(t, func(c *saga.Config) { c.Attempts, c.GiveUpAfter = attempts, saga.MaxGiveUpAfter })
	e.processorDown()
	res, err := e.saga.Place(context.Background(), e.user, e.request(1, "tok_visa"), "")
	if err != nil || res.Outcome() != orders.OutcomePending {
		t.Fatalf("checkout: %s %v; want pending", res.Outcome(), err)
	}
	id := res.Order.ID
	entries := func() int {
		return e.count(t, `SELECT count(*) FROM order_events WHERE order_id = $1`, id)
	}
	recover := func() {
		t.Helper()
		e.age(t)
		if rep, err := e.saga.Recover(context.Background(), 10); err != nil || rep.Pending != 1 {
			t.Fatalf("recovery run: %+v %v; want the order still pending", rep, err)
		}
	}
	for range recorded {
		recover()
	}
	atCap := entries()
	charges := e.svc.Counts().Calls["charge-payment"]
	for range 10 {
		recover()
	}
	if got := entries(); got != atCap {
		t.Errorf("the timeline grew from %d to %d entries over 10 more failed recovery runs; want it unchanged", atCap, got)
	}
	if got := e.svc.Counts().Calls["charge-payment"]; got != charges+10*attempts {
		t.Errorf("%d charge tries in 10 runs, want %d: the runs past the cap must still retry", got-charges, 10*attempts)
	}
	steps := e.steps(t, id)
	// The request's run and each recorded recovery run: reserve, then every try of the charge.
	if want := 1 + (1+recorded)*(1+attempts) + 1; len(steps) != want {
		t.Errorf("%d timeline entries, want %d: %v", len(steps), want, steps)
	}
	if last := steps[len(steps)-1]; last != orders.StepRecovery+":"+orders.StepError {
		t.Errorf("last entry %s, want the note that later runs are not recorded", last)
	}
	// The processor is back: the run that confirms the order records its steps.
	e.svc.SetHook(nil)
	e.age(t)
	if rep, err := e.saga.Recover(context.Background(), 10); err != nil || rep.Confirmed != 1 {
		t.Fatalf("recovery run: %+v %v; want the order confirmed", rep, err)
	}
	got := e.steps(t, id)
	want := []string{"stock.reserve:ok", "payment.charge:ok", "order.confirmed:ok", "order.placed.v1:recorded"}
	if diff := cmp.Diff(want, got[len(steps):]); diff != "" {
		t.Errorf("the confirming run's entries (-want +got):\n%s", diff)
	}
}

// A recovery run drives its orders first and purges expired keys in the time
// it has left: a purge that cannot finish (here an expired key another
// transaction holds locked; in production a backlog of millions) stops before
// the run's deadline and is not a failure, the batches it committed stay
// deleted and the next run goes on. Until 2026-12-03 the purge came first, on
// the run's whole context: a purge that lasted to the deadline left no time to
// claim any order, and failed the run.
func TestARecoveryRunDrivesItsOrdersBeforeAPurgeThatCannotFinish(t *testing.T) {
	const timeout = time.Second
	e := setup(t, func(c *saga.Config) { c.Timeout = timeout })
	e.processorDown()
	res, err := e.saga.Place(context.Background(), e.user, e.request(1, "tok_visa"), "")
	if err != nil || res.Outcome() != orders.OutcomePending {
		t.Fatalf("checkout: %s %v; want pending", res.Outcome(), err)
	}
	e.svc.SetHook(nil)
	e.age(t)
	ctx := context.Background()
	if _, err := e.pool.Exec(ctx, `INSERT INTO idempotency_keys (user_id, key, request_hash, expires_at)
		VALUES (gen_random_uuid(), 'expired', 'h', now() - interval '1 hour')`); err != nil {
		t.Fatal(err)
	}
	lock, err := e.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Rollback(ctx) //nolint:errcheck
	if _, err := lock.Exec(ctx, `SELECT 1 FROM idempotency_keys WHERE key = 'expired' FOR UPDATE`); err != nil {
		t.Fatal(err)
	}
	run, cancel := context.WithTimeout(ctx, saga.LongestDrive(timeout)+2*time.Second)
	defer cancel()
	rep, err := e.saga.Recover(run, 10)
	if err != nil {
		t.Errorf("recovery run: %v; want no error for a purge its deadline cut short", err)
	}
	if run.Err() != nil {
		t.Errorf("the run ended past its deadline (%+v)", rep)
	}
	if rep.Confirmed != 1 {
		t.Errorf("report %+v; want the stale order confirmed before the purge", rep)
	}
}

// cartDown is a Cart whose RemoveOrdered fails while down is set: Redis
// refusing the removal, or, as the orders database sees it, create-order
// dying between the confirmation's commit and the removal.
type cartDown struct {
	saga.Cart
	down *atomic.Bool
}

func (c cartDown) RemoveOrdered(ctx context.Context, user, order uuid.UUID, lines []cart.Line, remember time.Duration) error {
	if c.down.Load() {
		return errors.New("cart store down")
	}
	return c.Cart.RemoveOrdered(ctx, user, order, lines, remember)
}

// cartOwed reports whether order id still owes its cart removal.
func (e *env) cartOwed(t *testing.T, id uuid.UUID) bool {
	t.Helper()
	var owed bool
	if err := e.pool.QueryRow(context.Background(), `SELECT cart_owed FROM order_sagas WHERE order_id = $1`, id).Scan(&owed); err != nil {
		t.Fatal(err)
	}
	return owed
}

// A cart removal still owed after GiveUpAfter is given up: the lines stay
// (the customer may have set them again since), the removal is no longer
// owed, and recovery claims the order no more.
func TestAnOwedCartRemovalIsGivenUpWithTheOrder(t *testing.T) {
	e, carts, down, res := confirmedWithTheCartDown(t)
	ctx := context.Background()
	down.Store(false)
	if _, err := e.pool.Exec(ctx, `UPDATE orders SET created_at = now() - interval '14 hours', updated_at = now() - interval '13 hours'
		WHERE id = $1`, res.Order.ID); err != nil {
		t.Fatal(err)
	}
	e.age(t)
	if rep, err := e.saga.Recover(ctx, 10); err != nil || rep.CartRemovals != 1 {
		t.Fatalf("recovery: %+v %v; want the order driven for its cart removal", rep, err)
	}
	if lines, err := carts.Lines(ctx, e.user.UserID); err != nil || len(lines) != 1 {
		t.Errorf("cart %v (%v); want the line left where it was", lines, err)
	}
	if e.cartOwed(t, res.Order.ID) {
		t.Error("the removal is still owed after it was given up")
	}
	e.age(t)
	if rep, err := e.saga.Recover(ctx, 10); err != nil || rep.Driven != 0 {
		t.Errorf("the next run: %+v %v; want nothing claimed", rep, err)
	}
}

// The give-up age of an owed cart removal counts from the confirmation: an
// order recovery confirmed near GIVE_UP_AFTER still gets its lines taken
// out. Until 2026-12-05 it counted from the order's creation, and such an
// order got a minute of removal tries at most.
func TestAnOrderConfirmedLateStillGetsItsCartRemoval(t *testing.T) {
	e, carts, down, res := confirmedWithTheCartDown(t)
	ctx := context.Background()
	down.Store(false)
	if _, err := e.pool.Exec(ctx, `UPDATE orders SET created_at = now() - interval '13 hours', updated_at = now() - interval '1 hour'
		WHERE id = $1`, res.Order.ID); err != nil {
		t.Fatal(err)
	}
	e.age(t)
	if rep, err := e.saga.Recover(ctx, 10); err != nil || rep.CartRemovals != 1 {
		t.Fatalf("recovery: %+v %v; want the order driven for its cart removal", rep, err)
	}
	if lines, err := carts.Lines(ctx, e.user.UserID); err != nil || len(lines) != 0 {
		t.Errorf("cart %v (%v); want the ordered line taken out", lines, err)
	}
	if e.cartOwed(t, res.Order.ID) {
		t.Error("the removal is still owed after the lines were taken out")
	}
}

// confirmedWithTheCartDown places a cart order of 2 units, confirmed while
// the cart store refuses the removal (down, until the test sets it false).
func confirmedWithTheCartDown(t *testing.T) (*env, *cartredis.Store, *atomic.Bool, orders.Checkout) {
	t.Helper()
	carts, _, _ := cartredistest.New(t, time.Hour)
	down := &atomic.Bool{}
	down.Store(true)
	e := setup(t, func(c *saga.Config) { c.Cart = cartDown{Cart: carts, down: down} })
	return e, carts, down, e.placeFromCart(t, carts, 2)
}

// A cart order confirmed by a run that could not take its lines out of the
// cart (the run died, or Redis refused) leaves the removal owed in the
// confirmation's own transaction: recovery claims the order once the lease
// has run out, takes the lines out and settles it, and claims it no more.
// Until 2026-12-04 recovery never came back to a confirmed order, and the
// ordered lines stayed in the cart, to be bought again by the next checkout.
func TestRecoveryTakesAConfirmedOrdersLinesOutOfTheCart(t *testing.T) {
	e, carts, down, res := confirmedWithTheCartDown(t)
	ctx := context.Background()
	owed := func() bool { return e.cartOwed(t, res.Order.ID) }
	if lines, err := carts.Lines(ctx, e.user.UserID); err != nil || len(lines) != 1 || !owed() {
		t.Fatalf("after the failed removal: cart %v (%v), removal owed %v; want the line kept and the removal owed", lines, err, owed())
	}
	down.Store(false)
	e.age(t) // the confirming run's lease runs out
	rep, err := e.saga.Recover(ctx, 10)
	if err != nil || rep.Driven != 1 || rep.CartRemovals != 1 || rep.Confirmed != 0 {
		t.Fatalf("recovery: %+v %v; want the confirmed order driven for its cart removal, not counted confirmed again", rep, err)
	}
	if lines, err := carts.Lines(ctx, e.user.UserID); err != nil || len(lines) != 0 {
		t.Errorf("cart after recovery: %v %v; want the ordered line taken out", lines, err)
	}
	if owed() {
		t.Error("the removal is still owed after recovery took the lines out")
	}
	want := []string{"order.created:ok", "stock.reserve:ok", "payment.charge:ok",
		"order.confirmed:ok", "order.placed.v1:recorded", "cart.clear:error", "cart.clear:ok"}
	if diff := cmp.Diff(want, e.steps(t, res.Order.ID)); diff != "" {
		t.Errorf("timeline (-want +got):\n%s", diff)
	}
	e.age(t)
	if rep, err := e.saga.Recover(ctx, 10); err != nil || rep.Driven != 0 {
		t.Errorf("the next recovery run: %+v %v; want nothing claimed", rep, err)
	}
}

// heldRemoval is Cart whose removals are refused while down is set, and
// whose first removal once it is clear calls hold, with the removal's
// context, before it is made.
type heldRemoval struct {
	saga.Cart
	down *atomic.Bool
	hold func(ctx context.Context)
	once *sync.Once
}

func (c heldRemoval) RemoveOrdered(ctx context.Context, user, order uuid.UUID, lines []cart.Line, remember time.Duration) error {
	if c.down.Load() {
		return errors.New("cart store down")
	}
	c.once.Do(func() { c.hold(ctx) })
	return c.Cart.RemoveOrdered(ctx, user, order, lines, remember)
}

// A recovery run whose claim of an order owing its cart removal is taken
// over while it removes the lines neither notes nor settles the removal: the
// run that took the order over does, once (its removal takes nothing more:
// the removal's mark). Until 2026-12-08 the cut run noted and settled it too,
// and two runs noted "the ordered lines were taken out of the cart" twice.
func TestARecoveryRunWhoseClaimIsTakenOverLeavesTheCartRemovalToTheOther(t *testing.T) {
	const lease = time.Second // renewed every 333 ms
	carts, _, _ := cartredistest.New(t, time.Hour)
	logs := &logLines{}
	down := &atomic.Bool{}
	down.Store(true)
	removing, released := make(chan context.Context, 1), make(chan struct{})
	held := heldRemoval{Cart: carts, down: down, once: &sync.Once{}, hold: func(ctx context.Context) { removing <- ctx; <-released }}
	e := setup(t, func(c *saga.Config) { c.Lease = lease; c.Cart = held; c.Log = logs.logger() })
	ctx := context.Background()
	res := e.placeFromCart(t, carts, 2)
	if !e.cartOwed(t, res.Order.ID) {
		t.Fatal("the removal is not owed after the confirmation: the test proves nothing")
	}
	down.Store(false)
	e.age(t)
	done := make(chan saga.Report, 1)
	go func() { rep, _ := e.saga.Recover(ctx, 1); done <- rep }()
	var removal context.Context // the held removal's own, bounded by its timeout
	select {
	case removal = <-removing:
	case rep := <-done:
		t.Fatalf("the run ended before its removal: %+v", rep)
	}
	// Another run's claim: the count moves on, for a minute; the removal
	// is let go once the cut run has seen it, which must be before the
	// removal's own deadline (past it the removal fails, and the test
	// would prove nothing).
	if _, err := e.pool.Exec(ctx, `UPDATE order_sagas SET attempts = attempts + 1, lease_until = now() + interval '1 minute'
		WHERE order_id = $1`, res.Order.ID); err != nil {
		t.Fatal(err)
	}
	logs.waitBefore(t, removal, "another recovery run claimed the order")
	close(released)
	if rep := <-done; rep.TakenOver != 1 || rep.CartRemovals != 0 {
		t.Fatalf("the cut run: %+v, want the order counted taken over, not as a cart removal", rep)
	}
	if !e.cartOwed(t, res.Order.ID) {
		t.Error("the cut run settled the removal the run that took the order over settles")
	}
	want := []string{"order.created:ok", "stock.reserve:ok", "payment.charge:ok",
		"order.confirmed:ok", "order.placed.v1:recorded", "cart.clear:error"}
	if diff := cmp.Diff(want, e.steps(t, res.Order.ID)); diff != "" {
		t.Errorf("timeline after the cut run (-want +got):\n%s", diff)
	}
	// The run that took the order over (its claim run out here, so the
	// next run is that one) settles the removal, noted once.
	e.age(t)
	if rep, err := e.saga.Recover(ctx, 1); err != nil || rep.CartRemovals != 1 {
		t.Fatalf("the run that took the order over: %+v %v, want the order driven for its cart removal", rep, err)
	}
	if diff := cmp.Diff(append(want, "cart.clear:ok"), e.steps(t, res.Order.ID)); diff != "" {
		t.Errorf("timeline (-want +got):\n%s", diff)
	}
	if lines, err := carts.Lines(ctx, e.user.UserID); err != nil || len(lines) != 0 || e.cartOwed(t, res.Order.ID) {
		t.Errorf("cart %v (%v), removal owed %v; want the line taken out and the removal settled", lines, err, e.cartOwed(t, res.Order.ID))
	}
}

// A cart order's removal is made once: when the run that took the lines out
// could not record it (the write broke), recovery makes it again, and takes
// nothing the customer set back to the ordered quantity since. The removal's
// mark goes once a removal is recorded, the confirming run's or recovery's.
// Until 2026-12-05 recovery took the line set back (an older note's item).
func TestARemovalMadeAgainTakesNothingSetBackSince(t *testing.T) {
	carts, rdb, cfg := cartredistest.New(t, time.Hour)
	e := setup(t, func(c *saga.Config) { c.Cart = carts })
	ctx := context.Background()
	marks := func() int {
		t.Helper()
		keys, err := rdb.Keys(ctx, cfg.KeyPrefix+"taken:*").Result()
		if err != nil {
			t.Fatal(err)
		}
		return len(keys)
	}
	// An order whose removal is recorded leaves no mark.
	e.placeFromCart(t, carts, 1)
	if n := marks(); n != 0 {
		t.Fatalf("%d removal marks after a recorded removal; want none", n)
	}
	s, f := e.withFaults(t)
	if err := carts.SetLine(ctx, e.user.UserID, e.product.ID, 2, 50); err != nil {
		t.Fatal(err)
	}
	req := e.request(2, "tok_visa")
	req.Items = nil
	f.Arm(pgtest.Fault{Marker: "UPDATE order_sagas SET cart_owed = false"})
	res, err := s.Place(ctx, e.user, req, "")
	if f.Fired() != 1 {
		t.Fatal("the removal's record was not broken: the test proves nothing")
	}
	if err != nil || res.Outcome() != orders.OutcomeConfirmed || !e.cartOwed(t, res.Order.ID) {
		t.Fatalf("place: %s %v, removal owed %v; want confirmed with the removal still owed", res.Outcome(), err, e.cartOwed(t, res.Order.ID))
	}
	if lines, err := carts.Lines(ctx, e.user.UserID); err != nil || len(lines) != 0 {
		t.Fatalf("cart after the removal: %v %v; want it empty", lines, err)
	}
	// The customer puts the same line back; recovery makes the owed removal.
	if err := carts.SetLine(ctx, e.user.UserID, e.product.ID, 2, 50); err != nil {
		t.Fatal(err)
	}
	e.age(t)
	if rep, err := e.saga.Recover(ctx, 10); err != nil || rep.CartRemovals != 1 {
		t.Fatalf("recovery: %+v %v; want the order driven for its owed removal", rep, err)
	}
	if lines, err := carts.Lines(ctx, e.user.UserID); err != nil || len(lines) != 1 {
		t.Errorf("cart after recovery: %v %v; want the line set back kept", lines, err)
	}
	if e.cartOwed(t, res.Order.ID) {
		t.Error("the removal is still owed after recovery")
	}
	if n := marks(); n != 0 {
		t.Errorf("%d removal marks once recovery recorded the removal; want none", n)
	}
}

// An order cancelled while its cart removal is still owed owes none any more
// (its lines stay in the cart): recovery does not claim it, run after run.
func TestACancelledOrderOwesNoCartRemoval(t *testing.T) {
	e, carts, down, res := confirmedWithTheCartDown(t)
	ctx := context.Background()
	o, err := e.saga.Cancel(ctx, e.user, res.Order.ID)
	if err != nil || o.Status != orders.Cancelled {
		t.Fatalf("cancel: %+v %v", o, err)
	}
	if e.cartOwed(t, res.Order.ID) {
		t.Fatal("a cart removal is owed after the cancellation; want none")
	}
	down.Store(false)
	e.age(t)
	if rep, err := e.saga.Recover(ctx, 10); err != nil || rep.Driven != 0 {
		t.Errorf("recovery after the cancellation: %+v %v; want nothing claimed", rep, err)
	}
	if lines, err := carts.Lines(ctx, e.user.UserID); err != nil || len(lines) != 1 {
		t.Errorf("cart after the cancellation: %v %v; want the line kept", lines, err)
	}
}

// Recovery must never drive an order a live request still drives: a request
// drives its order for up to LongestDrive (the saga timeout, then the
// look-up, cart and timeline steps on contexts of their own), so
// RecoverAfter must exceed that, not only the timeout, and the refusal names
// both values.
func TestRecoverAfterMustExceedTheLongestDrive(t *testing.T) {
	e := setup(t, nil)
	const timeout = 20 * time.Second
	longest := saga.LongestDrive(timeout)
	if longest <= timeout {
		t.Fatalf("LongestDrive(%s) = %s: the test proves nothing", timeout, longest)
	}
	for _, tc := range []struct {
		recoverAfter time.Duration
		ok           bool
	}{
		{timeout, false},
		{timeout + time.Second, false}, // above the timeout, within a drive
		{longest, false},
		{longest + time.Second, true},
	} {
		cfg := e.cfg
		cfg.Timeout, cfg.RecoverAfter = timeout, tc.recoverAfter
		_, err := saga.New(cfg)
		if tc.ok {
			if err != nil {
				t.Errorf("RecoverAfter %s: %v, want it accepted", tc.recoverAfter, err)
			}
			continue
		}
		if err == nil {
			t.Errorf("RecoverAfter %s accepted, want it refused: a drive may take %s", tc.recoverAfter, longest)
			continue
		}
		if msg := err.Error(); !strings.Contains(msg, tc.recoverAfter.String()) || !strings.Contains(msg, longest.String()) {
			t.Errorf("RecoverAfter %s refused with %q, want it to name %s and the longest drive %s", tc.recoverAfter, msg, tc.recoverAfter, longest)
		}
	}
}
