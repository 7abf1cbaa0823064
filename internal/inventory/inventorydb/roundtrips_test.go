package inventorydb_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/shopfaas/shop/internal/fault"
	"github.com/shopfaas/shop/internal/inventory"
	"github.com/shopfaas/shop/internal/inventory/inventorydb"
	"github.com/shopfaas/shop/internal/postgres/pgtest"
)

// TestCheckoutRoundTrips: the reservation and the stock commit each cost the
// inventory database one transaction of a fixed number of round trips,
// whatever the number of lines (docs/performance.md). The counts are limits:
// a round trip added back fails this test. A checkout now makes only the
// reservation (2 round trips, 1 commit, where it was 4 and 2 with its stock
// commit); the sweep sells its hold later, in a batch shared with up to 499
// other holds (TestSettlementRoundTrips), and a Commit runs in a checkout only
// to take back a hold that was given back.
func TestCheckoutRoundTrips(t *testing.T) {
	// Round trips at most, by number of lines; each call is one commit.
	// BEGIN rides in the first batch and COMMIT in the last
	// (postgres.BatchTx). Before: reserve 6 and 12, commit 7 and 11 (one
	// statement per line, an outbox row + NOTIFY per stock change); then 5
	// and 5 (BEGIN and COMMIT of their own, the lines in one batch).
	maxReserve := map[int]int{1: 2, 3: 2}
	maxCommit := map[int]int{1: 2, 3: 2}
	// Statements at most: BEGIN, [the hold's read or header,] one UPDATE per
	// line, [the lines or the status,] one statement for the outbox INSERT
	// and its NOTIFY whatever the number of events, COMMIT (7 and 9 when the
	// NOTIFY was a statement of its own).
	maxStatements := map[int]int{1: 6, 3: 8}
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
			t.Logf("reserve %+v, commit %+v; a checkout: %d round trips and %d commit (%d and %d with its stock commit before)",
				reserve, commit, reserve.Trips, reserve.Commits, reserve.Trips+commit.Trips, reserve.Commits+commit.Commits)
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

	// The other paths, 2 lines: a refusal is the first batch and a ROLLBACK
	// (no commit); a repeat is that, then the hold read (BEGIN + the locked
	// read, ROLLBACK: it writes nothing; 4 round trips and a commit before);
	// a release and the commit of an expired hold (taken
	// again, with events) are 3 round trips: the locked read, the stock
	// UPDATEs, and the status, the events and COMMIT (5 each before). The
	// commit of a released hold is refused and writes nothing (no commit).
	t.Run("refused, released, taken again", func(t *testing.T) {
		lines := stockedLines(t, s, 2)
		order := newID()
		rt.Reset()
		tooMany := append([]inventory.Line{}, lines...)
		tooMany[1].Quantity = 11
		if _, err := cs.Reserve(ctx, holdReq(t, order, 0, tooMany...)); !fault.Is(err, fault.Conflict, "out_of_stock") {
			t.Fatalf("reserve of 11: %v, want out_of_stock", err)
		}
		if got := rt.Counts(); got.Trips > 2 || got.Commits != 0 {
			t.Errorf("refused reserve: %+v, want at most 2 round trips and no commit", got)
		}
		if _, err := cs.Reserve(ctx, holdReq(t, order, 0, lines...)); err != nil {
			t.Fatal(err)
		}
		rt.Reset()
		if h, err := cs.Reserve(ctx, holdReq(t, order, 0, lines...)); err != nil || h.Status != inventory.StatusHeld {
			t.Fatalf("repeated reserve: %+v %v", h, err)
		}
		if got := rt.Counts(); got.Trips > 4 || got.Commits != 0 {
			t.Errorf("repeated reserve: %+v, want at most 4 round trips and no commit", got)
		}
		rt.Reset()
		if h, err := cs.Release(ctx, order); err != nil || h.Status != inventory.StatusReleased {
			t.Fatalf("release: %+v %v", h, err)
		}
		if got := rt.Counts(); got.Trips > 3 || got.Commits != 1 {
			t.Errorf("release: %+v, want at most 3 round trips and 1 commit", got)
		}
		// A release of nothing: the void's insert and the read, then COMMIT;
		// again, the read alone.
		nothing := newID()
		for i, commits := range []int{1, 0} {
			rt.Reset()
			if h, err := cs.Release(ctx, nothing); err != nil || h.Status != inventory.StatusNone {
				t.Fatalf("release of nothing: %+v %v", h, err)
			}
			if got := rt.Counts(); got.Trips > 2 || got.Commits != commits {
				t.Errorf("release %d of nothing: %+v, want at most 2 round trips and %d commit(s)", i+1, got, commits)
			}
		}
		rt.Reset()
		if _, err := cs.Commit(ctx, order); !fault.Is(err, fault.Conflict, "reservation_released") {
			t.Fatalf("commit of a released hold: %v, want reservation_released", err)
		}
		if got := rt.Counts(); got.Commits != 0 {
			t.Errorf("commit of a released hold: %+v, want no commit", got)
		}
		// The retake: a hold of the same lines that the sweep expired.
		retaken := newID()
		if _, err := s.Reserve(ctx, holdReq(t, retaken, 0, lines...)); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Expire(ctx, time.Now().Add(inventory.MaxHoldTTL+time.Hour), 0); err != nil {
			t.Fatal(err)
		}
		rt.Reset()
		if h, err := cs.Commit(ctx, retaken); err != nil || h.Status != inventory.StatusCommitted {
			t.Fatalf("commit of an expired hold: %+v %v", h, err)
		}
		if got := rt.Counts(); got.Trips > 3 || got.Commits != 1 {
			t.Errorf("commit of an expired hold: %+v, want at most 3 round trips and 1 commit", got)
		}
		for _, l := range lines {
			if got := stockLevel(t, s, l.ProductID); got != (level{8, 0}) {
				t.Errorf("stock %+v, want {8 0}", got)
			}
		}
	})
}

// TestExpirySweepRoundTrips: the sweep is 4 round trips whatever the number
// of holds and lines (6 before postgres.BatchTx): BEGIN and the claim, the
// lines, the stock UPDATEs, the events and COMMIT.
func TestExpirySweepRoundTrips(t *testing.T) {
	pool := pgtest.Open(t, inventorydb.Migrations())
	s := inventorydb.New(pool)
	counted, rt := pgtest.Counted(t, pool)
	cs := inventorydb.New(counted)
	ctx := context.Background()
	lines := stockedLines(t, s, 2)
	for range 3 {
		if _, err := s.Reserve(ctx, holdReq(t, newID(), 0, lines...)); err != nil {
			t.Fatal(err)
		}
	}
	rt.Reset()
	n, err := cs.Expire(ctx, time.Now().Add(inventory.MaxHoldTTL+time.Hour), 0)
	if err != nil || n != 3 {
		t.Fatalf("expire: %d %v, want 3", n, err)
	}
	if got := rt.Counts(); got.Trips > 4 || got.Commits != 1 {
		t.Errorf("sweep of 3 holds: %+v, want at most 4 round trips and 1 commit", got)
	}
	for _, l := range lines {
		if got := stockLevel(t, s, l.ProductID); got != (level{10, 0}) {
			t.Errorf("stock %+v, want {10 0}", got)
		}
	}
	rt.Reset()
	if n, err := cs.Expire(ctx, time.Time{}, 0); err != nil || n != 0 {
		t.Fatalf("second sweep: %d %v, want 0", n, err)
	}
	if got := rt.Counts(); got.Trips > 2 || got.Commits != 0 {
		t.Errorf("sweep of nothing: %+v, want at most 2 round trips and no commit", got)
	}
}

// TestSettlementRoundTrips: a settlement batch is 4 round trips and 1 commit
// whatever the number of holds and lines: the due holds' read, then BEGIN with
// the locked holds and their lines, the stock UPDATEs (one per product), and
// the statuses, the events and COMMIT. It sells what each checkout's
// commit-stock used to (2 round trips and 1 commit per order): a checkout
// costs the inventory database its reservation only.
func TestSettlementRoundTrips(t *testing.T) {
	pool := pgtest.Open(t, inventorydb.Migrations())
	s := inventorydb.New(pool)
	counted, rt := pgtest.Counted(t, pool)
	cs := inventorydb.New(counted)
	ctx := context.Background()
	lines := stockedLines(t, s, 2)
	book := &orderBook{}
	for i := range 4 {
		id := newID()
		if _, err := s.Reserve(ctx, holdReq(t, id, 0, lines...)); err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			book.set(id, inventory.OrderPaymentFailed)
		} else {
			book.set(id, inventory.OrderConfirmed)
		}
	}
	rt.Reset()
	r, err := cs.Settle(ctx, inventory.SettleCursor{}, 0, 500, book.lookup)
	if err != nil || r.Settled != 3 || r.Released != 1 {
		t.Fatalf("settle: %+v %v, want 3 sold and 1 released", r, err)
	}
	got := rt.Counts()
	t.Logf("settlement of 4 holds of 2 lines: %+v", got)
	if got.Trips > 4 || got.Commits != 1 {
		t.Errorf("settlement of 4 holds: %+v, want at most 4 round trips and 1 commit", got)
	}
	for _, l := range lines {
		if got := stockLevel(t, s, l.ProductID); got != (level{4, 0}) {
			t.Errorf("stock %+v, want {4 0}", got)
		}
	}
	rt.Reset()
	if r, err := cs.Settle(ctx, inventory.SettleCursor{}, 0, 500, book.lookup); err != nil || r.Scanned != 0 {
		t.Fatalf("second settlement: %+v %v, want nothing due", r, err)
	}
	if got := rt.Counts(); got.Trips > 1 || got.Commits != 0 {
		t.Errorf("settlement of nothing: %+v, want at most 1 round trip and no commit", got)
	}
}

// BenchmarkReserveAndCommit: the inventory database's share of a checkout's
// latency, a 1-line reservation and its stock commit, one after the other
// (docs/performance.md). Indicative only: run it on an idle machine,
// alternately with the code it is compared to.
func BenchmarkReserveAndCommit(b *testing.B) {
	pool := pgtest.Open(b, inventorydb.Migrations())
	s := inventorydb.New(pool)
	ctx := context.Background()
	product := newID()
	if _, err := s.SetOnHand(ctx, product, 1_000_000, inventory.IfAbsent()); err != nil {
		b.Fatal(err)
	}
	line := inventory.Line{ProductID: product, Quantity: 1}
	for b.Loop() {
		order := newID()
		req, err := inventory.NewHoldRequest(order, []inventory.Line{line}, 0)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := s.Reserve(ctx, req); err != nil {
			b.Fatal(err)
		}
		if _, err := s.Commit(ctx, order); err != nil {
			b.Fatal(err)
		}
	}
}
