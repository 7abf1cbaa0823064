package integration

import (
	"context"
	"fmt"
	"io/fs"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/shopfaas/shop/internal/auth"
	"github.com/shopfaas/shop/internal/orders"
	"github.com/shopfaas/shop/internal/postgres"
)

// TestCrashedCheckoutsAreRecovered drives checkouts into the two failures the
// saga must survive, with real processes: clients that hang up while the
// payment processor is slow, and the charge-payment process killed with
// SIGKILL while charges are in flight — and kept down (killed again whenever
// the supervisor restarts it) until every saga has given up, since the saga
// tries a step 3 times and a replica back within SAGA_TIMEOUT would let the
// checkouts finish inside the saga, leaving recovery nothing to do. Orders
// must then be pending when recover-orders first runs, its reports must say it
// drove them and confirmed some. After the sweep (expire-reservations,
// settling at once) no hold of a finished order is left held, every order is
// in a final state, and the three databases agree: a confirmed order has
// exactly one captured payment and committed stock; any other order has no
// captured payment and no held or committed stock; on_hand fell by exactly
// the confirmed quantities and nothing stays reserved.
func TestCrashedCheckoutsAreRecovered(t *testing.T) {
	const sagaTimeout = 6 * time.Second
	s := startShop(t, []string{"get-product", "set-stock", "reserve-stock", "commit-stock", "release-stock",
		"charge-payment", "refund-payment", "create-order", "get-order", "recover-orders",
		"expire-reservations", "order-statuses"}, nil, map[string]string{
		"PAYMENT_SIM_LATENCY": "1500ms",
		"SAGA_TIMEOUT":        sagaTimeout.String(),
		"RECOVER_AFTER":       "14s", // above a drive's longest, SAGA_TIMEOUT + 7 s (saga.LongestDrive)
	})
	ctx := context.Background()
	const onHand = 20
	p := s.product(t, "RC-KETTLE-1", 2500, onHand)
	body := `{"items":[{"product_id":"` + p.ID.String() + `","quantity":2}],` +
		`"shipping_address":{"name":"Ada","line1":"1 Loop Rd","city":"Springfield","postal_code":"12345","country":"US"},` +
		`"payment":{"token":"tok_visa"}}`
	// order answers the status the client received (0 when it hung up).
	order := func(ctx context.Context, token string) int {
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, s.EdgeURL+"/api/v1/orders", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+token)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0
		}
		res.Body.Close()
		return res.StatusCode
	}

	var wg sync.WaitGroup
	// Three clients hang up 300 ms into their checkout, while the charge is slow.
	for range 3 {
		tok := s.token(t, auth.RoleCustomer)
		wg.Go(func() {
			cctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
			defer cancel()
			order(cctx, tok)
		})
	}
	// Four clients wait, but charge-payment is killed while their charges
	// run, and kept down until every saga has given up. Each is its own
	// user, so its answer is checked against its order's final state.
	var answersMu sync.Mutex
	answers := map[uuid.UUID]int{}
	for range 4 {
		user := uuid.Must(uuid.NewV7())
		tok := s.TokenFor(t, user, auth.RoleCustomer)
		wg.Go(func() {
			code := order(ctx, tok)
			answersMu.Lock()
			answers[user] = code
			answersMu.Unlock()
		})
	}
	time.Sleep(800 * time.Millisecond)
	stopKilling := keepDown(t, s, "charge-payment")
	wg.Wait()

	ordersPool, paymentsPool, inventoryPool := openPool(t, s.DB["ORDERS_DATABASE_URL"], nil), openPool(t, s.DB["PAYMENTS_DATABASE_URL"], nil), openPool(t, s.DB["INVENTORY_DATABASE_URL"], nil)
	pending := func() int {
		var n int
		if err := ordersPool.QueryRow(ctx, `SELECT count(*) FROM orders WHERE status = 'pending'`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	// Every saga ends SAGA_TIMEOUT after its order was written (the waiting
	// clients have their answers; the others' sagas began with theirs).
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(200 * time.Millisecond) {
		var over bool
		if err := ordersPool.QueryRow(ctx, `SELECT coalesce(now() - max(created_at) > $1::interval, true) FROM orders`,
			(sagaTimeout + time.Second).String()).Scan(&over); err != nil {
			t.Fatal(err)
		}
		if over {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the sagas did not end")
		}
	}
	if killed := stopKilling(); killed == 0 {
		t.Fatal("no charge-payment process was killed")
	} else {
		t.Logf("charge-payment kept down: %d processes killed", killed)
	}
	rctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := s.WaitReady(rctx, "charge-payment"); err != nil {
		t.Fatalf("charge-payment did not come back: %v", err)
	}

	// Recovery must have work to do: orders the saga left pending, which
	// only recover-orders can finish now.
	pendingAtFirst := pending()
	if pendingAtFirst == 0 {
		t.Fatal("no order was pending when recover-orders first ran: the checkouts finished inside the saga and recovery was not exercised")
	}
	credential := s.ReadSecret(t, "internal-token-operator")
	var driven, recovered int
	deadline := time.Now().Add(90 * time.Second)
	for left := pendingAtFirst; left > 0; left = pending() {
		if time.Now().After(deadline) {
			t.Fatalf("%d orders still pending after recovery", left)
		}
		time.Sleep(time.Second)
		code, rep := internalCall(t, s.GatewayURL, "recover-orders", credential, map[string]any{})
		if code != http.StatusOK {
			t.Logf("recover-orders: %d %v", code, rep)
			continue
		}
		n := func(k string) int { v, _ := rep[k].(float64); return int(v) }
		driven += n("driven")
		recovered += n("confirmed")
	}
	if driven == 0 || recovered == 0 {
		t.Fatalf("%d orders were pending, but recover-orders' reports drove %d and confirmed %d", pendingAtFirst, driven, recovered)
	}

	// Every order is final: the sweep sells the confirmed orders' holds and
	// gives back any other left held; one run settles them all.
	if code, out := internalCall(t, s.GatewayURL, "expire-reservations?settle_after_seconds=0", credential, map[string]any{}); code != http.StatusOK {
		t.Fatalf("expire-reservations: %d %v", code, out)
	}

	type outcome struct{ order, payment, reservation string }
	outcomes := map[string]*outcome{}
	endOf := map[uuid.UUID][]string{} // each user's orders' final states
	rows, err := ordersPool.Query(ctx, `SELECT id::text, user_id, status FROM orders`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var id, status string
		var user uuid.UUID
		if err := rows.Scan(&id, &user, &status); err != nil {
			t.Fatal(err)
		}
		outcomes[id] = &outcome{order: status}
		endOf[user] = append(endOf[user], status)
	}
	rows.Close()
	if len(outcomes) != 7 {
		t.Fatalf("%d orders were written, want 7", len(outcomes))
	}
	// What a waiting client was told must not contradict where its order
	// ended, by the rule of dev/chaos's checkoutProblems: 201 means
	// confirmed, 402 payment_failed, 202 any final state (the checkout
	// was still running); any other answer is a fault of the checkout.
	for user, code := range answers {
		for _, p := range answerProblems(code, endOf[user]) {
			t.Errorf("a waiting client (user %s): %s", user, p)
		}
	}
	collect := func(pool *pgxpool.Pool, sql string, set func(o *outcome, v string)) {
		rows, err := pool.Query(ctx, sql)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		for rows.Next() {
			var id, v string
			if err := rows.Scan(&id, &v); err != nil {
				t.Fatal(err)
			}
			o, ok := outcomes[id]
			if !ok {
				t.Errorf("%s row for order %s, which does not exist", v, id)
				continue
			}
			set(o, v)
		}
	}
	collect(paymentsPool, `SELECT order_id::text, status FROM payments`, func(o *outcome, v string) { o.payment = v })
	collect(inventoryPool, `SELECT order_id::text, status FROM reservations`, func(o *outcome, v string) { o.reservation = v })

	confirmed := 0
	for id, o := range outcomes {
		switch o.order {
		case "confirmed":
			confirmed++
			if o.payment != "captured" || o.reservation != "committed" {
				t.Errorf("order %s confirmed with payment %q and stock %q", id, o.payment, o.reservation)
			}
		case "payment_failed", "cancelled":
			if o.payment == "captured" || o.reservation == "held" || o.reservation == "committed" {
				t.Errorf("order %s %s but payment %q and stock %q", id, o.order, o.payment, o.reservation)
			}
		default:
			t.Errorf("order %s ended %q", id, o.order)
		}
	}
	var gotOnHand, reserved int
	if err := inventoryPool.QueryRow(ctx, `SELECT on_hand, reserved FROM stock WHERE product_id = $1`, p.ID).Scan(&gotOnHand, &reserved); err != nil {
		t.Fatal(err)
	}
	if gotOnHand != onHand-2*confirmed || reserved != 0 {
		t.Errorf("stock on_hand %d reserved %d after %d confirmed orders of 2, want %d and 0", gotOnHand, reserved, confirmed, onHand-2*confirmed)
	}
	var charges int
	if err := paymentsPool.QueryRow(ctx, `SELECT count(*) FROM processor_sim_entries WHERE kind = 'charge' AND outcome IN ('captured', 'refunded')`).Scan(&charges); err != nil {
		t.Fatal(err)
	}
	var refunds int
	if err := paymentsPool.QueryRow(ctx, `SELECT count(*) FROM processor_sim_entries WHERE kind = 'refund'`).Scan(&refunds); err != nil {
		t.Fatal(err)
	}
	if charges-refunds != confirmed {
		t.Errorf("the processor kept %d charges (%d charged, %d refunded) for %d confirmed orders", charges-refunds, charges, refunds, confirmed)
	}
	if confirmed == 0 {
		t.Error("no order ended confirmed")
	}
	t.Logf("%d of 7 orders confirmed, %d pending when recovery began, %d driven and %d confirmed by recover-orders; %d processor charges, %d refunds; the waiting clients' answers %v",
		confirmed, pendingAtFirst, driven, recovered, charges, refunds, slices.Sorted(maps.Values(answers)))
}

// keepDown SIGKILLs every replica of fn (its process group, through the
// runtime), and again each process the supervisor restarts, until the
// returned stop is called (at the latest when the test ends); stop answers
// how many processes were killed.
func keepDown(t *testing.T, s *shop, fn string) (stop func() int) {
	done := make(chan struct{})
	killed, failed := map[int]bool{}, map[int]bool{}
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			for _, r := range s.Replicas(fn) {
				if r.PID == 0 || killed[r.PID] {
					continue
				}
				// Through the runtime: it signals only a replica still
				// running as r.PID, never a pid freed since the listing.
				// This goroutine may not call t.Fatal: a failed kill is
				// an error of the test, said once per process.
				sent, err := s.KillReplica(fn, r)
				if err != nil {
					if !failed[r.PID] {
						t.Errorf("keepDown: kill %s's replica %d: %v", fn, r.PID, err)
					}
					failed[r.PID] = true
					continue
				}
				if sent {
					killed[r.PID] = true
				}
			}
			select {
			case <-done:
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
	})
	stop = sync.OnceValue(func() int {
		close(done)
		wg.Wait()
		return len(killed)
	})
	t.Cleanup(func() { stop() })
	return stop
}

// openPool connects to a test database, applying migrations when not nil.
func openPool(t *testing.T, url string, migrations fs.FS) *pgxpool.Pool {
	t.Helper()
	pool, err := postgres.Open(context.Background(), postgres.Config{URL: url, MaxConns: 2, Migrations: migrations})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// answerProblems says how a checkout's answer contradicts the final states of
// the orders its user placed (one order per user, all of them final): 201
// must have ended confirmed, 402 payment_failed, and 202 (accepted, still
// running) may end in any final state; another answer, or a number of orders
// other than one, is a problem.
func answerProblems(code int, ends []string) []string {
	if len(ends) != 1 {
		return []string{fmt.Sprintf("answered %d, but its user has %d orders, want 1", code, len(ends))}
	}
	end := ends[0]
	var ok bool
	switch code {
	case http.StatusCreated:
		ok = end == string(orders.Confirmed)
	case http.StatusPaymentRequired:
		ok = end == string(orders.PaymentFailed)
	case http.StatusAccepted:
		ok = true
	}
	if ok {
		return nil
	}
	return []string{fmt.Sprintf("answered %d, but its order ended %q", code, end)}
}

// TestCheckoutAnswerMustAgreeWithItsOrder checks answerProblems, the rule the
// recovery test applies to its waiting clients' answers.
func TestCheckoutAnswerMustAgreeWithItsOrder(t *testing.T) {
	for _, c := range []struct {
		code int
		ends []string
		ok   bool
	}{
		{http.StatusCreated, []string{"confirmed"}, true},
		{http.StatusCreated, []string{"payment_failed"}, false},
		{http.StatusCreated, []string{"cancelled"}, false},
		{http.StatusPaymentRequired, []string{"payment_failed"}, true},
		{http.StatusPaymentRequired, []string{"confirmed"}, false},
		{http.StatusAccepted, []string{"confirmed"}, true},
		{http.StatusAccepted, []string{"payment_failed"}, true},
		{http.StatusAccepted, []string{"cancelled"}, true},
		{http.StatusInternalServerError, []string{"confirmed"}, false},
		{http.StatusCreated, nil, false},
		{http.StatusAccepted, []string{"confirmed", "confirmed"}, false},
	} {
		if got := answerProblems(c.code, c.ends); (len(got) == 0) != c.ok {
			t.Errorf("answer %d, orders %v: problems %q, want ok %v", c.code, c.ends, got, c.ok)
		}
	}
}
