// Package function is get-cart: GET /api/v1/cart answers the caller's cart,
// {items:[{product_id, quantity, unit_price, line_total}], total}, priced with
// the catalog's current prices. Products that are no longer for sale are
// dropped from the answer and from the cart (a checkout of the cart skips
// them too: internal/orders/saga). The caller is known only from
// the verified access token.
package function

import (
	"context"
	"log/slog"
	"net/http"

	"github.com/google/uuid"

	"github.com/shopfaas/shop/internal/auth"
	"github.com/shopfaas/shop/internal/cart"
	"github.com/shopfaas/shop/internal/cart/cartenv"
	"github.com/shopfaas/shop/internal/config"
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

// Carts reads priced carts (cartsvc.Service).
type Carts interface {
	Get(ctx context.Context, user uuid.UUID) (cart.View, error)
}

// New returns the function's handler.
func New(carts Carts, tokens *auth.Verifier, log *slog.Logger) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /api/v1/cart", fnhttp.Adapt(log, func(w http.ResponseWriter, r *http.Request) error {
		id, err := tokens.FromRequest(r)
		if err != nil {
			return err
		}
		view, err := carts.Get(r.Context(), id.UserID)
		if err != nil {
			return err
		}
		w.Header().Set("Cache-Control", "no-store")
		return fnhttp.JSON(w, http.StatusOK, view)
	}))
	return fnhttp.Routes(mux)
}
