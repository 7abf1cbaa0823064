// Package indexing runs index-product's use cases: it keeps the product cache
// and the external search index (Meilisearch) in step with
// product.changed.v1, pushing the product's CURRENT state so a stale or
// reordered event never regresses the index, and records each product's
// in-stock flag from stock.changed.v1 once per event. The function
// index-product is its HTTP wrapper. Reindex rebuilds the whole external
// index from the catalog, for the operator command cmd/reindex.
package indexing

import (
	"context"

	"github.com/google/uuid"

	"github.com/shopfaas/shop/internal/catalog"
	"github.com/shopfaas/shop/internal/catalog/catalogenv"
	"github.com/shopfaas/shop/internal/fault"
)

// Result is what an event did.
type Result struct {
	ProductID uuid.UUID `json:"product_id"`
	// Duplicate is true when a stock event had already been processed.
	Duplicate bool `json:"duplicate"`
	// Indexed is true when the product was pushed to the external index
	// (false when the push failed, or there is none).
	Indexed bool `json:"indexed"`
	// Skipped says why nothing was done, e.g. "unknown_product".
	Skipped string `json:"skipped,omitempty"`
}

// ProductEvent is what indexing reads of a product.changed.v1's data (a
// catalog.Product).
type ProductEvent struct {
	ID      uuid.UUID `json:"id"`
	Version int64     `json:"version"`
}

// StockEvent is what indexing reads of a stock.changed.v1's data
// (inventory.View).
type StockEvent struct {
	ProductID uuid.UUID `json:"product_id"`
	Available *int      `json:"available"`
	// Version orders the stock events of a product.
	Version int64 `json:"version"`
}

// ProductChanged first replaces the product's cache entry, if older than the
// event's version, with an invalidation marker (catalogenv.Invalidate, a
// compare-and-set: a newer entry stays). The writer did so after its commit
// unless it died in between; the event, committed with the change, is what
// repairs that, instead of the entry's TTL. Then it pushes the product's
// current state to d.External (deleted there when it is archived or gone);
// without an external index there is nothing more to do. A product event
// without an id is fault.Malformed; a failed push is fault.Unavailable (the
// connector retries). A failed invalidation is logged, as every cache write
// after a commit is: the entry's TTL bounds it, and failing the delivery
// would only send every product event to the dead letters while Redis is
// down, for entries the TTL ends anyway.
func ProductChanged(ctx context.Context, d *catalogenv.Deps, e ProductEvent) (Result, error) {
	if e.ID == uuid.Nil {
		return Result{}, fault.E(fault.Malformed, fault.CodeInvalidEvent, "product id is required")
	}
	res := Result{ProductID: e.ID}
	if e.Version > 0 {
		d.Invalidate(ctx, catalog.Product{ID: e.ID, Version: e.Version})
	}
	if d.External == nil {
		res.Skipped = "no_external_index"
		return res, nil
	}
	if _, err := d.PushCurrent(ctx, e.ID); err != nil {
		return res, err
	}
	res.Indexed = true
	return res, nil
}

// StockChanged records whether the product is in stock, once per event
// (eventID, claimed by consumer in the same transaction as the change, its
// search columns and a product.changed.v1 event), then invalidates the
// product cache and pushes to the external index; a failed push is logged,
// not returned (that event pushes again), and reported as Indexed false. Stock of a product the
// catalog does not know is skipped ("unknown_product"): retrying cannot help.
// An event without product_id, available or a positive version is
// fault.Malformed.
func StockChanged(ctx context.Context, d *catalogenv.Deps, eventID uuid.UUID, consumer string, e StockEvent) (Result, error) {
	if e.ProductID == uuid.Nil || e.Available == nil || e.Version < 1 {
		return Result{}, fault.E(fault.Malformed, fault.CodeInvalidEvent, "product_id, available and version are required")
	}
	res := Result{ProductID: e.ProductID}
	p, first, changed, err := d.Store.SetAvailabilityOnce(ctx, eventID, consumer, e.ProductID, *e.Available > 0, e.Version)
	if fault.Is(err, fault.NotFound, "") {
		d.Log.WarnContext(ctx, "stock event for an unknown product", "product_id", e.ProductID, "event_id", eventID)
		res.Skipped = "unknown_product"
		return res, nil
	}
	if err != nil {
		return res, err
	}
	res.Duplicate = !first
	if changed {
		// Cache marker + external push (errors logged): Indexed only when
		// the push succeeded; a failed one is repaired by the
		// product.changed.v1 committed with the change.
		res.Indexed = d.Committed(ctx, p)
	}
	return res, nil
}
