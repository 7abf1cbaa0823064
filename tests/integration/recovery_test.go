package integration

import (
	"context"
	"io/fs"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/shopfaas/shop/internal/auth"
	"github.com/shopfaas/shop/internal/postgres"
)

// TestCrashedCheckoutsAreRecovered drives checkouts into the two failures the
// saga must survive, with real processes: clients that hang up while the
// payment processor is slow, and the charge-payment process killed with
// SIGKILL while charges are in flight. After recover-orders has run, and then
// the sweep (expire-reservations, settling at once) until no hold of a
// finished order is left held, every order is in a final state, and the three
// databases agree: a confirmed order
// has exactly one captured payment and committed stock; any other order has
// no captured payment and no held or committed stock; on_hand fell by exactly
// the confirmed quantities and nothing stays reserved.
func TestCrashedCheckoutsAreRecovered(t *testing.T) {
	s := startShop(t, []string{"get-product", "set-stock", "reserve-stock", "commit-stock", "release-stock",
		"charge-payment", "refund-payment", "create-order", "get-order", "recover-orders",
		"expire-reservations", "order-statuses"}, nil, map[string]string{
		"PAYMENT_SIM_LATENCY": "1500ms",
		"SAGA_TIMEOUT":        "6s",
		"RECOVER_AFTER":       "7s",
	})
	ctx := context.Background()
	const onHand = 20
	p := s.product(t, "RC-KETTLE-1", 2500, onHand)
	body := `{"items":[{"product_id":"` + p.ID.String() + `","quantity":2}],` +
		`"shipping_address":{"name":"Ada","line1":"1 Loop Rd","city":"Springfield","postal_code":"12345","country":"US"},` +
		`"payment":{"token":"tok_visa"}}`
	order := func(ctx context.Context, token string) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, s.EdgeURL+"/api/v1/orders", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+token)
		if res, err := http.DefaultClient.Do(req); err == nil {
			res.Body.Close()
		}
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
	// Four clients wait, but charge-payment is killed while their charges run.
	for range 4 {
		tok := s.token(t, auth.RoleCustomer)
		wg.Go(func() { order(ctx, tok) })
	}
	time.Sleep(800 * time.Millisecond)
	killed := 0
	for _, r := range s.Replicas("charge-payment") {
		if r.PID > 0 && syscall.Kill(r.PID, syscall.SIGKILL) == nil {
			killed++
		}
	}
	if killed == 0 {
		t.Fatal("no charge-payment process to kill")
	}
	wg.Wait()

	ordersPool, paymentsPool, inventoryPool := openPool(t, s.DB["ORDERS_DATABASE_URL"], nil), openPool(t, s.DB["PAYMENTS_DATABASE_URL"], nil), openPool(t, s.DB["INVENTORY_DATABASE_URL"], nil)
	credential := s.ReadSecret(t, "internal-token-operator")
	deadline := time.Now().Add(60 * time.Second)
	for {
		var pending int
		if err := ordersPool.QueryRow(ctx, `SELECT count(*) FROM orders WHERE status = 'pending'`).Scan(&pending); err != nil {
			t.Fatal(err)
		}
		if pending == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d orders still pending after recovery", pending)
		}
		time.Sleep(time.Second)
		if code, _ := internalCall(t, s.GatewayURL, "recover-orders", credential, map[string]any{}); code != http.StatusOK {
			t.Logf("recover-orders: %d", code)
		}
	}

	// Every order is final: the sweep sells the confirmed orders' holds and
	// gives back any other left held; one run settles them all.
	if code, out := internalCall(t, s.GatewayURL, "expire-reservations?settle_after_seconds=0", credential, map[string]any{}); code != http.StatusOK {
		t.Fatalf("expire-reservations: %d %v", code, out)
	}

	type outcome struct{ order, payment, reservation string }
	outcomes := map[string]*outcome{}
	rows, err := ordersPool.Query(ctx, `SELECT id::text, status FROM orders`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var id, status string
		if err := rows.Scan(&id, &status); err != nil {
			t.Fatal(err)
		}
		outcomes[id] = &outcome{order: status}
	}
	rows.Close()
	if len(outcomes) != 7 {
		t.Fatalf("%d orders were written, want 7", len(outcomes))
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
	t.Logf("%d of 7 orders confirmed after recovery; %d processor charges, %d refunds", confirmed, charges, refunds)
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
