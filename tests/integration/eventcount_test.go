package integration

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/shopfaas/shop/internal/auth"
	"github.com/shopfaas/shop/internal/catalog/catalogdb"
	"github.com/shopfaas/shop/internal/events"
	"github.com/shopfaas/shop/internal/inventory/inventorydb"
	"github.com/shopfaas/shop/internal/orders/ordersdb"
	"github.com/shopfaas/shop/internal/payments/paymentsdb"
	"github.com/shopfaas/shop/internal/routes"
	"github.com/shopfaas/shop/internal/users/usersdb"
	"github.com/shopfaas/shop/tests/stack"
)

// TestCheckoutEventsAndDeliveries counts what one confirmed checkout of 1 line
// and of 3 lines costs the event path, with the relay, the connector and the
// three handlers running: the outbox rows each database writes, by type, until
// every handler is done, and the deliveries each handler gets, measured as
// the gateway counts them (each subscriber's invocationCount in
// /system/functions, before and after the order; nothing else calls the
// subscribers here). The runtime runs GatewayOnly, as faasd does: otherwise
// the connector calls the handlers at their direct addresses, which the
// gateway does not count. docs/performance.md, item 10: before, the stock
// commit wrote a second stock.changed.v1 per line, so a 1-line order was 4
// events and 5 deliveries (index-product 3) and a 3-line order 10 and 11 (9).
// The sale of the order's hold is counted too: the sweep (expire-reservations,
// settling at once) sells it and writes no event (available is unchanged).
// Since item 29 the sale's sold_count writes no product.changed.v1 either
// (update-product-stats pushes it to Meilisearch itself): 2 events and 3
// deliveries for 1 line, 4 and 5 for 3 lines (3 and 4, 7 and 8 before).
// Since item 31 the reservation writes stock.changed.v1 only for a product
// it sells out: 1 event and 2 deliveries for an order that leaves its
// products in stock, whatever its lines; an order that takes a product's
// last units still writes its stock.changed.v1, and index-product's flip of
// the in-stock flag its product.changed.v1.
func TestCheckoutEventsAndDeliveries(t *testing.T) {
	_, env := eventEnv(t)
	s := &shop{stack.Start(t, stack.Options{Functions: []string{"get-product", "set-stock", "reserve-stock", "commit-stock",
		"release-stock", "charge-payment", "refund-payment", "create-order", "update-product-stats", "notify-user",
		"index-product", "expire-reservations", "order-statuses"},
		Connectors: []string{"outbox-relay", "rabbitmq"}, Env: env, GatewayOnly: true})}
	dbs := map[string]*pgxpool.Pool{
		"orders":    openPool(t, s.DB["ORDERS_DATABASE_URL"], ordersdb.Migrations()),
		"inventory": openPool(t, s.DB["INVENTORY_DATABASE_URL"], inventorydb.Migrations()),
		"payments":  openPool(t, s.DB["PAYMENTS_DATABASE_URL"], paymentsdb.Migrations()),
		"catalog":   openPool(t, s.DB["CATALOG_DATABASE_URL"], catalogdb.Migrations()),
		"users":     openPool(t, s.DB["USERS_DATABASE_URL"], usersdb.Migrations()),
	}
	var products []uuid.UUID
	for _, sku := range []string{"EVC-1", "EVC-2", "EVC-3"} {
		products = append(products, s.product(t, sku, 500, 10).ID)
	}
	settle(t, dbs) // the stocking's events and the in-stock flags they set
	var subscribers []string
	for _, r := range routes.Table() {
		if len(r.Topics) > 0 {
			subscribers = append(subscribers, r.Function)
		}
	}
	invoked := settledInvocations(t, s, subscribers, nil, nil)

	for _, c := range []struct {
		lines                []uuid.UUID
		wantEvents           map[string]map[string]int
		wantDeliveries       map[string]int
		quantity             int
		wasEvents, wasDelivs int // before item 31
	}{
		{products[:1],
			map[string]map[string]int{"orders": {events.OrderPlaced: 1}},
			map[string]int{"update-product-stats": 1, "notify-user": 1}, 1, 2, 3},
		{products,
			map[string]map[string]int{"orders": {events.OrderPlaced: 1}},
			map[string]int{"update-product-stats": 1, "notify-user": 1}, 1, 4, 5},
		// The last 9 units of the third product (10 stocked, 1 sold above).
		{products[2:],
			map[string]map[string]int{"orders": {events.OrderPlaced: 1}, "inventory": {events.StockChanged: 1}, "catalog": {events.ProductChanged: 1}},
			map[string]int{"update-product-stats": 1, "notify-user": 1, "index-product": 2}, 9, 3, 4},
	} {
		before, invokedBefore := allCounts(t, dbs), invoked
		items := []map[string]any{}
		for _, id := range c.lines {
			items = append(items, map[string]any{"product_id": id, "quantity": c.quantity})
		}
		body := orderBody(c.lines[0], 1)
		body["items"] = items
		var out struct {
			Status string `json:"status"`
		}
		if code := call(t, http.MethodPost, s.EdgeURL+"/api/v1/orders", s.token(t, auth.RoleCustomer), body, &out); code != http.StatusCreated || out.Status != "confirmed" {
			t.Fatalf("create order of %d lines: %d %q", len(c.lines), code, out.Status)
		}
		if code, out := internalCall(t, s.GatewayURL, "expire-reservations?settle_after_seconds=0", s.ReadSecret(t, "internal-token-scheduler"), map[string]any{}); code != http.StatusOK || out["settled"] != float64(1) {
			t.Fatalf("sweep after the order of %d lines: %d %v, want its hold settled", len(c.lines), code, out)
		}
		settle(t, dbs)
		got := map[string]map[string]int{}
		total := 0
		for db, n := range allCounts(t, dbs) {
			for typ, k := range n {
				if d := k - before[db][typ]; d != 0 {
					if got[db] == nil {
						got[db] = map[string]int{}
					}
					got[db][typ] = d
					total += d
				}
			}
		}
		invoked = settledInvocations(t, s, subscribers, invokedBefore, c.wantDeliveries)
		deliveries, deliveriesTotal := map[string]int{}, 0
		for _, fn := range subscribers {
			if d := invoked[fn] - invokedBefore[fn]; d != 0 {
				deliveries[fn] = d
				deliveriesTotal += d
			}
		}
		t.Logf("%d lines: %d events %v, %d deliveries %v (before item 31: %d events, %d deliveries)",
			len(c.lines), total, got, deliveriesTotal, deliveries, c.wasEvents, c.wasDelivs)
		if diff := cmp.Diff(c.wantEvents, got); diff != "" {
			t.Errorf("%d-line checkout: outbox rows by database and type (-want +got):\n%s", len(c.lines), diff)
		}
		if diff := cmp.Diff(c.wantDeliveries, deliveries); diff != "" {
			t.Errorf("%d-line checkout: deliveries by handler (-want +got):\n%s", len(c.lines), diff)
		}
	}
}

// settledInvocations waits until the invocation counts of fns have reached
// before plus atLeast (the deliveries the test expects; nil for none) and
// then stayed the same for a second, and returns them. Its minute is a
// liveness bound: when it passes, the counts are returned as they are, for
// the caller's comparison to show what is missing.
func settledInvocations(t *testing.T, s *shop, fns []string, before, atLeast map[string]int) map[string]int {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	var last map[string]int
	stable := time.Time{}
	for {
		all := s.Invocations(t)
		cur := map[string]int{}
		reached := true
		for _, fn := range fns {
			cur[fn] = all[fn]
			reached = reached && cur[fn]-before[fn] >= atLeast[fn]
		}
		switch {
		case !reached || !maps.Equal(cur, last):
			stable = time.Time{}
		case stable.IsZero():
			stable = time.Now()
		case time.Since(stable) >= time.Second:
			return cur
		}
		if time.Now().After(deadline) {
			t.Logf("the invocations of %v did not settle within a minute: %v (before: %v)", fns, cur, before)
			return cur
		}
		last = cur
		time.Sleep(100 * time.Millisecond)
	}
}

// allCounts counts every database's outbox rows by type.
func allCounts(t *testing.T, dbs map[string]*pgxpool.Pool) map[string]map[string]int {
	t.Helper()
	out := map[string]map[string]int{}
	for name, pool := range dbs {
		out[name] = map[string]int{}
		rows, err := pool.Query(context.Background(), `SELECT type, count(*) FROM outbox GROUP BY type`)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var typ string
			var n int
			if err := rows.Scan(&typ, &n); err != nil {
				t.Fatal(err)
			}
			out[name][typ] = n
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// settle waits until every outbox row is published and every event of a type
// a handler claims in its inbox (all but product.changed.v1, which
// index-product handles without a claim) is processed by each subscriber,
// and the counts stay the same for half a second: then every event the
// checkout causes, those the handlers write included, is in an outbox.
func settle(t *testing.T, dbs map[string]*pgxpool.Pool) {
	t.Helper()
	ctx := context.Background()
	state := func() (string, bool) {
		done := true
		var sum []int
		for _, name := range []string{"orders", "inventory", "payments", "catalog", "users"} {
			var total, pending int
			if err := dbs[name].QueryRow(ctx, `SELECT count(*), count(*) FILTER (WHERE published_at IS NULL) FROM outbox`).Scan(&total, &pending); err != nil {
				t.Fatal(err)
			}
			done = done && pending == 0
			sum = append(sum, total)
		}
		claims := func(db, consumer string) int {
			var n int
			if err := dbs[db].QueryRow(ctx, `SELECT count(*) FROM processed_events WHERE consumer = $1`, consumer).Scan(&n); err != nil {
				t.Fatal(err)
			}
			return n
		}
		count := func(db, typ string) int {
			var n int
			if err := dbs[db].QueryRow(ctx, `SELECT count(*) FROM outbox WHERE type = $1`, typ).Scan(&n); err != nil {
				t.Fatal(err)
			}
			return n
		}
		placed := count("orders", events.OrderPlaced)
		done = done && claims("catalog", "update-product-stats") == placed &&
			claims("users", "notify-user") == placed &&
			claims("catalog", "index-product") == count("inventory", events.StockChanged)
		return fmt.Sprint(sum), done
	}
	deadline := time.Now().Add(15 * time.Second)
	last, stable := "", time.Time{}
	for time.Now().Before(deadline) {
		cur, done := state()
		switch {
		case !done:
			stable = time.Time{}
		case cur != last || stable.IsZero():
			stable = time.Now()
		case time.Since(stable) >= 500*time.Millisecond:
			return
		}
		last = cur
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatal("the events did not settle within 15 s")
}
