// Package function is get-stock: GET /api/v1/inventory/{product_id} answers a
// product's stock level {product_id, on_hand, reserved, available, version} to
// anyone, with the strong ETag of that version: set-stock's If-Match. A product
// that was never stocked (or an id that is not a UUID) is 404.
package function

import (
	"context"
	"log/slog"
	"net/http"

	"github.com/google/uuid"

	"github.com/shopfaas/shop/internal/config"
	"github.com/shopfaas/shop/internal/fault"
	"github.com/shopfaas/shop/internal/fnhttp"
	"github.com/shopfaas/shop/internal/inventory"
	"github.com/shopfaas/shop/internal/inventory/inventoryenv"
)

// Build reads the function's configuration from c and builds its handler.
// fnserve calls it on the first request, and again after a failed build.
func Build(c *config.Reader, log *slog.Logger) (http.Handler, error) {
	d, err := inventoryenv.Load(context.Background(), c, log, inventoryenv.Needs{Reader: true})
	if err != nil {
		return nil, err
	}
	return New(d.Store, log), nil
}

// Stock reads a product's stock level (inventorydb.Store): fault.NotFound when
// it was never stocked.
type Stock interface {
	Get(ctx context.Context, productID uuid.UUID) (inventory.Stock, error)
}

// New returns the function's handler over stock.
func New(stock Stock, log *slog.Logger) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /api/v1/inventory/{product_id}", fnhttp.Adapt(log, func(w http.ResponseWriter, r *http.Request) error {
		id, ok := fnhttp.PathID(r, "product_id")
		if !ok {
			return fault.E(fault.NotFound, fault.CodeNotFound, "no stock for this product")
		}
		st, err := stock.Get(r.Context(), id)
		if err != nil {
			return err
		}
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("ETag", st.ETag())
		return fnhttp.JSON(w, http.StatusOK, inventory.ViewOf(st))
	}))
	return fnhttp.Routes(mux)
}
