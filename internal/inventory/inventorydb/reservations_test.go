package inventorydb_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"

	"github.com/shopfaas/shop/internal/fault"
	"github.com/shopfaas/shop/internal/inventory"
	"github.com/shopfaas/shop/internal/inventory/inventorydb"
	"github.com/shopfaas/shop/internal/postgres/pgtest"
)

// reservationStore opens a fresh inventory database with products stocked at
// the given levels.
func reservationStore(t *testing.T, levels ...int) (*inventorydb.Store, []uuid.UUID) {
	t.Helper()
	s := inventorydb.New(pgtest.Open(t, inventorydb.Migrations()))
	ids := make([]uuid.UUID, len(levels))
	for i, n := range levels {
		ids[i] = uuid.Must(uuid.NewV7())
		if _, err := s.SetOnHand(context.Background(), ids[i], n, inventory.IfAbsent()); err != nil {
			t.Fatalf("stock product: %v", err)
		}
	}
	return s, ids
}

type level struct{ OnHand, Reserved int }

func stockLevel(t *testing.T, s *inventorydb.Store, id uuid.UUID) level {
	t.Helper()
	st, err := s.Get(context.Background(), id)
	if err != nil {
		t.Fatalf("get stock: %v", err)
	}
	return level{st.OnHand, st.Reserved}
}

func holdReq(t *testing.T, orderID uuid.UUID, ttl int, lines ...inventory.Line) inventory.HoldRequest {
	t.Helper()
	req, err := inventory.NewHoldRequest(orderID, lines, ttl)
	if err != nil {
		t.Fatalf("hold request: %v", err)
	}
	return req
}

func newID() uuid.UUID { return uuid.Must(uuid.NewV7()) }

// stockedLines returns n order lines of 2 units, each of a new product with
// 10 on hand.
func stockedLines(t *testing.T, s *inventorydb.Store, n int) []inventory.Line {
	t.Helper()
	lines := make([]inventory.Line, 0, n)
	for range n {
		id := newID()
		if _, err := s.SetOnHand(context.Background(), id, 10, inventory.IfAbsent()); err != nil {
			t.Fatal(err)
		}
		lines = append(lines, inventory.Line{ProductID: id, Quantity: 2})
	}
	return lines
}

func TestReserveNeverOversells(t *testing.T) {
	s, ids := reservationStore(t, 10)
	ctx := context.Background()
	var wg sync.WaitGroup
	var mu sync.Mutex
	held, out, other := 0, 0, 0
	for range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := s.Reserve(ctx, holdReq(t, newID(), 0, inventory.Line{ProductID: ids[0], Quantity: 1}))
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				held++
			case fault.Is(err, fault.Conflict, "out_of_stock"):
				out++
			default:
				other++
				t.Errorf("reserve: %v", err)
			}
		}()
	}
	wg.Wait()
	if held != 10 || out != 40 || other != 0 {
		t.Errorf("held %d, out_of_stock %d, other %d; want 10, 40, 0", held, out, other)
	}
	if diff := cmp.Diff(level{10, 10}, stockLevel(t, s, ids[0])); diff != "" {
		t.Errorf("stock (-want +got):\n%s", diff)
	}
}

// Orders of several lines over the same products, listed in any order,
// reserved, committed and released concurrently: no deadlock (each statement
// locks its stock rows in product order), no oversell, a refused hold leaves
// nothing, and the stock adds up.
func TestConcurrentMultiLineHoldsNeverDeadlockOrOversell(t *testing.T) {
	s, ids := reservationStore(t, 40, 40, 40)
	ctx := context.Background()
	const workers, rounds = 8, 12
	var mu sync.Mutex
	committed := make([]int, len(ids))
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := range rounds {
				var lines []inventory.Line
				for k := range ids {
					i := (k + w + r) % len(ids) // every worker lists the products in another order
					lines = append(lines, inventory.Line{ProductID: ids[i], Quantity: 1 + (w+i)%3})
				}
				order := newID()
				req := holdReq(t, order, 0, lines...)
				req.Lines = lines // as the caller listed them, not sorted
				_, err := s.Reserve(ctx, req)
				if fault.Is(err, fault.Conflict, "out_of_stock") {
					if _, err := s.Hold(ctx, order); !fault.Is(err, fault.NotFound, "") {
						t.Errorf("a refused hold left a reservation: %v", err)
					}
					continue
				}
				if err != nil {
					t.Errorf("reserve: %v", err)
					return
				}
				if (w+r)%2 == 0 {
					if _, err := s.Release(ctx, order); err != nil {
						t.Errorf("release: %v", err)
					}
					continue
				}
				if _, err := s.Commit(ctx, order); err != nil {
					t.Errorf("commit: %v", err)
					continue
				}
				mu.Lock()
				for _, l := range lines {
					committed[slices.Index(ids, l.ProductID)] += l.Quantity
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	for i, id := range ids {
		if got, want := stockLevel(t, s, id), (level{40 - committed[i], 0}); got != want {
			t.Errorf("product %d: %+v, want %+v", i, got, want)
		}
	}
}

func TestReserveIsAllOrNothing(t *testing.T) {
	s, ids := reservationStore(t, 5, 1)
	ctx := context.Background()
	_, err := s.Reserve(ctx, holdReq(t, newID(), 0,
		inventory.Line{ProductID: ids[0], Quantity: 2}, inventory.Line{ProductID: ids[1], Quantity: 2}))
	if !fault.Is(err, fault.Conflict, "out_of_stock") {
		t.Fatalf("err = %v, want out_of_stock", err)
	}
	var fe *fault.Error
	if !errorsAs(err, &fe) || !contains(fe.Message, ids[1].String()) {
		t.Errorf("detail %q does not name the product", fe.Message)
	}
	for i, want := range []level{{5, 0}, {1, 0}} {
		if got := stockLevel(t, s, ids[i]); got != want {
			t.Errorf("product %d: %+v, want %+v", i, got, want)
		}
	}
	_, err = s.Reserve(ctx, holdReq(t, newID(), 0, inventory.Line{ProductID: newID(), Quantity: 1}))
	if !fault.Is(err, fault.Conflict, "out_of_stock") {
		t.Errorf("unknown product: err = %v, want out_of_stock", err)
	}
}

func TestReserveTwiceHoldsOnce(t *testing.T) {
	s, ids := reservationStore(t, 10)
	ctx := context.Background()
	order := newID()
	req := holdReq(t, order, 0, inventory.Line{ProductID: ids[0], Quantity: 3})
	var wg sync.WaitGroup
	for range 5 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			h, err := s.Reserve(ctx, req)
			if err != nil || h.Status != inventory.StatusHeld {
				t.Errorf("reserve: %v %v", h.Status, err)
			}
		}()
	}
	wg.Wait()
	if got := stockLevel(t, s, ids[0]); got != (level{10, 3}) {
		t.Errorf("stock %+v, want one hold of 3", got)
	}
	if _, err := s.Commit(ctx, order); err != nil {
		t.Fatal(err)
	}
	h, err := s.Reserve(ctx, req)
	if err != nil || h.Status != inventory.StatusCommitted {
		t.Errorf("reserve after commit: %v %v, want committed", h.Status, err)
	}
	if got := stockLevel(t, s, ids[0]); got != (level{7, 0}) {
		t.Errorf("stock %+v, want {7 0}", got)
	}
}

func TestCommitThenReleaseRestocks(t *testing.T) {
	s, ids := reservationStore(t, 10, 4)
	ctx := context.Background()
	order := newID()
	if _, err := s.Reserve(ctx, holdReq(t, order, 0,
		inventory.Line{ProductID: ids[0], Quantity: 3}, inventory.Line{ProductID: ids[1], Quantity: 4})); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		h, err := s.Commit(ctx, order)
		if err != nil || h.Status != inventory.StatusCommitted {
			t.Fatalf("commit: %v %v", h.Status, err)
		}
	}
	if got := []level{stockLevel(t, s, ids[0]), stockLevel(t, s, ids[1])}; !cmp.Equal(got, []level{{7, 0}, {0, 0}}) {
		t.Errorf("after commit %+v", got)
	}
	for range 2 {
		h, err := s.Release(ctx, order)
		if err != nil || h.Status != inventory.StatusRestocked {
			t.Fatalf("release: %v %v", h.Status, err)
		}
	}
	if got := []level{stockLevel(t, s, ids[0]), stockLevel(t, s, ids[1])}; !cmp.Equal(got, []level{{10, 0}, {4, 0}}) {
		t.Errorf("after restock %+v", got)
	}
	if _, err := s.Commit(ctx, order); !fault.Is(err, fault.Conflict, "reservation_released") {
		t.Errorf("commit after restock: %v", err)
	}
}

func TestReleaseTwiceHasOneEffect(t *testing.T) {
	s, ids := reservationStore(t, 10)
	ctx := context.Background()
	order := newID()
	if _, err := s.Reserve(ctx, holdReq(t, order, 0, inventory.Line{ProductID: ids[0], Quantity: 6})); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if h, err := s.Release(ctx, order); err != nil || h.Status != inventory.StatusReleased {
				t.Errorf("release: %v %v", h.Status, err)
			}
		}()
	}
	wg.Wait()
	if got := stockLevel(t, s, ids[0]); got != (level{10, 0}) {
		t.Errorf("stock %+v, want {10 0}", got)
	}
	if _, err := s.Reserve(ctx, holdReq(t, order, 0, inventory.Line{ProductID: ids[0], Quantity: 6})); !fault.Is(err, fault.Conflict, "reservation_released") {
		t.Errorf("reserve after release: %v", err)
	}
	h, err := s.Release(ctx, newID())
	if err != nil || h.Status != inventory.StatusNone {
		t.Errorf("release unknown: %v %v", h.Status, err)
	}
	if _, err := s.Commit(ctx, newID()); !fault.Is(err, fault.NotFound, "not_found") {
		t.Errorf("commit unknown: %v", err)
	}
}

func TestExpireReleasesEachHoldOnce(t *testing.T) {
	s, ids := reservationStore(t, 100)
	ctx := context.Background()
	const orders = 30
	for range orders {
		if _, err := s.Reserve(ctx, holdReq(t, newID(), 30, inventory.Line{ProductID: ids[0], Quantity: 2})); err != nil {
			t.Fatal(err)
		}
	}
	live := newID()
	if _, err := s.Reserve(ctx, holdReq(t, live, 3600, inventory.Line{ProductID: ids[0], Quantity: 1})); err != nil {
		t.Fatal(err)
	}
	if n, err := s.Expire(ctx, time.Time{}, 0); err != nil || n != 0 {
		t.Fatalf("nothing is due yet: %d %v", n, err)
	}
	asOf := time.Now().Add(time.Minute)
	var wg sync.WaitGroup
	var mu sync.Mutex
	total := 0
	for range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				n, err := s.Expire(ctx, asOf, 7)
				if err != nil {
					t.Errorf("expire: %v", err)
					return
				}
				mu.Lock()
				total += n
				mu.Unlock()
				if n == 0 {
					return
				}
			}
		}()
	}
	wg.Wait()
	if total != orders {
		t.Errorf("expired %d holds, want %d", total, orders)
	}
	if got := stockLevel(t, s, ids[0]); got != (level{100, 1}) {
		t.Errorf("stock %+v, want only the live hold reserved", got)
	}
	if h, err := s.Hold(ctx, live); err != nil || h.Status != inventory.StatusHeld {
		t.Errorf("live hold: %v %v", h.Status, err)
	}
}

func TestCommitAfterExpiry(t *testing.T) {
	s, ids := reservationStore(t, 5)
	ctx := context.Background()
	retaken, lost := newID(), newID()
	for _, o := range []uuid.UUID{retaken, lost} {
		if _, err := s.Reserve(ctx, holdReq(t, o, 30, inventory.Line{ProductID: ids[0], Quantity: 2})); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := s.Expire(ctx, time.Now().Add(time.Minute), 0); err != nil || n != 2 {
		t.Fatalf("expire: %d %v", n, err)
	}
	h, err := s.Commit(ctx, retaken)
	if err != nil || h.Status != inventory.StatusCommitted {
		t.Fatalf("commit after expiry: %v %v", h.Status, err)
	}
	if got := stockLevel(t, s, ids[0]); got != (level{3, 0}) {
		t.Errorf("stock %+v, want {3 0}", got)
	}
	// Someone else takes the rest; the other expired order cannot be committed.
	if _, err := s.Reserve(ctx, holdReq(t, newID(), 0, inventory.Line{ProductID: ids[0], Quantity: 2})); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Commit(ctx, lost); !fault.Is(err, fault.Conflict, "out_of_stock") {
		t.Errorf("commit with stock gone: %v, want out_of_stock", err)
	}
	if got := stockLevel(t, s, ids[0]); got != (level{3, 2}) {
		t.Errorf("stock %+v, want {3 2}", got)
	}
	if h, err := s.Hold(ctx, lost); err != nil || h.Status != inventory.StatusExpired {
		t.Errorf("lost order: %v %v, want still expired", h.Status, err)
	}
}

// A released hold is final: its order failed or was cancelled, or was never
// written. A late or replayed commit of it is refused reservation_released and
// takes nothing (until 2026-12-07 it took the stock again and sold it for a
// dead order); only an expired hold is taken again (TestCommitAfterExpiry).
func TestACommitNeverRetakesAReleasedHold(t *testing.T) {
	s, ids := reservationStore(t, 5)
	ctx := context.Background()
	order := newID()
	if _, err := s.Reserve(ctx, holdReq(t, order, 0, inventory.Line{ProductID: ids[0], Quantity: 2})); err != nil {
		t.Fatal(err)
	}
	if h, err := s.Release(ctx, order); err != nil || h.Status != inventory.StatusReleased {
		t.Fatalf("release: %v %v", h.Status, err)
	}
	for range 2 {
		if h, err := s.Commit(ctx, order); !fault.Is(err, fault.Conflict, "reservation_released") {
			t.Errorf("commit of a released hold: %v %v, want reservation_released", h.Status, err)
		}
	}
	if got := stockLevel(t, s, ids[0]); got != (level{5, 0}) {
		t.Errorf("stock %+v, want {5 0}: nothing taken", got)
	}
	if h, err := s.Hold(ctx, order); err != nil || h.Status != inventory.StatusReleased {
		t.Errorf("hold: %v %v, want still released", h.Status, err)
	}
}

// The release of an expired hold is final too: the saga releases only for an
// order that ended (or was never written), so a commit that lands after it —
// a recovery run that lost its claim and has not noticed yet, or a try of an
// earlier run still in flight — must not take the stock again and sell it for
// that order (until 2026-12-08 the release left the hold expired, and such a
// commit re-took it). The units went back when the hold expired: the release
// moves no stock.
func TestAReleasedExpiredHoldIsNeverTakenAgain(t *testing.T) {
	s, ids := reservationStore(t, 5)
	ctx := context.Background()
	order := newID()
	if _, err := s.Reserve(ctx, holdReq(t, order, 30, inventory.Line{ProductID: ids[0], Quantity: 2})); err != nil {
		t.Fatal(err)
	}
	if n, err := s.Expire(ctx, time.Now().Add(time.Minute), 0); err != nil || n != 1 {
		t.Fatalf("expire: %d %v", n, err)
	}
	for range 2 {
		if h, err := s.Release(ctx, order); err != nil || h.Status != inventory.StatusReleased {
			t.Errorf("release of an expired hold: %v %v, want released", h.Status, err)
		}
	}
	if got := stockLevel(t, s, ids[0]); got != (level{5, 0}) {
		t.Errorf("stock after release %+v, want {5 0}", got)
	}
	if h, err := s.Commit(ctx, order); !fault.Is(err, fault.Conflict, "reservation_released") {
		t.Errorf("commit after the release of an expired hold: %v %v, want reservation_released", h.Status, err)
	}
	if _, err := s.Reserve(ctx, holdReq(t, order, 0, inventory.Line{ProductID: ids[0], Quantity: 2})); !fault.Is(err, fault.Conflict, "reservation_released") {
		t.Errorf("reserve after the release: %v, want reservation_released", err)
	}
	if got := stockLevel(t, s, ids[0]); got != (level{5, 0}) {
		t.Errorf("stock %+v, want {5 0}: nothing taken for the ended order", got)
	}
}

func TestNewHoldRequestRefusesBadInput(t *testing.T) {
	p := newID()
	cases := map[string]struct {
		order uuid.UUID
		lines []inventory.Line
		ttl   int
	}{
		"no order":       {uuid.Nil, []inventory.Line{{ProductID: p, Quantity: 1}}, 0},
		"empty lines":    {newID(), nil, 0},
		"zero quantity":  {newID(), []inventory.Line{{ProductID: p, Quantity: 0}}, 0},
		"too many units": {newID(), []inventory.Line{{ProductID: p, Quantity: 1001}}, 0},
		"duplicate line": {newID(), []inventory.Line{{ProductID: p, Quantity: 1}, {ProductID: p, Quantity: 2}}, 0},
		"ttl too short":  {newID(), []inventory.Line{{ProductID: p, Quantity: 1}}, 29},
		"ttl too long":   {newID(), []inventory.Line{{ProductID: p, Quantity: 1}}, 3601},
		"nil product":    {newID(), []inventory.Line{{ProductID: uuid.Nil, Quantity: 1}}, 0},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			if _, err := inventory.NewHoldRequest(c.order, c.lines, c.ttl); !fault.Is(err, fault.Invalid, "invalid_request") {
				t.Errorf("err = %v, want invalid_request", err)
			}
		})
	}
}

func errorsAs(err error, target **fault.Error) bool { return errors.As(err, target) }

func contains(s, sub string) bool { return strings.Contains(s, sub) }

// A release of an order that reserved nothing answers none and leaves a void
// reservation: the order's first reservation try, still on its way when its
// checkout ended, is refused when it lands (reservation_released) and holds
// nothing. Until 2026-12-05 it held its units for nobody until the sweep.
func TestAReservationLandingAfterItsReleaseHoldsNothing(t *testing.T) {
	ctx := context.Background()
	s, ids := reservationStore(t, 10)
	order := newID()
	for range 2 { // released twice: none both times
		if h, err := s.Release(ctx, order); err != nil || h.Status != inventory.StatusNone {
			t.Fatalf("release of an order that reserved nothing: %v %v; want none", h.Status, err)
		}
	}
	_, err := s.Reserve(ctx, holdReq(t, order, 0, inventory.Line{ProductID: ids[0], Quantity: 4}))
	if !fault.Is(err, fault.Conflict, "reservation_released") {
		t.Fatalf("the late reservation: %v; want reservation_released", err)
	}
	if got := stockLevel(t, s, ids[0]); got != (level{10, 0}) {
		t.Errorf("stock %+v after the late reservation, want {10 0}: it holds nothing", got)
	}
	if _, err := s.Commit(ctx, order); !fault.Is(err, fault.NotFound, "not_found") {
		t.Errorf("commit of the void reservation: %v; want not_found", err)
	}
}

// A release that finds no reservation while one is being written waits for
// it (the void's insert waits on the key) and releases it once it commits.
func TestAReleaseRacingAReservationReleasesIt(t *testing.T) {
	ctx := context.Background()
	pool := pgtest.Open(t, inventorydb.Migrations())
	s := inventorydb.New(pool)
	product := newID()
	if _, err := s.SetOnHand(ctx, product, 10, inventory.IfAbsent()); err != nil {
		t.Fatal(err)
	}
	order := newID()
	// The reservation in flight: written, not committed yet.
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck
	var holder int
	if err := tx.QueryRow(ctx, `SELECT pg_backend_pid()`).Scan(&holder); err != nil {
		t.Fatal(err)
	}
	for _, w := range []struct {
		sql  string
		args []any
	}{
		{`INSERT INTO reservations (order_id, status, expires_at) VALUES ($1, 'held', now() + interval '1 hour')`, []any{order}},
		{`UPDATE stock SET reserved = reserved + 4 WHERE product_id = $1`, []any{product}},
		{`INSERT INTO reservation_lines (order_id, product_id, quantity) VALUES ($1, $2, 4)`, []any{order, product}},
	} {
		if _, err := tx.Exec(ctx, w.sql, w.args...); err != nil {
			t.Fatal(err)
		}
	}
	released := make(chan inventory.Hold, 1)
	go func() {
		h, err := s.Release(ctx, order)
		if err != nil {
			t.Error(err)
		}
		released <- h
	}()
	deadline := time.Now().Add(5 * time.Second)
	for waiting := 0; waiting == 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the release never waited for the reservation in flight")
		}
		if err := pool.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE $1 = ANY (pg_blocking_pids(pid))`,
			holder).Scan(&waiting); err != nil {
			t.Fatal(err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if h := <-released; h.Status != inventory.StatusReleased {
		t.Errorf("release: %v; want the reservation written meanwhile released", h.Status)
	}
	if got := stockLevel(t, s, product); got != (level{10, 0}) {
		t.Errorf("stock %+v, want {10 0}", got)
	}
}

// A reservation refused for a line it cannot hold waits for no lock of
// that line: its conditional UPDATE matched no row and locked nothing, and
// nothing of it may wait on that row afterwards while it holds the rows of
// its later lines. Until 2026-12-07 the lines' INSERT rode in the batch of
// the UPDATEs and ran after a refusal too, and its foreign-key check (FOR KEY
// SHARE) on the refused product waited: here for set-stock's lock of that
// row (FOR UPDATE, while it decides), every checkout of the later product
// queued behind the refusal meanwhile; and, seen in a storm of reserves,
// commits, releases, settlements and set-stocks on three products, for the
// sweep moving the refused product's row, which moves the later product next
// (product order): a deadlock, the refusal answered 503 instead of 409
// out_of_stock or the sweep's batch rolled back. Now the lines are inserted
// only once every line is held, with the COMMIT.
func TestARefusedReservationWaitsForNoLockOfItsRefusedLine(t *testing.T) {
	ctx := context.Background()
	pool := pgtest.Open(t, inventorydb.Migrations())
	s := inventorydb.New(pool)
	ids := []uuid.UUID{newID(), newID()}
	slices.SortFunc(ids, func(a, b uuid.UUID) int { return strings.Compare(string(a[:]), string(b[:])) })
	soldOut, inStock := ids[0], ids[1] // in lock order
	for id, n := range map[uuid.UUID]int{soldOut: 0, inStock: 5} {
		if _, err := s.SetOnHand(ctx, id, n, inventory.IfAbsent()); err != nil {
			t.Fatal(err)
		}
	}
	// set-stock deciding on the sold-out product: its row locked.
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck
	if _, err := tx.Exec(ctx, `SELECT 1 FROM stock WHERE product_id = $1 FOR UPDATE`, soldOut); err != nil {
		t.Fatal(err)
	}
	reserved := make(chan error, 1)
	go func() {
		_, err := s.Reserve(ctx, holdReq(t, newID(), 0,
			inventory.Line{ProductID: soldOut, Quantity: 1}, inventory.Line{ProductID: inStock, Quantity: 1}))
		reserved <- err
	}()
	select {
	case err := <-reserved:
		if !fault.Is(err, fault.Conflict, fault.CodeOutOfStock) {
			t.Errorf("reserve: %v, want out_of_stock", err)
		}
	case <-time.After(5 * time.Second):
		_ = tx.Rollback(ctx)
		t.Fatalf("the refused reservation still waited after 5 s for the lock of the product it was refused (then answered %v)", <-reserved)
	}
	if got := stockLevel(t, s, inStock); got != (level{5, 0}) {
		t.Errorf("stock %+v, want {5 0}: the refusal holds nothing", got)
	}
}
