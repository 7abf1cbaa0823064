package inventorydb_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/shopfaas/shop/internal/events"
	"github.com/shopfaas/shop/internal/inventory"
	"github.com/shopfaas/shop/internal/inventory/inventorydb"
	"github.com/shopfaas/shop/internal/postgres/pgtest"
)

// TestCheckoutWritesStockEventsOnlyWhenAProductSellsOut: stock.changed.v1 is
// written only when a change takes a product's available units to none or
// back from none, since its one consumer (index-product) shows only whether
// a product is in stock (docs/events.md). A checkout that leaves its products
// in stock writes none: not its reservation, not its stock commit (which
// never moves available), not its restock after a cancellation. Until item 31
// the reservation and the restock wrote one per line, which cost a relay
// publish, a quorum-queue message, a delivery and an index-product
// transaction per line of every order. A reservation that sells a product
// out writes one per product sold out, and the release that brings it back
// one more; so do the expiry of a hold and the commit that takes an expired
// hold again, when they flip it.
func TestCheckoutWritesStockEventsOnlyWhenAProductSellsOut(t *testing.T) {
	pool := pgtest.Open(t, inventorydb.Migrations())
	s := inventorydb.New(pool)
	ctx := context.Background()
	for _, n := range []int{1, 3} {
		t.Run(fmt.Sprintf("%d lines", n), func(t *testing.T) {
			lines := stockedLines(t, s, n) // 10 on hand, 2 asked each
			order := newID()
			before := outboxCounts(t, pool)
			if _, err := s.Reserve(ctx, holdReq(t, order, 0, lines...)); err != nil {
				t.Fatal(err)
			}
			reserved := outboxCounts(t, pool)
			if _, err := s.Commit(ctx, order); err != nil {
				t.Fatal(err)
			}
			committed := outboxCounts(t, pool)
			if _, err := s.Release(ctx, order); err != nil { // a cancellation restocks
				t.Fatal(err)
			}
			restocked := outboxCounts(t, pool)
			for step, got := range map[string]map[string]int{"reservation": sub(reserved, before),
				"stock commit": sub(committed, reserved), "restock": sub(restocked, committed)} {
				if diff := cmp.Diff(map[string]int{}, got); diff != "" {
					t.Errorf("events written by the %s of %d lines that leaves them in stock (-want +got):\n%s", step, n, diff)
				}
			}

			// An order for every unit left sells them out; its release
			// brings them back.
			all := make([]inventory.Line, n)
			for i, l := range lines {
				all[i] = inventory.Line{ProductID: l.ProductID, Quantity: 10}
			}
			order = newID()
			if _, err := s.Reserve(ctx, holdReq(t, order, 0, all...)); err != nil {
				t.Fatal(err)
			}
			soldOut := outboxCounts(t, pool)
			if diff := cmp.Diff(map[string]int{events.StockChanged: n}, sub(soldOut, restocked)); diff != "" {
				t.Errorf("events written by the reservation that sells %d products out (-want +got):\n%s", n, diff)
			}
			for _, l := range lines {
				if got := lastAvailable(t, pool, l.ProductID); got != 0 {
					t.Errorf("last stock.changed.v1 of %s: available %d, want 0", l.ProductID, got)
				}
			}
			if _, err := s.Release(ctx, order); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(map[string]int{events.StockChanged: n}, sub(outboxCounts(t, pool), soldOut)); diff != "" {
				t.Errorf("events written by the release that brings %d products back (-want +got):\n%s", n, diff)
			}
			for _, l := range lines {
				if got := lastAvailable(t, pool, l.ProductID); got != 10 {
					t.Errorf("last stock.changed.v1 of %s: available %d, want 10", l.ProductID, got)
				}
			}
		})
	}
	t.Run("expiry and commit of an expired hold", func(t *testing.T) {
		for _, c := range []struct {
			onHand, want int // want: events of each of the three steps
		}{{10, 0}, {3, 1}} {
			id := newID()
			if _, err := s.SetOnHand(ctx, id, c.onHand, inventory.IfAbsent()); err != nil {
				t.Fatal(err)
			}
			order := newID()
			before := outboxCounts(t, pool)
			if _, err := s.Reserve(ctx, holdReq(t, order, 0, inventory.Line{ProductID: id, Quantity: 3})); err != nil {
				t.Fatal(err)
			}
			held := outboxCounts(t, pool)
			if _, err := pool.Exec(ctx, `UPDATE reservations SET expires_at = now() - interval '1 second' WHERE order_id = $1`, order); err != nil {
				t.Fatal(err)
			}
			if _, err := s.Expire(ctx, time.Time{}, 10); err != nil {
				t.Fatal(err)
			}
			if l := stockLevel(t, s, id); l != (level{c.onHand, 0}) {
				t.Errorf("%d on hand, 3 held: stock after expiry %+v, want the 3 units given back", c.onHand, l)
			}
			expired := outboxCounts(t, pool)
			if h, err := s.Commit(ctx, order); err != nil || h.Status != inventory.StatusCommitted {
				t.Fatalf("commit after expiry: %+v %v", h, err)
			}
			for step, got := range map[string]map[string]int{"reservation": sub(held, before),
				"expiry": sub(expired, held), "commit after expiry": sub(outboxCounts(t, pool), expired)} {
				want := map[string]int{}
				if c.want > 0 {
					want[events.StockChanged] = c.want
				}
				if diff := cmp.Diff(want, got); diff != "" {
					t.Errorf("%d on hand, 3 held: events written by the %s (-want +got):\n%s", c.onHand, step, diff)
				}
			}
			if c.want > 0 {
				if got := lastAvailable(t, pool, id); got != 0 {
					t.Errorf("last stock.changed.v1: available %d, want 0", got)
				}
			}
		}
	})
}

// outboxCounts counts the outbox rows by event type.
func outboxCounts(t *testing.T, pool *pgxpool.Pool) map[string]int {
	t.Helper()
	rows, err := pool.Query(context.Background(), `SELECT type, count(*) FROM outbox GROUP BY type`)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	for rows.Next() {
		var typ string
		var n int
		if err := rows.Scan(&typ, &n); err != nil {
			t.Fatal(err)
		}
		out[typ] = n
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// sub returns the non-zero differences b - a by key.
func sub(b, a map[string]int) map[string]int {
	out := map[string]int{}
	for k, v := range b {
		if d := v - a[k]; d != 0 {
			out[k] = d
		}
	}
	return out
}

// lastAvailable is the available units of the product's newest
// stock.changed.v1.
func lastAvailable(t *testing.T, pool *pgxpool.Pool, product fmt.Stringer) int {
	t.Helper()
	var n int
	if err := pool.QueryRow(context.Background(), `SELECT (envelope->'data'->>'available')::int FROM outbox
		WHERE type = $1 AND subject = $2 ORDER BY seq DESC LIMIT 1`, events.StockChanged, product.String()).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}
