package function

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/shopfaas/shop/internal/auth"
	"github.com/shopfaas/shop/internal/fnhttp"
	"github.com/shopfaas/shop/internal/fntest"
	"github.com/shopfaas/shop/internal/gatewayurl"
	"github.com/shopfaas/shop/internal/inventory"
	"github.com/shopfaas/shop/internal/inventory/inventorydb"
	"github.com/shopfaas/shop/internal/inventory/orderstatus"
	"github.com/shopfaas/shop/internal/orders"
	"github.com/shopfaas/shop/internal/orders/ordersdb"
	"github.com/shopfaas/shop/internal/orders/orderstest"
	"github.com/shopfaas/shop/internal/postgres/pgtest"
)

// credential is a caller expire-reservations accepts.
var credential = fntest.Caller("scheduler")

func post(h http.Handler, cred, query string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodPost, "/"+query, strings.NewReader(`{"anything":"the scheduler sends"}`))
	if cred != "" {
		req.Header.Set(auth.InternalHeader, cred)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

// age makes every hold of pool older than the settle delay.
func age(t *testing.T, pool *pgxpool.Pool) {
	t.Helper()
	if _, err := pool.Exec(context.Background(), `UPDATE reservations SET created_at = now() - interval '1 minute'`); err != nil {
		t.Fatal(err)
	}
}

// shop is the sweep over a real inventory database, asking the statuses of a
// real orders database through a gateway path with the sweep's own
// credential: the path answers as order-statuses does (its contract,
// docs/checkout.md; a function imports no other, so the real one runs in
// tests/integration).
type shop struct {
	h       http.Handler
	pool    *pgxpool.Pool
	store   *inventorydb.Store
	orders  *ordersdb.Store
	product uuid.UUID
	gateway *httptest.Server
	// statuses asks the orders database through the gateway path.
	statuses inventorydb.Statuses
}

func newShop(t *testing.T, stock int) *shop {
	t.Helper()
	ctx := context.Background()
	s := &shop{pool: pgtest.Open(t, inventorydb.Migrations()), orders: ordersdb.New(pgtest.Open(t, ordersdb.Migrations()))}
	s.store = inventorydb.New(s.pool)
	s.product = uuid.Must(uuid.NewV7())
	if _, err := s.store.SetOnHand(ctx, s.product, stock, inventory.IfAbsent()); err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("POST /function/order-statuses", fnhttp.Adapt(slog.New(slog.DiscardHandler), func(w http.ResponseWriter, r *http.Request) error {
		if err := fnhttp.CheckInternal(r, fntest.Internal(), "order-statuses"); err != nil {
			return err
		}
		var in struct {
			OrderIDs []uuid.UUID `json:"order_ids"`
		}
		if err := fnhttp.Decode(r, &in, 0); err != nil {
			return err
		}
		st, err := s.orders.Statuses(r.Context(), in.OrderIDs)
		if err != nil {
			return err
		}
		return fnhttp.JSON(w, http.StatusOK, map[string]any{"statuses": st})
	}))
	s.gateway = httptest.NewServer(mux)
	t.Cleanup(s.gateway.Close)
	client, err := orderstatus.New(gatewayurl.Locator{Gateway: s.gateway.URL + "/"}, fntest.Caller("expire-reservations"), nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	s.statuses = client.Statuses
	s.h = New(s.store, client.Statuses, DefaultSettleAfter, fntest.Internal(), slog.New(slog.DiscardHandler))
	return s
}

// hold reserves qty units for order.
func (s *shop) hold(t *testing.T, order uuid.UUID, qty int) {
	t.Helper()
	req, err := inventory.NewHoldRequest(order, []inventory.Line{{ProductID: s.product, Quantity: qty}}, 60)
	if err == nil {
		_, err = s.store.Reserve(context.Background(), req)
	}
	if err != nil {
		t.Fatal(err)
	}
}

func (s *shop) level(t *testing.T) (onHand, reserved int) {
	t.Helper()
	st, err := s.store.Get(context.Background(), s.product)
	if err != nil {
		t.Fatal(err)
	}
	return st.OnHand, st.Reserved
}

func TestExpireReservationsSettlesByOrderStatus(t *testing.T) {
	ctx := context.Background()
	s := newShop(t, 100)
	user := uuid.Must(uuid.NewV7())
	status := map[orders.Status]uuid.UUID{}
	// 10 orders of each status, 1 unit each, and 10 unknown to orders whose
	// holds are past their expiry.
	for _, st := range []orders.Status{orders.Confirmed, orders.PaymentFailed, orders.Cancelled, orders.Pending} {
		for range 10 {
			o := orderstest.Seed(t, s.orders, user, st)
			status[st] = o.ID
			s.hold(t, o.ID, 1)
		}
	}
	var unknown []uuid.UUID
	for range 10 {
		id := uuid.Must(uuid.NewV7())
		unknown = append(unknown, id)
		s.hold(t, id, 1)
	}
	if _, err := s.pool.Exec(ctx, `UPDATE reservations SET expires_at = now() - interval '1 second' WHERE order_id = ANY($1)`, unknown); err != nil {
		t.Fatal(err)
	}
	if rec := post(s.h, "", ""); rec.Code != http.StatusUnauthorized {
		t.Errorf("no credential: %d", rec.Code)
	}
	// Fresh holds are not due: nothing is asked or settled.
	if rec := post(s.h, credential, ""); rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), `{"settled":0,"released":0,"expired":0,"pruned":0}`) {
		t.Errorf("nothing due: %d %s", rec.Code, rec.Body)
	}
	age(t, s.pool)
	// Only the scheduler and an operator may sweep: every other valid
	// caller is 403 and settles nothing.
	if n := fntest.RefusesOtherCallers(t, s.h, "expire-reservations", `{}`); n == 0 {
		t.Fatal("no caller to refuse")
	}
	if onHand, reserved := s.level(t); onHand != 100 || reserved != 50 {
		t.Fatalf("a refused caller settled holds: %d/%d, want 100/50", onHand, reserved)
	}
	// Two sweeps at once settle each hold once.
	var wg sync.WaitGroup
	results := make([]Response, 2)
	for i := range results {
		wg.Go(func() {
			rec := post(s.h, credential, "")
			if rec.Code != http.StatusOK || json.Unmarshal(rec.Body.Bytes(), &results[i]) != nil {
				t.Errorf("sweep %d: %d %s", i, rec.Code, rec.Body)
			}
		})
	}
	wg.Wait()
	got := Response{Settled: results[0].Settled + results[1].Settled, Released: results[0].Released + results[1].Released, Expired: results[0].Expired + results[1].Expired}
	if want := (Response{Settled: 10, Released: 20, Expired: 10}); got != want {
		t.Errorf("two sweeps: %+v, want %+v", got, want)
	}
	// 10 sold, 30 given back, the 10 pending orders' units still held.
	if onHand, reserved := s.level(t); onHand != 90 || reserved != 10 {
		t.Errorf("stock %d/%d after the sweep, want 90/10", onHand, reserved)
	}
	checks := map[uuid.UUID]inventory.HoldStatus{status[orders.Confirmed]: inventory.StatusCommitted,
		status[orders.PaymentFailed]: inventory.StatusReleased, status[orders.Cancelled]: inventory.StatusReleased,
		status[orders.Pending]: inventory.StatusHeld, unknown[0]: inventory.StatusExpired}
	for id, want := range checks {
		if h, err := s.store.Hold(ctx, id); err != nil || h.Status != want {
			t.Errorf("hold of %s: %s %v, want %s", id, h.Status, err, want)
		}
	}
}

// A run goes on where the last one stopped: holds it keeps (pending orders),
// however many, do not starve the holds behind them. Here a run looks at two
// batches of two, and five pending orders' holds come before a confirmed
// one's: each run starting at the oldest never reached it.
func TestASweepGoesOnWhereTheLastStopped(t *testing.T) {
	batch, maxBatches = 2, 2
	t.Cleanup(func() { batch, maxBatches = Batch, MaxBatches })
	s := newShop(t, 100)
	user := uuid.Must(uuid.NewV7())
	var pending []uuid.UUID
	for range 5 {
		o := orderstest.Seed(t, s.orders, user, orders.Pending)
		pending = append(pending, o.ID)
		s.hold(t, o.ID, 1)
	}
	confirmed := orderstest.Seed(t, s.orders, user, orders.Confirmed)
	s.hold(t, confirmed.ID, 1)
	age(t, s.pool) // one created_at for all: order id (time-ordered) orders them
	for run := 1; run <= 2; run++ {
		if rec := post(s.h, credential, ""); rec.Code != http.StatusOK {
			t.Fatalf("run %d: %d %s", run, rec.Code, rec.Body)
		}
	}
	h, err := s.store.Hold(context.Background(), confirmed.ID)
	if err != nil || h.Status != inventory.StatusCommitted {
		t.Errorf("the confirmed order's hold after two runs: %s %v, want committed", h.Status, err)
	}
	for _, id := range pending {
		if h, err := s.store.Hold(context.Background(), id); err != nil || h.Status != inventory.StatusHeld {
			t.Errorf("pending order %s's hold: %s %v, want held", id, h.Status, err)
		}
	}
	if onHand, reserved := s.level(t); onHand != 99 || reserved != 5 {
		t.Errorf("stock %d/%d, want 99/5", onHand, reserved)
	}
}

// A run that its request's deadline cuts still saves where it stopped, and a
// run begins no batch it has no time left to finish: before, a run whose
// batches were slow reached its deadline every time, failed to save its
// cursor (its context was over) and the next started at the same holds, so
// the holds behind them were never settled (helper-138). The deadline passes
// when the test says, in a run's second batch, not on a wall clock: with a
// 300 ms deadline, 200 ms lookups and a 50 ms budget, a loaded host's first
// batch ended with less than the budget left (the run rightly began no
// second one and answered 200) or was cut itself (503, nothing to save).
func TestASweepCutByItsDeadlineStillGoesOn(t *testing.T) {
	for _, tc := range []struct {
		name   string
		budget time.Duration
		status int
	}{
		// the budget kept: a minute left and two budgeted for a batch, a
		// run stops after its first batch, and answers
		{"stops in time", 2 * time.Minute, http.StatusOK},
		// a budget the minute left covers: a run begins its second batch,
		// which the deadline cuts, and the first one's end is still saved
		{"cut", time.Second, http.StatusInternalServerError},
	} {
		t.Run(tc.name, func(t *testing.T) { sweepCutByItsDeadline(t, tc.budget, tc.status) })
	}
}

func sweepCutByItsDeadline(t *testing.T, budget time.Duration, status int) {
	batch, maxBatches, batchBudget = 2, 20, budget
	t.Cleanup(func() { batch, maxBatches, batchBudget = Batch, MaxBatches, 12*time.Second })
	s := newShop(t, 100)
	user := uuid.Must(uuid.NewV7())
	var held []uuid.UUID
	for range 8 {
		o := orderstest.Seed(t, s.orders, user, orders.Pending)
		held = append(held, o.ID)
		s.hold(t, o.ID, 1)
	}
	age(t, s.pool) // one created_at for all: order id orders them
	slices.SortFunc(held, func(a, b uuid.UUID) int { return bytes.Compare(a[:], b[:]) })
	// A run's first lookup answers; a later one is the batch its deadline
	// cuts: the deadline passes while the lookup waits.
	var run *runContext
	var asked [][]uuid.UUID // by the current run
	lookup := func(ctx context.Context, ids []uuid.UUID) (map[uuid.UUID]inventory.OrderStatus, error) {
		asked = append(asked, ids)
		if len(asked) == 1 {
			return s.statuses(ctx, ids)
		}
		run.pass()
		<-ctx.Done()
		return nil, ctx.Err()
	}
	h := New(s.store, lookup, DefaultSettleAfter, fntest.Internal(), slog.New(slog.DiscardHandler))
	for n := 1; n <= 3; n++ {
		run, asked = newRunContext(time.Minute), nil
		req := httptest.NewRequestWithContext(run, http.MethodPost, "/", strings.NewReader(`{}`))
		req.Header.Set(auth.InternalHeader, credential)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != status {
			t.Errorf("run %d: %d %s, want %d", n, rec.Code, rec.Body, status)
		}
		// Run n looks at the nth batch, and at the next one only when cut.
		want := [][]uuid.UUID{held[2*n-2 : 2*n]}
		if status != http.StatusOK {
			want = append(want, held[2*n:2*n+2])
		}
		if diff := cmp.Diff(want, asked); diff != "" {
			t.Errorf("run %d asked about (-want +got):\n%s", n, diff)
		}
		// and the next run goes on after its first batch's last hold.
		cur, err := s.store.SweepCursor(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if cur.OrderID != held[2*n-1] {
			t.Fatalf("cursor after run %d: %v, want after hold %d (%s)", n, cur, 2*n, held[2*n-1])
		}
	}
}

// runContext is a run's request context whose deadline passes when the test
// says: Deadline answers d from its making, and the context is done, with
// context.DeadlineExceeded, once pass is called, as a request's is once its
// exec_timeout passes.
type runContext struct {
	context.Context
	at   time.Time
	done chan struct{}
}

func newRunContext(d time.Duration) *runContext {
	return &runContext{Context: context.Background(), at: time.Now().Add(d), done: make(chan struct{})}
}

func (d *runContext) Deadline() (time.Time, bool) { return d.at, true }
func (d *runContext) Done() <-chan struct{}       { return d.done }

func (d *runContext) Err() error {
	select {
	case <-d.done:
		return context.DeadlineExceeded
	default:
		return nil
	}
}

// pass makes the deadline pass, once.
func (d *runContext) pass() {
	select {
	case <-d.done:
	default:
		close(d.done)
	}
}

// When order-statuses does not answer, the sweep changes nothing and fails
// (the next run tries again); ?settle_after_seconds=0 settles fresh holds, an
// empty value is the configured delay, and a value out of range is 422.
func TestExpireReservationsWithoutOrdersChangesNothing(t *testing.T) {
	s := newShop(t, 10)
	user := uuid.Must(uuid.NewV7())
	o := orderstest.Seed(t, s.orders, user, orders.Confirmed)
	s.hold(t, o.ID, 3)
	if rec := post(s.h, credential, "?settle_after_seconds=3601"); rec.Code != http.StatusUnprocessableEntity {
		t.Errorf("settle_after_seconds out of range: %d %s", rec.Code, rec.Body)
	}
	s.gateway.Close()
	if rec := post(s.h, credential, "?settle_after_seconds=0"); rec.Code != http.StatusServiceUnavailable {
		t.Errorf("orders down: %d %s, want 503", rec.Code, rec.Body)
	}
	if onHand, reserved := s.level(t); onHand != 10 || reserved != 3 {
		t.Errorf("stock %d/%d with orders down, want 10/3", onHand, reserved)
	}
	s2 := newShop(t, 10)
	o2 := orderstest.Seed(t, s2.orders, user, orders.Confirmed)
	s2.hold(t, o2.ID, 3)
	// An empty value is the configured delay, which the fresh hold is within.
	if rec := post(s2.h, credential, "?settle_after_seconds="); rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), `"settled":0`) {
		t.Errorf("settle_after_seconds empty: %d %s, want nothing settled", rec.Code, rec.Body)
	}
	if rec := post(s2.h, credential, "?settle_after_seconds=0"); rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), `"settled":1`) {
		t.Errorf("settle at once: %d %s", rec.Code, rec.Body)
	}
	if onHand, reserved := s2.level(t); onHand != 7 || reserved != 0 {
		t.Errorf("stock %d/%d, want 7/0", onHand, reserved)
	}
}

// When order-statuses refuses the sweep's own credential (401: unknown, after
// a rotation; 403: another caller's), the sweep answers the scheduler 503,
// not that 401 or 403: the scheduler's credential was accepted, and a 4xx
// blamed internal-token-scheduler (runbook step 1) and escaped
// FunctionErrorRateHigh. Nothing changes.
func TestARefusalOfTheSweepsOwnCredentialIsNoRefusalOfTheScheduler(t *testing.T) {
	s := newShop(t, 10)
	o := orderstest.Seed(t, s.orders, uuid.Must(uuid.NewV7()), orders.Confirmed)
	s.hold(t, o.ID, 3)
	for _, tc := range []struct{ name, own string }{
		{"another caller's credential", fntest.Caller("create-order")},
		{"an unknown credential", "expire-reservations.not-a-deployed-credential"},
	} {
		client, err := orderstatus.New(gatewayurl.Locator{Gateway: s.gateway.URL + "/"}, tc.own, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		h := New(s.store, client.Statuses, DefaultSettleAfter, fntest.Internal(), slog.New(slog.DiscardHandler))
		if rec := post(h, credential, "?settle_after_seconds=0"); rec.Code != http.StatusServiceUnavailable {
			t.Errorf("%s: answered the scheduler %d %s, want 503", tc.name, rec.Code, rec.Body)
		}
	}
	if onHand, reserved := s.level(t); onHand != 10 || reserved != 3 {
		t.Errorf("stock %d/%d after refused lookups, want 10/3", onHand, reserved)
	}
}

// A 200 from order-statuses that is not the statuses asked about (a proxy's
// page, an answer about other orders) is order-statuses failing, as its
// silence is: the sweep answers 503 "unavailable" (retried by the next
// run), not 500, and nothing changes.
func TestAMalformedAnswerOfOrderStatusesIsUnavailable(t *testing.T) {
	s := newShop(t, 10)
	o := orderstest.Seed(t, s.orders, uuid.Must(uuid.NewV7()), orders.Confirmed)
	s.hold(t, o.ID, 3)
	bad := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"statuses":{"` + uuid.NewString() + `":"confirmed"}}`))
	}))
	t.Cleanup(bad.Close)
	client, err := orderstatus.New(gatewayurl.Locator{Gateway: bad.URL + "/"}, fntest.Caller("expire-reservations"), nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	h := New(s.store, client.Statuses, DefaultSettleAfter, fntest.Internal(), slog.New(slog.DiscardHandler))
	rec := post(h, credential, "?settle_after_seconds=0")
	var p struct{ Code string }
	if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil || rec.Code != http.StatusServiceUnavailable || p.Code != "unavailable" {
		t.Errorf("answered %d %s, want 503 unavailable", rec.Code, rec.Body)
	}
	if onHand, reserved := s.level(t); onHand != 10 || reserved != 3 {
		t.Errorf("stock %d/%d after a malformed answer, want 10/3", onHand, reserved)
	}
}

// A run also deletes the reservations that ended past
// inventorydb.EndedRetention (a replayed checkout's given-back hold, a void
// record), and keeps a committed one past it, whose order may still be
// cancelled. Its answer counts them (pruned; until 2026-12-07 only the log
// did, so a run that pruned answered as one that did nothing).
func TestASweepPrunesEndedReservations(t *testing.T) {
	ctx := context.Background()
	s := newShop(t, 10)
	user := uuid.Must(uuid.NewV7())
	gone, kept := orderstest.Seed(t, s.orders, user, orders.PaymentFailed), orderstest.Seed(t, s.orders, user, orders.Confirmed)
	s.hold(t, gone.ID, 1)
	s.hold(t, kept.ID, 2)
	if _, err := s.store.Release(ctx, gone.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.store.Commit(ctx, kept.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.pool.Exec(ctx, `UPDATE reservations SET updated_at = now() - interval '31 days'`); err != nil {
		t.Fatal(err)
	}
	rec := post(s.h, credential, "")
	var out Response
	if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil || rec.Code != http.StatusOK {
		t.Fatalf("sweep: %d %s", rec.Code, rec.Body)
	}
	if want := (Response{Pruned: 1}); out != want {
		t.Errorf("sweep answered %+v, want %+v: the released hold pruned, the committed one kept", out, want)
	}
	rows, _ := s.pool.Query(ctx, `SELECT order_id FROM reservations`)
	left, err := pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
	if err != nil || !slices.Equal(left, []uuid.UUID{kept.ID}) {
		t.Errorf("reservations left %v (%v), want only the committed %s", left, err, kept.ID)
	}
}

// A prune that waits (here on a row another transaction holds) is cut
// pruneMargin before the request's deadline, so the run answers before the
// watchdog's 504 would; it fails no run, and the row waits for a later one.
// Until 2026-12-07 the prune ran on the request's context, to its deadline.
func TestASlowPruneEndsBeforeTheDeadline(t *testing.T) {
	ctx := context.Background()
	s := newShop(t, 10)
	gone := orderstest.Seed(t, s.orders, uuid.Must(uuid.NewV7()), orders.PaymentFailed)
	s.hold(t, gone.ID, 1)
	if _, err := s.store.Release(ctx, gone.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.pool.Exec(ctx, `UPDATE reservations SET updated_at = now() - interval '31 days'`); err != nil {
		t.Fatal(err)
	}
	lock, err := s.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = lock.Rollback(ctx) }()
	if _, err := lock.Exec(ctx, `SELECT 1 FROM reservations WHERE order_id = $1 FOR UPDATE`, gone.ID); err != nil {
		t.Fatal(err)
	}
	const timeout = pruneBudget + 2*time.Second
	rctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req := httptest.NewRequestWithContext(rctx, http.MethodPost, "/", strings.NewReader(`{}`))
	req.Header.Set(auth.InternalHeader, credential)
	rec := httptest.NewRecorder()
	start := time.Now()
	s.h.ServeHTTP(rec, req)
	// Not before the cut either: a run that skipped the prune, or whose
	// prune did not wait on the row, would prove nothing.
	if took := time.Since(start); took > timeout-pruneMargin/2 || took < timeout-pruneMargin-time.Second/2 {
		t.Errorf("the run answered %s after it began, its deadline %s: want the prune to wait, cut %s before the deadline", took.Round(time.Millisecond), timeout, pruneMargin)
	}
	if rec.Code != http.StatusOK {
		t.Errorf("a run whose prune was cut: %d %s, want 200", rec.Code, rec.Body)
	}
	// The cut DELETE ends once PostgreSQL reads the cancel request pgx sends
	// as the deadline passes, which comes a little after the answer: held
	// until then, so that the lock's end cannot let it through first.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		var waiting int
		if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'`).Scan(&waiting); err != nil {
			t.Fatal(err)
		}
		if waiting == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the cut prune still waits on the locked row 5 s after the run answered")
		}
	}
	_ = lock.Rollback(ctx)
	var n int
	if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM reservations WHERE order_id = $1`, gone.ID).Scan(&n); err != nil || n != 1 {
		t.Errorf("the locked reservation after the cut prune: %d rows (%v), want it left for a later run", n, err)
	}
}
