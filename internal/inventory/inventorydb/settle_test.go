package inventorydb_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/shopfaas/shop/internal/events"
	"github.com/shopfaas/shop/internal/fault"
	"github.com/shopfaas/shop/internal/inventory"
	"github.com/shopfaas/shop/internal/inventory/inventorydb"
	"github.com/shopfaas/shop/internal/postgres/pgtest"
)

// orderBook is a fake orders service: the statuses order-statuses would
// answer, counting the calls and the ids asked about.
type orderBook struct {
	mu     sync.Mutex
	status map[uuid.UUID]inventory.OrderStatus
	calls  int
	asked  int
	err    error
}

func (b *orderBook) set(id uuid.UUID, st inventory.OrderStatus) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.status == nil {
		b.status = map[uuid.UUID]inventory.OrderStatus{}
	}
	b.status[id] = st
}

func (b *orderBook) lookup(_ context.Context, ids []uuid.UUID) (map[uuid.UUID]inventory.OrderStatus, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.calls++
	b.asked += len(ids)
	if b.err != nil {
		return nil, b.err
	}
	out := map[uuid.UUID]inventory.OrderStatus{}
	for _, id := range ids {
		if st, ok := b.status[id]; ok {
			out[id] = st
		}
	}
	return out, nil
}

func settleStore(t *testing.T, levels ...int) (*inventorydb.Store, *pgxpool.Pool, []uuid.UUID) {
	t.Helper()
	pool := pgtest.Open(t, inventorydb.Migrations())
	s := inventorydb.New(pool)
	ids := make([]uuid.UUID, len(levels))
	for i, n := range levels {
		ids[i] = newID()
		if _, err := s.SetOnHand(context.Background(), ids[i], n, inventory.IfAbsent()); err != nil {
			t.Fatal(err)
		}
	}
	return s, pool, ids
}

// oneHold reserves quantity units of product for a new order, which the
// returned book says is in status.
func oneHold(t *testing.T, s *inventorydb.Store, product uuid.UUID, quantity int, status inventory.OrderStatus) (uuid.UUID, *orderBook) {
	t.Helper()
	order := newID()
	if _, err := s.Reserve(context.Background(), holdReq(t, order, 0, inventory.Line{ProductID: product, Quantity: quantity})); err != nil {
		t.Fatal(err)
	}
	book := &orderBook{}
	book.set(order, status)
	return order, book
}

func holdStatus(t *testing.T, s *inventorydb.Store, order uuid.UUID) inventory.HoldStatus {
	t.Helper()
	h, err := s.Hold(context.Background(), order)
	if err != nil {
		t.Fatal(err)
	}
	return h.Status
}

// settleAll runs batches of limit until one scans less than limit, and sums
// them.
func settleAll(t *testing.T, s *inventorydb.Store, after time.Duration, limit int, lookup inventorydb.Statuses) inventory.Settlement {
	t.Helper()
	var sum inventory.Settlement
	cur := inventory.SettleCursor{}
	for {
		r, err := s.Settle(context.Background(), cur, after, limit, lookup)
		if err != nil {
			t.Fatalf("settle: %v", err)
		}
		sum.Scanned += r.Scanned
		sum.Settled += r.Settled
		sum.Released += r.Released
		sum.Expired += r.Expired
		if r.Scanned < limit {
			return sum
		}
		cur = r.Next
	}
}

// TestSettleFollowsTheOrderStatus: the sweep sells the holds of confirmed
// orders (no stock event: available is unchanged), releases those of failed
// and cancelled ones, keeps those of pending ones, gives back an unknown
// order's hold only past its expires_at, and leaves holds younger than the
// settle delay alone. The holds took every unit, so what it gives back brings
// the product back in stock: one stock.changed.v1, and no other event (the
// expiry wrote stock.reservations_expired.v1 until 2026-12-03, which no
// function subscribed to: each waited in shop.unrouted; docs/events.md).
func TestSettleFollowsTheOrderStatus(t *testing.T) {
	s, pool, ids := settleStore(t, 14)
	ctx := context.Background()
	p := ids[0]
	book := &orderBook{}
	named := map[string]uuid.UUID{}
	for _, name := range []string{"confirmed", "failed", "cancelled", "pending", "unknown-fresh", "unknown-past", "young"} {
		id := newID()
		named[name] = id
		if _, err := s.Reserve(ctx, holdReq(t, id, 0, inventory.Line{ProductID: p, Quantity: 2})); err != nil {
			t.Fatal(err)
		}
	}
	book.set(named["confirmed"], inventory.OrderConfirmed)
	book.set(named["failed"], inventory.OrderPaymentFailed)
	book.set(named["cancelled"], inventory.OrderCancelled)
	book.set(named["pending"], inventory.OrderPending)
	book.set(named["young"], inventory.OrderConfirmed)
	// Every hold but the young one was taken a minute ago; the unknown
	// order's past one is also past its expiry.
	if _, err := pool.Exec(ctx, `UPDATE reservations SET created_at = now() - interval '1 minute' WHERE order_id <> $1`, named["young"]); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `UPDATE reservations SET expires_at = now() - interval '1 second' WHERE order_id = $1`, named["unknown-past"]); err != nil {
		t.Fatal(err)
	}
	before := outboxCounts(t, pool)
	got := settleAll(t, s, 30*time.Second, 500, book.lookup)
	if book.calls != 1 || book.asked != 6 {
		t.Errorf("orders asked %d times about %d orders, want once about 6 (the young hold is not due)", book.calls, book.asked)
	}
	if want := (inventory.Settlement{Scanned: 6, Settled: 1, Released: 2, Expired: 1}); got != want {
		t.Errorf("settlement %+v, want %+v", got, want)
	}
	want := map[string]inventory.HoldStatus{
		"confirmed": inventory.StatusCommitted, "failed": inventory.StatusReleased, "cancelled": inventory.StatusReleased,
		"pending": inventory.StatusHeld, "unknown-fresh": inventory.StatusHeld, "unknown-past": inventory.StatusExpired,
		"young": inventory.StatusHeld,
	}
	for name, st := range want {
		if h := holdStatus(t, s, named[name]); h != st {
			t.Errorf("%s order's hold: %s, want %s", name, h, st)
		}
	}
	// 14 reserved; 2 sold, 6 given back: 6 left reserved (pending,
	// unknown-fresh, young), 12 on hand.
	if l := stockLevel(t, s, p); l != (level{12, 6}) {
		t.Errorf("stock %+v, want {12 6}", l)
	}
	if diff := cmp.Diff(map[string]int{events.StockChanged: 1}, sub(outboxCounts(t, pool), before)); diff != "" {
		t.Errorf("events of the settlement (-want +got):\n%s", diff)
	}
	if got := lastAvailable(t, pool, p); got != 6 {
		t.Errorf("stock.changed.v1 says available %d, want 6", got)
	}
	// A second run finds only the kept holds and changes nothing.
	book.set(named["pending"], inventory.OrderConfirmed)
	if got := settleAll(t, s, 30*time.Second, 500, book.lookup); got != (inventory.Settlement{Scanned: 2, Settled: 1}) {
		t.Errorf("second run %+v, want the pending order, now confirmed, sold", got)
	}
	if l := stockLevel(t, s, p); l != (level{10, 4}) {
		t.Errorf("stock %+v, want {10 4}", l)
	}
}

// TestSettleReleaseThatKeepsTheProductInStockWritesNoEvent: the sweep gives
// back a failed order's hold of a product that stays in stock: available
// rises, but the in-stock flag, all stock.changed.v1 tells (docs/events.md),
// does not change, so no event is written. Until item 31 every release wrote
// one.
func TestSettleReleaseThatKeepsTheProductInStockWritesNoEvent(t *testing.T) {
	s, pool, ids := settleStore(t, 10)
	_, book := oneHold(t, s, ids[0], 4, inventory.OrderPaymentFailed)
	before := outboxCounts(t, pool)
	if got := settleAll(t, s, 0, 10, book.lookup); got != (inventory.Settlement{Scanned: 1, Released: 1}) {
		t.Fatalf("settlement %+v, want the failed order's hold released", got)
	}
	if l := stockLevel(t, s, ids[0]); l != (level{10, 0}) {
		t.Errorf("stock %+v, want {10 0}", l)
	}
	if diff := cmp.Diff(map[string]int{}, sub(outboxCounts(t, pool), before)); diff != "" {
		t.Errorf("events of a release that leaves the product in stock (-want +got):\n%s", diff)
	}
}

// TestSettleChangesNothingWhenOrdersFails: without the orders' statuses no
// hold is sold or given back, not even one past its expiry.
func TestSettleChangesNothingWhenOrdersFails(t *testing.T) {
	s, pool, ids := settleStore(t, 10)
	ctx := context.Background()
	order := newID()
	if _, err := s.Reserve(ctx, holdReq(t, order, 0, inventory.Line{ProductID: ids[0], Quantity: 3})); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `UPDATE reservations SET created_at = now() - interval '1 hour', expires_at = now() - interval '1 minute'`); err != nil {
		t.Fatal(err)
	}
	book := &orderBook{err: fault.E(fault.Unavailable, fault.CodeUnavailable, "order-statuses is unavailable")}
	before := outboxCounts(t, pool)
	r, err := s.Settle(ctx, inventory.SettleCursor{}, 0, 10, book.lookup)
	if !errors.Is(err, book.err) || r.Settled+r.Released+r.Expired != 0 {
		t.Fatalf("settle with orders down: %+v %v", r, err)
	}
	if h := holdStatus(t, s, order); h != inventory.StatusHeld {
		t.Errorf("hold %s, want held", h)
	}
	if l := stockLevel(t, s, ids[0]); l != (level{10, 3}) {
		t.Errorf("stock %+v, want {10 3}", l)
	}
	if diff := cmp.Diff(map[string]int{}, sub(outboxCounts(t, pool), before)); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
}

// TestConcurrentSettlementsSettleEachHoldOnce: sweeps running at once, in
// small batches, over holds of confirmed and failed orders on several
// products, sell or give back each hold exactly once, and deadlock with
// neither each other nor the checkouts reserving meanwhile.
func TestConcurrentSettlementsSettleEachHoldOnce(t *testing.T) {
	s, _, ids := settleStore(t, 1000, 1000, 1000)
	ctx := context.Background()
	book := &orderBook{}
	const orders = 60
	for i := range orders {
		id := newID()
		lines := []inventory.Line{{ProductID: ids[i%3], Quantity: 1}, {ProductID: ids[(i+1)%3], Quantity: 2}}
		if _, err := s.Reserve(ctx, holdReq(t, id, 0, lines...)); err != nil {
			t.Fatal(err)
		}
		if i%3 == 0 {
			book.set(id, inventory.OrderPaymentFailed)
		} else {
			book.set(id, inventory.OrderConfirmed)
		}
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var total inventory.Settlement
	for range 4 {
		wg.Go(func() {
			r := settleAll(t, s, 0, 7, book.lookup)
			mu.Lock()
			defer mu.Unlock()
			total.Settled += r.Settled
			total.Released += r.Released
			total.Expired += r.Expired
		})
	}
	wg.Go(func() { // checkouts go on, reserving the same products in another order
		for range 20 {
			lines := []inventory.Line{{ProductID: ids[2], Quantity: 1}, {ProductID: ids[0], Quantity: 1}}
			if _, err := s.Reserve(ctx, holdReq(t, newID(), 0, lines...)); err != nil {
				t.Errorf("reserve: %v", err)
				return
			}
		}
	})
	wg.Wait()
	// Sweeps that skipped a locked hold leave it to the next run.
	r := settleAll(t, s, 0, 500, book.lookup)
	total.Settled += r.Settled
	total.Released += r.Released
	if total.Settled != 40 || total.Released != 20 || total.Expired != 0 {
		t.Fatalf("settled %d released %d expired %d, want 40 20 0", total.Settled, total.Released, total.Expired)
	}
	// Order i holds 1 unit of product i%3 and 2 of product (i+1)%3; every
	// third order (i%3 == 0) failed. Sold: product 0, 2 units of 20 orders
	// (i%3 == 2); product 1, 1 unit of 20 (i%3 == 1); product 2, 1 unit of
	// 20 (i%3 == 2) and 2 of 20 (i%3 == 1). The 20 checkouts hold 1 unit
	// each of products 0 and 2 (unknown to orders, not past their expiry).
	want := []level{{960, 20}, {980, 0}, {940, 20}}
	for i, p := range ids {
		if l := stockLevel(t, s, p); l != want[i] {
			t.Errorf("product %d: stock %+v, want %+v", i, l, want[i])
		}
	}
}

// TestCancelBeforeSettlementReleasesAndIsNeverSold: an order confirmed, then
// cancelled before the sweep sold its hold: release-stock gives the units
// back (reserved drops, on_hand stays), and the sweep, told the order is
// confirmed by a lookup made before the cancel, does not sell it. The hold
// took every unit, so the release writes the one stock.changed.v1 that says
// the product is back.
func TestCancelBeforeSettlementReleasesAndIsNeverSold(t *testing.T) {
	s, pool, ids := settleStore(t, 10)
	ctx := context.Background()
	order, book := oneHold(t, s, ids[0], 10, inventory.OrderConfirmed)
	// The sweep asks orders (confirmed), then the cancel's release runs
	// before the sweep's transaction.
	lookup := func(ctx context.Context, ids []uuid.UUID) (map[uuid.UUID]inventory.OrderStatus, error) {
		got, err := book.lookup(ctx, ids)
		if h, rerr := s.Release(ctx, order); rerr != nil || h.Status != inventory.StatusReleased {
			t.Errorf("release of the confirmed order's hold: %v %v, want released", h.Status, rerr)
		}
		return got, err
	}
	before := outboxCounts(t, pool)
	r, err := s.Settle(ctx, inventory.SettleCursor{}, 0, 10, lookup)
	if err != nil || r.Settled != 0 || r.Released != 0 {
		t.Fatalf("settle: %+v %v, want nothing settled", r, err)
	}
	if l := stockLevel(t, s, ids[0]); l != (level{10, 0}) {
		t.Errorf("stock %+v, want {10 0}: the units back, none sold", l)
	}
	if h := holdStatus(t, s, order); h != inventory.StatusReleased {
		t.Errorf("hold %s, want released", h)
	}
	if diff := cmp.Diff(map[string]int{events.StockChanged: 1}, sub(outboxCounts(t, pool), before)); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
	// A later sweep does not see it at all.
	if r := settleAll(t, s, 0, 10, book.lookup); r != (inventory.Settlement{}) {
		t.Errorf("later sweep %+v, want nothing", r)
	}
}

// A hold whose expiry passes while the sweep asks the orders service about
// it is kept: its order, unknown at the look-up, may commit right after, and
// its saga then takes the hold as its own. Before, "past its expiry" was
// decided at the lock's time, after the look-up, and the sweep expired the
// hold of an order its saga went on to confirm: the units were sold twice.
func TestAHoldExpiringDuringTheLookUpIsKept(t *testing.T) {
	s, pool, ids := settleStore(t, 5)
	order, _ := oneHold(t, s, ids[0], 2, inventory.OrderPending)
	lookup := func(ctx context.Context, asked []uuid.UUID) (map[uuid.UUID]inventory.OrderStatus, error) {
		// The expiry passes during the look-up, and the order is not
		// committed yet.
		if _, err := pool.Exec(ctx, `UPDATE reservations SET expires_at = now() WHERE order_id = $1`, order); err != nil {
			return nil, err
		}
		return map[uuid.UUID]inventory.OrderStatus{}, nil
	}
	if got := settleAll(t, s, 0, 10, lookup); got.Expired != 0 {
		t.Errorf("the sweep expired %d hold(s) whose expiry passed during its look-up, want 0", got.Expired)
	}
	if st := holdStatus(t, s, order); st != inventory.StatusHeld {
		t.Errorf("hold is %s, want held", st)
	}
	// Unknown at the next sweep, and past its expiry before it: expired.
	if got := settleAll(t, s, 0, 10, (&orderBook{}).lookup); got.Expired != 1 {
		t.Errorf("the next sweep expired %d hold(s), want 1", got.Expired)
	}
}
