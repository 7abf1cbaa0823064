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

// TestCheckoutWritesOneStockEventPerLine: a checkout's reservation writes one
// stock.changed.v1 per line (available drops), and its stock commit writes
// none: on_hand and reserved drop together, so available — the only stock
// figure a consumer reads (index-product's in_stock) — does not change
// (docs/events.md). Before, the commit wrote one more per line: 2 events and
// 2 index-product deliveries per line of every order. A hold taken again
// after it was given back still writes its events (available drops), and so
// does a release (available rises).
func TestCheckoutWritesOneStockEventPerLine(t *testing.T) {
	pool := pgtest.Open(t, inventorydb.Migrations())
	s := inventorydb.New(pool)
	ctx := context.Background()
	for _, n := range []int{1, 3} {
		t.Run(fmt.Sprintf("%d lines", n), func(t *testing.T) {
			lines := stockedLines(t, s, n)
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
			if diff := cmp.Diff(map[string]int{events.StockChanged: n}, sub(reserved, before)); diff != "" {
				t.Errorf("events written by the reservation of %d lines (-want +got):\n%s", n, diff)
			}
			if diff := cmp.Diff(map[string]int{}, sub(committed, reserved)); diff != "" {
				t.Errorf("events written by the stock commit of %d lines (-want +got):\n%s", n, diff)
			}
			// The order's events carry the available units after each change.
			for _, l := range lines {
				if got := lastAvailable(t, pool, l.ProductID); got != 8 {
					t.Errorf("last stock.changed.v1 of %s: available %d, want 8", l.ProductID, got)
				}
			}
			if _, err := s.Release(ctx, order); err != nil { // a cancellation restocks
				t.Fatal(err)
			}
			if diff := cmp.Diff(map[string]int{events.StockChanged: n}, sub(outboxCounts(t, pool), committed)); diff != "" {
				t.Errorf("events written by restocking %d lines (-want +got):\n%s", n, diff)
			}
		})
	}
	t.Run("commit of a released hold", func(t *testing.T) {
		id := newID()
		if _, err := s.SetOnHand(ctx, id, 10); err != nil {
			t.Fatal(err)
		}
		order := newID()
		if _, err := s.Reserve(ctx, holdReq(t, order, 0, inventory.Line{ProductID: id, Quantity: 3})); err != nil {
			t.Fatal(err)
		}
		if _, err := pool.Exec(ctx, `UPDATE reservations SET expires_at = now() - interval '1 second' WHERE order_id = $1`, order); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Expire(ctx, time.Time{}, 10); err != nil {
			t.Fatal(err)
		}
		before := outboxCounts(t, pool)
		if h, err := s.Commit(ctx, order); err != nil || h.Status != inventory.StatusCommitted {
			t.Fatalf("commit after expiry: %+v %v", h, err)
		}
		if diff := cmp.Diff(map[string]int{events.StockChanged: 1}, sub(outboxCounts(t, pool), before)); diff != "" {
			t.Errorf("events written by taking an expired hold again (-want +got):\n%s", diff)
		}
		if got := lastAvailable(t, pool, id); got != 7 {
			t.Errorf("last stock.changed.v1: available %d, want 7", got)
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
