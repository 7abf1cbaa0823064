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
	"github.com/shopfaas/shop/internal/cart/cartredis"
	"github.com/shopfaas/shop/internal/config"
	"github.com/shopfaas/shop/internal/fnhttp"
)

// handler is built on the first request, from the environment.
var handler = fnhttp.Lazy(func() (http.Handler, error) { return build(config.FromOS(), slog.Default()) })

// Handle serves the function (the OpenFaaS golang-middleware signature).
func Handle(w http.ResponseWriter, r *http.Request) { handler.ServeHTTP(w, r) }

func build(c *config.Reader, log *slog.Logger) (http.Handler, error) {
	rc := cartredis.ConfigFrom(c)
	key := c.Secret("jwt-secret", "", false)
	if err := c.Err(); err != nil {
		return nil, err
	}
	tokens, err := auth.NewTokens(key, 0)
	if err != nil {
		return nil, err
	}
	return New(tokens, cartredis.New(cartredis.NewClient(rc), rc), log), nil
}

// Carts empties carts (cartredis.Store).
type Carts interface {
	Clear(ctx context.Context, user uuid.UUID) error
}

// New returns the function's handler.
func New(tokens *auth.Tokens, carts Carts, log *slog.Logger) http.Handler {
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
