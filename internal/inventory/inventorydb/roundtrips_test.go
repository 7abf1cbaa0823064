package inventorydb_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/shopfaas/shop/internal/inventory"
	"github.com/shopfaas/shop/internal/inventory/inventorydb"
	"github.com/shopfaas/shop/internal/postgres/pgtest"
)

// TestCheckoutRoundTrips: the reservation and the stock commit of a checkout
// each cost the inventory database one transaction of a fixed number of round
// trips, whatever the number of lines (docs/performance.md). The counts are
// limits: a round trip added back fails this test.
func TestCheckoutRoundTrips(t *testing.T) {
	// Round trips at most, by number of lines; each call is one commit.
	// Before (one statement per line and an outbox row + NOTIFY per stock
	// change): reserve 6 and 12, commit 7 and 11.
	maxReserve := map[int]int{1: 5, 3: 5}
	maxCommit := map[int]int{1: 5, 3: 5}
	// Statements at most: BEGIN, [the hold's read or header,] one UPDATE per
	// line, [the lines or the status,] one outbox INSERT and one NOTIFY
	// whatever the number of events, COMMIT.
	maxStatements := map[int]int{1: 7, 3: 9}
	// The stock commit of a held order writes no event (available does not
	// change): BEGIN, the hold's read, one UPDATE per line, the status,
	// COMMIT. It was 7 and 9 with an outbox INSERT and a NOTIFY.
	maxCommitStatements := map[int]int{1: 5, 3: 7}
	pool := pgtest.Open(t, inventorydb.Migrations())
	s := inventorydb.New(pool)
	counted, rt := pgtest.Counted(t, pool)
	cs := inventorydb.New(counted)
	ctx := context.Background()
	for _, n := range []int{1, 3} {
		t.Run(fmt.Sprintf("%d lines", n), func(t *testing.T) {
			lines := stockedLines(t, s, n)
			order := newID()
			rt.Reset()
			if h, err := cs.Reserve(ctx, holdReq(t, order, 0, lines...)); err != nil || h.Status != inventory.StatusHeld {
				t.Fatalf("reserve: %+v %v", h, err)
			}
			reserve := rt.Counts()
			rt.Reset()
			if h, err := cs.Commit(ctx, order); err != nil || h.Status != inventory.StatusCommitted {
				t.Fatalf("commit: %+v %v", h, err)
			}
			commit := rt.Counts()
			t.Logf("reserve %+v, commit %+v", reserve, commit)
			if reserve.Statements > maxStatements[n] || commit.Statements > maxCommitStatements[n] {
				t.Errorf("%d lines: %d statements to reserve and %d to commit, want at most %d and %d",
					n, reserve.Statements, commit.Statements, maxStatements[n], maxCommitStatements[n])
			}
			if reserve.Trips > maxReserve[n] || reserve.Commits != 1 {
				t.Errorf("reserve of %d lines: %+v, want at most %d round trips and 1 commit", n, reserve, maxReserve[n])
			}
			if commit.Trips > maxCommit[n] || commit.Commits != 1 {
				t.Errorf("commit of %d lines: %+v, want at most %d round trips and 1 commit", n, commit, maxCommit[n])
			}
			for _, l := range lines {
				if got := stockLevel(t, s, l.ProductID); got != (level{8, 0}) {
					t.Errorf("stock %+v, want {8 0}", got)
				}
			}
		})
	}
}
