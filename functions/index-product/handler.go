// Package function is index-product, an event handler (topics
// product.changed.v1 and stock.changed.v1; POST / from the RabbitMQ
// connector with the internal credential). On product.changed.v1 it marks the
// product's cache entry stale up to the event's version (repairing a writer
// that died between its commit and its own invalidation), then pushes the
// product's CURRENT state (read from the catalog database, so a stale or
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
	"github.com/shopfaas/shop/internal/catalog/indexing"
	"github.com/shopfaas/shop/internal/config"
	"github.com/shopfaas/shop/internal/events"
	"github.com/shopfaas/shop/internal/fnhttp"
)

// Consumer is this function's name in the inbox.
const Consumer = "index-product"

// Build reads the function's configuration from c and builds its handler.
// fnserve calls it on the first request, and again after a failed build.
func Build(c *config.Reader, log *slog.Logger) (http.Handler, error) {
	d, err := catalogenv.Load(context.Background(), c, log, catalogenv.Needs{Cache: true, Index: true, Internal: true, Events: true, Consumer: Consumer})
	if err != nil {
		return nil, err
	}
	return New(d, d.Internal), nil
}

// Response is the answer to a delivery.
type Response struct {
	EventID uuid.UUID `json:"event_id"`
	indexing.Result
}

// New returns the handler over d (Store required; Cache and External
// optional); it admits only the internal callers routes.Table names
// for it (fnhttp.CheckInternal: 401, 403). It answers
// 200 after the effect is durable, 4xx for an event it can never process and
// 5xx when the database failed or, for product.changed.v1, Meilisearch did
// (the connector retries); a stock.changed.v1 whose push to Meilisearch
// failed is 200 with "indexed": false, since the product.changed.v1 committed
// with the stock pushes it again.
func New(d *catalogenv.Deps, internal *auth.InternalVerifier) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("POST /", fnhttp.Adapt(d.Log, func(w http.ResponseWriter, r *http.Request) error {
		if err := fnhttp.CheckInternal(r, internal, "index-product"); err != nil {
			return err
		}
		ev, err := d.Events.Read(r, events.ProductChanged, events.StockChanged)
		if err != nil {
			return err
		}
		ctx := ev.Context(r.Context())
		resp := Response{EventID: ev.EventID}
		if ev.Type == events.ProductChanged {
			var data indexing.ProductEvent
			if err = ev.DecodeData(&data); err == nil {
				resp.Result, err = indexing.ProductChanged(ctx, d, data)
			}
		} else {
			var data indexing.StockEvent
			if err = ev.DecodeData(&data); err == nil {
				resp.Result, err = indexing.StockChanged(ctx, d, ev.EventID, Consumer, data)
			}
		}
		if err != nil {
			return err
		}
		d.Log.InfoContext(ctx, "event processed", "event_id", ev.EventID, "type", ev.Type)
		return fnhttp.JSON(w, http.StatusOK, resp)
	}))
	return fnhttp.Routes(mux)
}
