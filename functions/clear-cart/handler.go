// Package function is clear-cart: DELETE /api/v1/cart empties the caller's
// cart and answers 204, also when it was already empty. The caller is known
// only from the verified access token.
package function

import (
	"context"
	"log/slog"
	"net/http"

	"github.com/google/uuid"

	"github.com/shopfaas/shop/internal/auth"
	"github.com/shopfaas/shop/internal/cart/cartenv"
	"github.com/shopfaas/shop/internal/config"
	"github.com/shopfaas/shop/internal/fnhttp"
)

// Build reads the function's configuration from c and builds its handler.
// fnserve calls it on the first request, and again after a failed build.
func Build(c *config.Reader, log *slog.Logger) (http.Handler, error) {
	d, err := cartenv.Load(context.Background(), c, log, cartenv.Needs{Tokens: true})
	if err != nil {
		return nil, err
	}
	return New(d.Carts, d.Tokens, log), nil
}

// Carts empties carts (cartredis.Store).
type Carts interface {
	Clear(ctx context.Context, user uuid.UUID) error
}

// New returns the function's handler.
func New(carts Carts, tokens *auth.Verifier, log *slog.Logger) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("DELETE /api/v1/cart", fnhttp.Adapt(log, func(w http.ResponseWriter, r *http.Request) error {
		id, err := tokens.FromRequest(r)
		if err != nil {
			return err
		}
		if err := carts.Clear(r.Context(), id.UserID); err != nil {
			return err
		}
		w.WriteHeader(http.StatusNoContent)
		return nil
	}))
	return fnhttp.Routes(mux)
}
