package demo_test

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/shopfaas/shop/dev/demo"
	"github.com/shopfaas/shop/internal/catalog"
	"github.com/shopfaas/shop/internal/catalog/catalogdb"
	"github.com/shopfaas/shop/internal/inventory"
	"github.com/shopfaas/shop/internal/inventory/inventorydb"
	"github.com/shopfaas/shop/internal/postgres/pgtest"
)

func TestDemoDataIsValid(t *testing.T) {
	products, err := demo.Products()
	if err != nil {
		t.Fatal(err)
	}
	if len(products) < 50 {
		t.Fatalf("%d demo products, want at least 50", len(products))
	}
	skus := map[string]bool{}
	categories := map[string]int{}
	for _, d := range products {
		if skus[d.SKU] {
			t.Errorf("duplicate sku %s", d.SKU)
		}
		skus[d.SKU] = true
		categories[d.Category]++
		if _, err := catalog.NewProduct(d.Draft, time.Now()); err != nil {
			t.Errorf("%s is not a valid product: %v", d.SKU, err)
		}
		if d.Description == "" {
			t.Errorf("%s has no description", d.SKU)
		}
		if err := inventory.ValidOnHand(d.Stock); err != nil {
			t.Errorf("%s stock %d: %v", d.SKU, d.Stock, err)
		}
	}
	if len(categories) < 5 {
		t.Fatalf("categories = %v, want at least 5", categories)
	}
}

func TestSeedIsIdempotent(t *testing.T) {
	catPool := pgtest.Open(t, catalogdb.Migrations())
	invPool := pgtest.Open(t, inventorydb.Migrations())
	cat, stock := catalogdb.New(catPool), inventorydb.New(invPool)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	ctx := context.Background()
	products, err := demo.Products()
	if err != nil {
		t.Fatal(err)
	}
	n := len(products)

	// A product a developer created by hand keeps its data, and one whose
	// stock was already set keeps its level.
	first := products[0]
	pre, err := catalog.NewProduct(first.Draft, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	pre.Name = "Renamed by a developer"
	if pre, err = cat.Create(ctx, pre); err != nil {
		t.Fatal(err)
	}
	if _, err := stock.SetOnHand(ctx, pre.ID, 3, inventory.IfAbsent()); err != nil {
		t.Fatal(err)
	}

	res, err := demo.Seed(ctx, products, cat, stock, log)
	if err != nil {
		t.Fatal(err)
	}
	if want := (demo.Result{Created: n - 1, Existing: 1, Stocked: n - 1}); res != want {
		t.Fatalf("first run = %+v, want %+v", res, want)
	}
	res, err = demo.Seed(ctx, products, cat, stock, log)
	if err != nil {
		t.Fatal(err)
	}
	if want := (demo.Result{Existing: n}); res != want {
		t.Fatalf("second run = %+v, want %+v", res, want)
	}

	got, err := cat.GetBySKU(ctx, first.SKU)
	if err != nil || got.Name != "Renamed by a developer" {
		t.Fatalf("hand-made product = %+v, %v", got, err)
	}
	if st, err := stock.Get(ctx, pre.ID); err != nil || st.OnHand != 3 {
		t.Fatalf("hand-set stock = %+v, %v; want 3", st, err)
	}
	last := products[n-1]
	p, err := cat.GetBySKU(ctx, last.SKU)
	if err != nil {
		t.Fatal(err)
	}
	if st, err := stock.Get(ctx, p.ID); err != nil || st.OnHand != last.Stock {
		t.Fatalf("stock of %s = %+v, %v; want %d", last.SKU, st, err, last.Stock)
	}
	var products1, events1, events2 int
	if err := catPool.QueryRow(ctx, `SELECT count(*) FROM products`).Scan(&products1); err != nil {
		t.Fatal(err)
	}
	if err := catPool.QueryRow(ctx, `SELECT count(*) FROM outbox WHERE type = 'product.changed.v1'`).Scan(&events1); err != nil {
		t.Fatal(err)
	}
	if err := invPool.QueryRow(ctx, `SELECT count(*) FROM outbox WHERE type = 'stock.changed.v1'`).Scan(&events2); err != nil {
		t.Fatal(err)
	}
	// A stock event says a product is in stock: none for the demo's sold-out
	// one (the catalog's in_stock starts false).
	inStock := 0
	for _, p := range products {
		if p.Stock > 0 {
			inStock++
		}
	}
	if inStock == n {
		t.Fatal("the demo catalog has no sold-out product")
	}
	if products1 != n || events1 != n || events2 != inStock {
		t.Fatalf("products %d, product events %d, stock events %d; want %d, %d, %d", products1, events1, events2, n, n, inStock)
	}
}
