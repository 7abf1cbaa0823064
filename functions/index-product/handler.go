// Package function is index-product, an event handler (topics
// product.changed.v1 and stock.changed.v1; POST / from the RabbitMQ
// connector with the internal credential). On product.changed.v1 it pushes
// the product's CURRENT state (read from the catalog database, so a stale or
// reordered event never regresses the index) to Meilisearch when MEILI_URL is
// configured; the embedded PostgreSQL search columns are kept right by the
// catalog's own transactions. On stock.changed.v1 it records whether the
// product is in stock (catalogdb, once per event, with its search columns and
// a product.changed.v1 event in the same transaction), then invalidates the
// product cache and pushes to Meilisearch. See docs/events.md.
package function

import (
	"context"
	"log/slog"
	"net/http"

	"github.com/google/uuid"

	"github.com/shopfaas/shop/internal/auth"
	"github.com/shopfaas/shop/internal/catalog/catalogenv"
	"github.com/shopfaas/shop/internal/config"
	"github.com/shopfaas/shop/internal/events"
	"github.com/shopfaas/shop/internal/fault"
	"github.com/shopfaas/shop/internal/fnhttp"
	"github.com/shopfaas/shop/internal/inbox"
	"github.com/shopfaas/shop/internal/search"
)

// Consumer is this function's name in the inbox.
const Consumer = "index-product"

// Build reads the function's configuration from c and builds its handler.
// fnserve calls it on the first request, and again after a failed build.
func Build(c *config.Reader, log *slog.Logger) (http.Handler, error) {
	d, err := catalogenv.Load(context.Background(), c, log, catalogenv.Needs{Cache: true, Search: true, Internal: true})
	if err != nil {
		return nil, err
	}
	return New(d, d.InternalToken), nil
}

// Response is the answer to a delivery.
type Response struct {
	EventID   uuid.UUID `json:"event_id"`
	ProductID uuid.UUID `json:"product_id"`
	// Duplicate is true when a stock event had already been processed.
	Duplicate bool `json:"duplicate"`
	// Indexed is true when the product was pushed to the external index.
	Indexed bool `json:"indexed"`
	// Skipped says why nothing was done, e.g. "unknown_product".
	Skipped string `json:"skipped,omitempty"`
}

type productData struct {
	ID uuid.UUID `json:"id"`
}

type stockData struct {
	ProductID uuid.UUID `json:"product_id"`
	Available *int      `json:"available"`
	// Version orders the stock events of a product (inventory.Changed).
	Version int64 `json:"version"`
}

// New returns the handler over d (Store required; Cache and External
// optional); callers must present credential in X-Internal-Token. It answers
// 200 after the effect is durable, 4xx for an event it can never process and
// 5xx when the database or Meilisearch failed (the connector retries).
func New(d *catalogenv.Deps, credential string) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("POST /", fnhttp.Adapt(d.Log, func(w http.ResponseWriter, r *http.Request) error {
		if err := auth.CheckInternal(r, credential); err != nil {
			return err
		}
		ev, err := inbox.ReadDelivery(r, events.ProductChanged, events.StockChanged)
		if err != nil {
			return err
		}
		ctx := ev.Context(r.Context())
		var resp Response
		if ev.Type == events.ProductChanged {
			resp, err = productChanged(ctx, d, ev)
		} else {
			resp, err = stockChanged(ctx, d, ev)
		}
		if err != nil {
			return err
		}
		d.Log.InfoContext(ctx, "event processed", "event_id", ev.EventID, "type", ev.Type)
		return fnhttp.JSON(w, http.StatusOK, resp)
	}))
	return fnhttp.Routes(mux)
}

func productChanged(ctx context.Context, d *catalogenv.Deps, ev inbox.Delivery) (Response, error) {
	var data productData
	if err := ev.DecodeData(&data); err != nil {
		return Response{}, err
	}
	if data.ID == uuid.Nil {
		return Response{}, fault.E(fault.Malformed, fault.CodeInvalidEvent, "product id is required")
	}
	resp := Response{EventID: ev.EventID, ProductID: data.ID}
	if d.External == nil {
		resp.Skipped = "no_external_index"
		return resp, nil
	}
	p, err := d.Store.Current(ctx, data.ID)
	switch {
	case fault.Is(err, fault.NotFound, ""):
		err = d.External.Delete(ctx, data.ID)
	case err != nil:
		return resp, err
	case p.Archived:
		err = d.External.Delete(ctx, p.ID)
	default:
		err = d.External.Upsert(ctx, search.FromProduct(p))
	}
	if err != nil {
		return resp, fault.Wrap(err, fault.Unavailable, fault.CodeUnavailable, "the search index is unavailable")
	}
	resp.Indexed = true
	return resp, nil
}

func stockChanged(ctx context.Context, d *catalogenv.Deps, ev inbox.Delivery) (Response, error) {
	var data stockData
	if err := ev.DecodeData(&data); err != nil {
		return Response{}, err
	}
	if data.ProductID == uuid.Nil || data.Available == nil || data.Version < 1 {
		return Response{}, fault.E(fault.Malformed, fault.CodeInvalidEvent, "product_id, available and version are required")
	}
	resp := Response{EventID: ev.EventID, ProductID: data.ProductID}
	p, first, changed, err := d.Store.SetAvailabilityOnce(ctx, ev.EventID, Consumer, data.ProductID, *data.Available > 0, data.Version)
	if fault.Is(err, fault.NotFound, "") {
		// Stock of a product the catalog does not know: nothing to index, and
		// retrying cannot help.
		d.Log.WarnContext(ctx, "stock event for an unknown product", "product_id", data.ProductID, "event_id", ev.EventID)
		resp.Skipped = "unknown_product"
		return resp, nil
	}
	if err != nil {
		return resp, err
	}
	resp.Duplicate = !first
	if changed {
		d.Committed(ctx, p) // cache marker + external push (errors logged)
		resp.Indexed = d.External != nil
	}
	return resp, nil
}
