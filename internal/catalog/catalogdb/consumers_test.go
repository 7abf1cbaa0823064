package catalogdb_test

import (
	"context"
	"errors"
	"io/fs"
	"slices"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/google/uuid"

	"github.com/shopfaas/shop/internal/catalog"
	"github.com/shopfaas/shop/internal/catalog/catalogdb"
	"github.com/shopfaas/shop/internal/fault"
	"github.com/shopfaas/shop/internal/inbox"
	"github.com/shopfaas/shop/internal/postgres"
	"github.com/shopfaas/shop/internal/postgres/pgtest"
)

// The consumers' processed events (internal/inbox), with the index the
// relay's cleanup needs.
func TestMigrationHasInbox(t *testing.T) {
	for file, want := range map[string]string{
		"0002_inbox.sql":                   inbox.Schema,
		"0006_processed_events_by_age.sql": inbox.PruneIndex,
		"0011_inbox_retentions.sql":        inbox.RetentionSchema,
		"0012_inbox_retention_raises.sql":  inbox.RetentionRaiseSchema,
		"0013_inbox_retentions_finite.sql": inbox.RetentionFiniteSchema,
	} {
		b, err := fs.ReadFile(catalogdb.Migrations(), file)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(b), want) {
			t.Errorf("%s does not include %q verbatim", file, want)
		}
	}
}

func TestAddSoldOncePerEvent(t *testing.T) {
	ctx := context.Background()
	s := catalogdb.New(pgtest.Open(t, catalogdb.Migrations()))
	a, b := create(t, s, "A-1"), create(t, s, "B-1")
	order := uuid.Must(uuid.NewV7())
	placed, _ := uuid.NewV7()
	deltas := []catalog.SoldDelta{{ProductID: a.ID, Delta: 2}, {ProductID: b.ID, Delta: 1}, {ProductID: a.ID, Delta: 1}, {ProductID: uuid.New(), Delta: 5}}
	got, first, err := s.AddSold(ctx, placed, "stats", order, false, deltas)
	if err != nil || !first || len(got) != 2 {
		t.Fatalf("AddSold: %d products, first %v, %v", len(got), first, err)
	}
	if got, first, err = s.AddSold(ctx, placed, "stats", order, false, deltas); err != nil || first || len(got) != 0 {
		t.Errorf("duplicate: %d products, first %v, %v", len(got), first, err)
	}
	pa, _ := s.Get(ctx, a.ID)
	if pa.SoldCount != 3 {
		t.Errorf("sold %d, want 3", pa.SoldCount)
	}
	cancelled, _ := uuid.NewV7()
	if _, _, err := s.AddSold(ctx, cancelled, "stats", order, true, []catalog.SoldDelta{{ProductID: a.ID, Delta: -3}, {ProductID: b.ID, Delta: -1}}); err != nil {
		t.Fatal(err)
	}
	if pa, _ = s.Get(ctx, a.ID); pa.SoldCount != 0 {
		t.Errorf("sold %d after the cancellation, want 0", pa.SoldCount)
	}
	// A second cancellation event of the same order (another event id)
	// subtracts nothing more.
	b2 := create(t, s, "C-1")
	other := uuid.Must(uuid.NewV7())
	if _, _, err := s.AddSold(ctx, uuid.Must(uuid.NewV7()), "stats", other, false, []catalog.SoldDelta{{ProductID: b2.ID, Delta: 4}}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.AddSold(ctx, uuid.Must(uuid.NewV7()), "stats", order, true, []catalog.SoldDelta{{ProductID: b2.ID, Delta: -4}}); err != nil {
		t.Fatal(err)
	}
	if pb2, _ := s.Get(ctx, b2.ID); pb2.SoldCount != 4 {
		t.Errorf("sold %d: a repeated cancellation subtracted again", pb2.SoldCount)
	}
}

// A cancellation delivered before its placement makes the late placement count
// nothing: sold_count ends where it started.
func TestAddSoldCancellationFirst(t *testing.T) {
	ctx := context.Background()
	s := catalogdb.New(pgtest.Open(t, catalogdb.Migrations()))
	a := create(t, s, "A-1")
	order := uuid.Must(uuid.NewV7())
	if _, _, err := s.AddSold(ctx, uuid.Must(uuid.NewV7()), "stats", order, true, []catalog.SoldDelta{{ProductID: a.ID, Delta: -2}}); err != nil {
		t.Fatal(err)
	}
	got, first, err := s.AddSold(ctx, uuid.Must(uuid.NewV7()), "stats", order, false, []catalog.SoldDelta{{ProductID: a.ID, Delta: 2}})
	if err != nil || !first || len(got) != 0 {
		t.Fatalf("late placement: %d products changed, first %v, %v", len(got), first, err)
	}
	if pa, _ := s.Get(ctx, a.ID); pa.SoldCount != 0 {
		t.Errorf("sold %d after cancel-then-place, want 0", pa.SoldCount)
	}
}

func TestSetAvailabilityOnce(t *testing.T) {
	ctx := context.Background()
	s := catalogdb.New(pgtest.Open(t, catalogdb.Migrations()))
	p := create(t, s, "A-1")
	ev, _ := uuid.NewV7()
	got, first, changed, err := s.SetAvailabilityOnce(ctx, ev, "index", p.ID, true, 5)
	if err != nil || !first || !changed || !got.InStock {
		t.Fatalf("first: %+v %v %v %v", got, first, changed, err)
	}
	if _, first, changed, err = s.SetAvailabilityOnce(ctx, ev, "index", p.ID, false, 6); err != nil || first || changed {
		t.Errorf("duplicate applied: %v %v %v", first, changed, err)
	}
	if cur, _ := s.Current(ctx, p.ID); !cur.InStock {
		t.Error("duplicate changed in_stock")
	}
	// An older stock event delivered late is claimed but changes nothing.
	late, _ := uuid.NewV7()
	if _, first, changed, err = s.SetAvailabilityOnce(ctx, late, "index", p.ID, false, 4); err != nil || !first || changed {
		t.Errorf("late event: first %v changed %v err %v", first, changed, err)
	}
	if cur, _ := s.Current(ctx, p.ID); !cur.InStock {
		t.Error("a late, older stock event overwrote in_stock")
	}
	// A newer one applies.
	newer, _ := uuid.NewV7()
	if got, _, changed, err = s.SetAvailabilityOnce(ctx, newer, "index", p.ID, false, 7); err != nil || !changed || got.InStock {
		t.Errorf("newer event: %+v changed %v err %v", got, changed, err)
	}
	other, _ := uuid.NewV7()
	if _, _, _, err := s.SetAvailabilityOnce(ctx, other, "index", uuid.New(), true, 1); !fault.Is(err, fault.NotFound, "") {
		t.Errorf("unknown product: %v", err)
	}
}

// PruneOrderSales deletes the sales settled (cancelled, or cancelled first)
// before the retention and keeps every placed sale, however old, and the
// younger settled ones: an old order cancelled after the prune still
// subtracts its sale. It reads only the rows it deletes, through the partial
// index of migration 0010, not the placed sales; on a database without the
// index (every service database but the catalog's, which the relay's cleanup
// visits too) it does nothing.
func TestPruneOrderSales(t *testing.T) {
	ctx := context.Background()
	pool := pgtest.Open(t, catalogdb.Migrations())
	s := catalogdb.New(pool)
	a := create(t, s, "A-1")
	sale := func(order uuid.UUID, cancelled bool, delta int64) {
		t.Helper()
		if _, _, err := s.AddSold(ctx, uuid.Must(uuid.NewV7()), "stats", order, cancelled, []catalog.SoldDelta{{ProductID: a.ID, Delta: delta}}); err != nil {
			t.Fatal(err)
		}
	}
	placedOld, cancelledOld, firstOld, cancelledYoung, firstYoung := uuid.New(), uuid.New(), uuid.New(), uuid.New(), uuid.New()
	for _, o := range []uuid.UUID{placedOld, cancelledOld, cancelledYoung} {
		sale(o, false, 1)
	}
	for _, o := range []uuid.UUID{cancelledOld, firstOld, cancelledYoung, firstYoung} {
		sale(o, true, -1)
	}
	if _, err := pool.Exec(ctx, `UPDATE order_sales SET updated_at = now() - interval '31 days' WHERE order_id = ANY($1)`,
		[]uuid.UUID{placedOld, cancelledOld, firstOld}); err != nil {
		t.Fatal(err)
	}
	// Old placed sales the walk must not read.
	if _, err := pool.Exec(ctx, `INSERT INTO order_sales (order_id, state, updated_at)
		SELECT gen_random_uuid(), 'placed', now() - interval '60 days' FROM generate_series(1, 3000)`); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `ANALYZE order_sales`); err != nil {
		t.Fatal(err)
	}
	// Nothing is deleted while the index is not valid (a concurrent build
	// under way or failed), nor by a role that may read but not delete the
	// sales (shop_relay before its grant).
	for name, setup := range map[string]string{
		"an invalid index":   `UPDATE pg_index SET indisvalid = false WHERE indexrelid = 'order_sales_settled_at'::regclass`,
		"a role not granted": `SET LOCAL ROLE pg_read_all_data`,
	} {
		tx, err := pool.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tx.Exec(ctx, setup); err != nil {
			t.Fatal(err)
		}
		if n, err := catalogdb.PruneOrderSales(ctx, tx, 30*24*time.Hour); !errors.Is(err, catalogdb.ErrSalesKept) || n != 0 {
			t.Errorf("PruneOrderSales with %s = %d, %v; want 0, ErrSalesKept", name, n, err)
		}
		_ = tx.Rollback(ctx)
	}
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck
	before := pgtest.RowsRead(t, tx, "order_sales")
	n, err := catalogdb.PruneOrderSales(ctx, tx, 30*24*time.Hour)
	if err != nil || n != 2 {
		t.Fatalf("PruneOrderSales = %d, %v; want the 2 settled sales older than the retention deleted", n, err)
	}
	if read := pgtest.RowsRead(t, tx, "order_sales") - before; read > 10 {
		t.Errorf("the prune read %d sales to delete 2; want the index to find only those", read)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	var left []uuid.UUID
	if err := pool.QueryRow(ctx, `SELECT array_agg(order_id ORDER BY order_id) FROM order_sales WHERE order_id = ANY($1)`,
		[]uuid.UUID{placedOld, cancelledOld, firstOld, cancelledYoung, firstYoung}).Scan(&left); err != nil {
		t.Fatal(err)
	}
	want := []uuid.UUID{placedOld, cancelledYoung, firstYoung}
	slices.SortFunc(want, func(x, y uuid.UUID) int { return strings.Compare(x.String(), y.String()) })
	if !slices.Equal(left, want) {
		t.Errorf("sales left %v, want %v (the old placed one and the young settled ones)", left, want)
	}
	// The old placed order's cancellation, after the prune, still subtracts.
	sale(placedOld, true, -1)
	if p, _ := s.Get(ctx, a.ID); p.SoldCount != 0 {
		t.Errorf("sold %d after every placement was cancelled, want 0", p.SoldCount)
	}
	empty := pgtest.Open(t, fstest.MapFS{"0001_none.sql": {Data: []byte(`CREATE TABLE other (n int);`)}})
	if n, err := catalogdb.PruneOrderSales(ctx, empty, time.Hour); err != nil || n != 0 {
		t.Errorf("PruneOrderSales without the table = %d, %v; want 0, nil", n, err)
	}
}

// One PruneOrderSales deletes at most PruneSalesBatches batches: the relay
// prunes in the loop that publishes the catalog's events, so a backlog of
// settled sales (the first cleanup after an upgrade, a lowered
// INBOX_RETENTION) goes over several cleanups instead of holding the events
// up; the next prune goes on where it stopped, and placed sales stay.
func TestPruneOrderSalesStopsAfterItsBatches(t *testing.T) {
	ctx := context.Background()
	pool := pgtest.Open(t, catalogdb.Migrations())
	const capped, n = catalogdb.PruneSalesBatches * postgres.DeleteBatch, catalogdb.PruneSalesBatches*postgres.DeleteBatch + 7
	if _, err := pool.Exec(ctx, `INSERT INTO order_sales (order_id, state, updated_at)
		SELECT gen_random_uuid(), CASE WHEN i <= $1::int THEN 'cancelled' ELSE 'placed' END, now() - interval '40 days'
		FROM generate_series(1, $1::int + 5) i`, n); err != nil {
		t.Fatal(err)
	}
	if got, err := catalogdb.PruneOrderSales(ctx, pool, 30*24*time.Hour); err != nil || got != capped {
		t.Fatalf("first PruneOrderSales = %d, %v; want its %d batches' %d sales deleted", got, err, catalogdb.PruneSalesBatches, capped)
	}
	var settled, placed int
	if err := pool.QueryRow(ctx, `SELECT count(*) FILTER (WHERE state <> 'placed'), count(*) FILTER (WHERE state = 'placed')
		FROM order_sales`).Scan(&settled, &placed); err != nil || settled != n-capped || placed != 5 {
		t.Errorf("%d settled and %d placed sales left after the first prune (%v), want %d and 5", settled, placed, err, n-capped)
	}
	if got, err := catalogdb.PruneOrderSales(ctx, pool, 30*24*time.Hour); err != nil || got != n-capped {
		t.Fatalf("second PruneOrderSales = %d, %v; want the %d settled sales left deleted", got, err, n-capped)
	}
}
