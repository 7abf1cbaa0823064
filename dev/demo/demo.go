// Package demo is the demo catalog that `make run` seeds on a developer
// machine: real-looking products across several categories, each with an
// initial stock level. Seed is idempotent: it creates only products whose SKU
// does not exist yet and stocks only products that have no stock row, so it
// may run on every start without overwriting what a developer changed.
package demo

import (
	"context"
	_ "embed"
	"encoding/json"
	"fmt"
	"log/slog"
	"time"

	"github.com/google/uuid"

	"github.com/shopfaas/shop/internal/catalog"
	"github.com/shopfaas/shop/internal/fault"
)

//go:embed products.json
var productsJSON []byte

// Product is one demo product and its initial stock.
type Product struct {
	catalog.Draft
	// Stock is the initial on-hand level.
	Stock int `json:"stock"`
}

// Products returns the demo catalog, in file order. The data is embedded, so
// an error means the file is broken (a test guards it).
func Products() ([]Product, error) {
	var doc struct {
		Products []Product `json:"products"`
	}
	if err := json.Unmarshal(productsJSON, &doc); err != nil {
		return nil, fmt.Errorf("demo products: %w", err)
	}
	return doc.Products, nil
}

// Catalog is what Seed needs of the catalog store (catalogdb.Store): Create
// writes the product and its product.changed.v1 event in one transaction.
type Catalog interface {
	GetBySKU(ctx context.Context, sku string) (catalog.Product, error)
	Create(ctx context.Context, p catalog.Product) (catalog.Product, error)
}

// Stock is what Seed needs of the inventory store (inventorydb.Store): Init
// stocks a product only when it has no stock row, with its stock.changed.v1 event.
type Stock interface {
	Init(ctx context.Context, productID uuid.UUID, onHand int) (created bool, err error)
}

// Result counts what a Seed run did.
type Result struct {
	Created, Existing, Stocked int
}

// Seed creates the missing demo products through the catalog store and gives
// the live ones with no stock row their initial stock through the inventory
// store. Archived products are left alone. It stops at the first failure;
// running it again resumes where it stopped.
func Seed(ctx context.Context, products []Product, cat Catalog, stock Stock, log *slog.Logger) (Result, error) {
	var res Result
	for _, d := range products {
		p, err := cat.GetBySKU(ctx, d.SKU)
		switch {
		case err == nil:
			res.Existing++
		case fault.Is(err, fault.NotFound, ""):
			p, err = create(ctx, cat, d)
			if err != nil {
				return res, err
			}
			res.Created++
		default:
			return res, fmt.Errorf("look up %s: %w", d.SKU, err)
		}
		if p.Archived {
			continue
		}
		created, err := stock.Init(ctx, p.ID, d.Stock)
		if err != nil {
			return res, fmt.Errorf("stock %s: %w", d.SKU, err)
		}
		if created {
			res.Stocked++
		}
	}
	log.InfoContext(ctx, "demo catalog seeded", "created", res.Created, "existing", res.Existing, "stocked", res.Stocked)
	return res, nil
}

// create makes the product; a concurrent seeder that won the SKU is fine.
func create(ctx context.Context, cat Catalog, d Product) (catalog.Product, error) {
	p, err := catalog.NewProduct(d.Draft, time.Now().UTC())
	if err != nil {
		return p, fmt.Errorf("demo product %s: %w", d.SKU, err)
	}
	created, err := cat.Create(ctx, p)
	if fault.Is(err, fault.Conflict, "sku_taken") {
		return cat.GetBySKU(ctx, d.SKU)
	}
	if err != nil {
		return created, fmt.Errorf("create %s: %w", d.SKU, err)
	}
	return created, nil
}
