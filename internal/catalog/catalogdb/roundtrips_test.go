package catalogdb_test

import (
	"context"
	"testing"

	"github.com/google/uuid"

	"github.com/shopfaas/shop/internal/catalog"
	"github.com/shopfaas/shop/internal/catalog/catalogdb"
	"github.com/shopfaas/shop/internal/postgres/pgtest"
)

// TestStockEventRoundTrips: index-product's transaction for a stock.changed.v1
// that leaves in_stock as it was — the usual one: every reservation of a
// product still in stock — is one batch with BEGIN, the inbox claim and one
// UPDATE, then COMMIT: 2 round trips (docs/performance.md, item 14). It was 4
// (a round trip per statement), 6 before item 10 (the row locked, updated and
// read back in three statements). The version is still recorded,
// so an older event delivered afterwards changes nothing.
func TestStockEventRoundTrips(t *testing.T) {
	ctx := context.Background()
	pool := pgtest.Open(t, catalogdb.Migrations())
	s := catalogdb.New(pool)
	counted, rt := pgtest.Counted(t, pool)
	cs := catalogdb.New(counted)
	p := create(t, s, "RT-1")
	if _, _, changed, err := s.SetAvailabilityOnce(ctx, uuid.New(), "index", p.ID, true, 2); err != nil || !changed {
		t.Fatalf("first stock event: changed %v, %v", changed, err)
	}
	rt.Reset()
	got, first, changed, err := cs.SetAvailabilityOnce(ctx, uuid.New(), "index", p.ID, true, 5)
	if err != nil || !first || changed || got.ID != p.ID || !got.InStock {
		t.Fatalf("same availability, newer version: %+v first %v changed %v %v", got, first, changed, err)
	}
	if c := rt.Counts(); c.Trips > 2 || c.Commits != 1 {
		t.Errorf("a stock event that changes nothing shown: %+v, want at most 2 round trips and 1 commit", c)
	}
	var version, stockVersion int64
	if err := pool.QueryRow(ctx, `SELECT version, stock_version FROM products WHERE id = $1`, p.ID).Scan(&version, &stockVersion); err != nil {
		t.Fatal(err)
	}
	if stockVersion != 5 || version != got.Version {
		t.Errorf("stock_version %d (want 5), version %d (want %d, unchanged)", stockVersion, version, got.Version)
	}
	// Version 4 arrives late: claimed, nothing else.
	if _, first, changed, err := s.SetAvailabilityOnce(ctx, uuid.New(), "index", p.ID, false, 4); err != nil || !first || changed {
		t.Errorf("late event: first %v changed %v %v", first, changed, err)
	}
	if cur, _ := s.Current(ctx, p.ID); !cur.InStock || cur.Version != version {
		t.Errorf("a late event changed the product: %+v", cur)
	}
	// A newer flip bumps the version and writes product.changed.v1.
	var before int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM outbox WHERE subject = $1`, p.ID.String()).Scan(&before); err != nil {
		t.Fatal(err)
	}
	got, _, changed, err = s.SetAvailabilityOnce(ctx, uuid.New(), "index", p.ID, false, 6)
	if err != nil || !changed || got.InStock || got.Version != version+1 {
		t.Fatalf("flip: %+v changed %v %v (version was %d)", got, changed, err, version)
	}
	var after int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM outbox WHERE subject = $1`, p.ID.String()).Scan(&after); err != nil || after != before+1 {
		t.Errorf("product events %d -> %d after a flip, want one more (%v)", before, after, err)
	}
}

// TestSaleEventRoundTrips: update-product-stats' transaction for an
// order.placed.v1 is three batches whatever its number of products: BEGIN
// with the claim and the order's sale; the sold counts; the search documents
// with the COMMIT (docs/performance.md, item 14). It was 6 round trips for one
// product and 2 more per further product. A sale writes no product.changed.v1
// (item 29): the products' outbox rows are their creations'.
func TestSaleEventRoundTrips(t *testing.T) {
	ctx := context.Background()
	pool := pgtest.Open(t, catalogdb.Migrations())
	s := catalogdb.New(pool)
	counted, rt := pgtest.Counted(t, pool)
	cs := catalogdb.New(counted)
	p := create(t, s, "RT-2")
	rt.Reset()
	got, first, err := cs.AddSold(ctx, uuid.New(), "stats", uuid.New(), false, []catalog.SoldDelta{{ProductID: p.ID, Delta: 2}})
	if err != nil || !first || len(got) != 1 || got[0].SoldCount != 2 {
		t.Fatalf("add sold: %+v first %v %v", got, first, err)
	}
	if c := rt.Counts(); c.Trips > 3 || c.Commits != 1 {
		t.Errorf("a sale of one product: %+v, want at most 3 round trips and 1 commit", c)
	}
	// Two products (and an unknown one): still 3.
	q, r := create(t, s, "RT-3"), create(t, s, "RT-4")
	rt.Reset()
	event := uuid.New()
	two, first, err := cs.AddSold(ctx, event, "stats", uuid.New(), false,
		[]catalog.SoldDelta{{ProductID: q.ID, Delta: 1}, {ProductID: uuid.New(), Delta: 1}, {ProductID: r.ID, Delta: 3}})
	if err != nil || !first || len(two) != 2 {
		t.Fatalf("add sold to two products: %+v first %v %v", two, first, err)
	}
	if c := rt.Counts(); c.Trips > 3 || c.Commits != 1 {
		t.Errorf("a sale of two products: %+v, want at most 3 round trips and 1 commit", c)
	}
	// Its duplicate changes nothing and commits nothing.
	rt.Reset()
	if dup, first, err := cs.AddSold(ctx, event, "stats", uuid.New(), false, []catalog.SoldDelta{{ProductID: q.ID, Delta: 1}}); err != nil || first || len(dup) != 0 {
		t.Errorf("duplicate: %+v first %v %v", dup, first, err)
	}
	if c := rt.Counts(); c.Commits != 0 {
		t.Errorf("a duplicate committed: %+v", c)
	}
	if cur, _ := s.Current(ctx, q.ID); cur.SoldCount != 1 {
		t.Errorf("sold_count %d after a sale and its duplicate, want 1", cur.SoldCount)
	}
	var doc int64
	if err := pool.QueryRow(ctx, `SELECT sold_count FROM search_documents WHERE id = $1`, p.ID).Scan(&doc); err != nil || doc != 2 {
		t.Errorf("search document sold_count %d, %v; want 2", doc, err)
	}
	// A sale writes no event: the sold products' outbox rows are their
	// creations' product.changed.v1, one each.
	for _, id := range []uuid.UUID{p.ID, q.ID, r.ID} {
		var evs int
		if err := pool.QueryRow(ctx, `SELECT count(*) FROM outbox WHERE subject = $1`, id.String()).Scan(&evs); err != nil || evs != 1 {
			t.Errorf("product %s: %d outbox rows (%v), want 1, its creation's", id, evs, err)
		}
	}
}
