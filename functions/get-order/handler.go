// Package function is get-order: GET /api/v1/orders/{id} answers an order to
// its owner or an admin, and 404 to anyone else (no existence leak).
package function

import (
	"context"
	"log/slog"
	"net/http"

	"github.com/google/uuid"

	"github.com/shopfaas/shop/internal/auth"
	"github.com/shopfaas/shop/internal/config"
	"github.com/shopfaas/shop/internal/fault"
	"github.com/shopfaas/shop/internal/fnhttp"
	"github.com/shopfaas/shop/internal/orders"
	"github.com/shopfaas/shop/internal/orders/ordersenv"
)

// Build reads the function's configuration from c and builds its handler.
// fnserve calls it on the first request, and again after a failed build.
func Build(c *config.Reader, log *slog.Logger) (http.Handler, error) {
	d, err := ordersenv.Load(context.Background(), c, log, ordersenv.Needs{Tokens: true})
	if err != nil {
		return nil, err
	}
	return New(d.Store, d.Tokens, log), nil
}

// Getter reads orders (ordersdb.Store).
type Getter interface {
	GetVisible(ctx context.Context, id uuid.UUID, who auth.Identity) (orders.Order, error)
}

var errNotFound = fault.E(fault.NotFound, fault.CodeNotFound, "no such order")

// New returns the function's handler.
func New(store Getter, tokens *auth.Verifier, log *slog.Logger) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /api/v1/orders/{id}", fnhttp.Adapt(log, func(w http.ResponseWriter, r *http.Request) error {
		who, err := tokens.FromRequest(r)
		if err != nil {
			return err
		}
		id, ok := fnhttp.PathID(r, "id")
		if !ok {
			return errNotFound
		}
		o, err := store.GetVisible(r.Context(), id, who)
		if err != nil {
			return err
		}
		w.Header().Set("Cache-Control", "no-store")
		return fnhttp.JSON(w, http.StatusOK, o.View())
	}))
	return fnhttp.Routes(mux)
}
