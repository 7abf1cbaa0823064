// Package function is set-cart-item: PUT /api/v1/cart/items/{product_id}
// {quantity} sets how many units of a product are in the caller's cart (0
// removes the line; 1..99 per line; at most 50 lines) and answers the priced
// cart. The product must be for sale in the catalog (404 otherwise). The body
// carries only the quantity: a price sent by the client is an unknown field
// (400), because prices always come from the catalog.
package function

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"

	"github.com/google/uuid"

	"github.com/shopfaas/shop/internal/auth"
	"github.com/shopfaas/shop/internal/cart"
	"github.com/shopfaas/shop/internal/cart/cartenv"
	"github.com/shopfaas/shop/internal/config"
	"github.com/shopfaas/shop/internal/fault"
	"github.com/shopfaas/shop/internal/fnhttp"
)

// Build reads the function's configuration from c and builds its handler.
// fnserve calls it on the first request, and again after a failed build.
func Build(c *config.Reader, log *slog.Logger) (http.Handler, error) {
	d, err := cartenv.Load(context.Background(), c, log, cartenv.Needs{Tokens: true, Pricing: true})
	if err != nil {
		return nil, err
	}
	return New(d.Service, d.Tokens, log), nil
}

// Carts changes carts (cartsvc.Service).
type Carts interface {
	SetItem(ctx context.Context, user, product uuid.UUID, quantity int) (cart.View, error)
}

// request is the body; quantity is kept raw so that a missing value is told
// apart from a wrong type (422, not 400).
type request struct {
	Quantity json.RawMessage `json:"quantity"`
}

// New returns the function's handler.
func New(carts Carts, tokens *auth.Verifier, log *slog.Logger) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("PUT /api/v1/cart/items/{product_id}", fnhttp.Adapt(log, func(w http.ResponseWriter, r *http.Request) error {
		id, err := tokens.FromRequest(r)
		if err != nil {
			return err
		}
		product, ok := fnhttp.PathID(r, "product_id")
		if !ok {
			return fault.E(fault.NotFound, fault.CodeNotFound, "product not found")
		}
		var req request
		if err := fnhttp.Decode(r, &req, 4<<10); err != nil {
			return err
		}
		quantity, err := cart.ParseQuantity(req.Quantity)
		if err != nil {
			return err
		}
		view, err := carts.SetItem(r.Context(), id.UserID, product, quantity)
		if err != nil {
			return err
		}
		w.Header().Set("Cache-Control", "no-store")
		return fnhttp.JSON(w, http.StatusOK, view)
	}))
	return fnhttp.Routes(mux)
}
