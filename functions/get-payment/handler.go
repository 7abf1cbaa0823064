// Package function is get-payment, GET /api/v1/orders/{id}/payment: the
// payment of an order, for its owner or an admin. Anyone else gets 404, like a
// missing payment, so the existence of other users' orders never leaks.
package function

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/google/uuid"

	"github.com/shopfaas/shop/internal/auth"
	"github.com/shopfaas/shop/internal/config"
	"github.com/shopfaas/shop/internal/fault"
	"github.com/shopfaas/shop/internal/fnhttp"
	"github.com/shopfaas/shop/internal/payments"
	"github.com/shopfaas/shop/internal/payments/paymentsdb"
)

// handler is built on the first request, from the environment.
var handler = fnhttp.Lazy(build)

// Handle serves get-payment.
func Handle(w http.ResponseWriter, r *http.Request) { handler.ServeHTTP(w, r) }

func build() (http.Handler, error) {
	c := config.FromOS()
	key := c.Secret("jwt-secret", "", false)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	svc, err := paymentsdb.OpenService(ctx, c)
	if err != nil {
		return nil, err
	}
	tokens, err := auth.NewTokens(key, 0)
	if err != nil {
		return nil, err
	}
	return New(svc, tokens, slog.Default()), nil
}

// Getter reads an order's payment for a reader; payments.Service implements it.
type Getter interface {
	Get(ctx context.Context, orderID, reader uuid.UUID, admin bool) (payments.Payment, error)
}

var errNotFound = fault.E(fault.NotFound, fault.CodeNotFound, "no payment for this order")

// New returns the get-payment handler; the caller's identity comes only from
// the bearer token verified by tokens.
func New(svc Getter, tokens *auth.Tokens, log *slog.Logger) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /api/v1/orders/{id}/payment", fnhttp.Adapt(log, func(w http.ResponseWriter, r *http.Request) error {
		id, err := tokens.FromRequest(r)
		if err != nil {
			return err
		}
		orderID, err := uuid.Parse(r.PathValue("id"))
		if err != nil {
			return errNotFound
		}
		p, err := svc.Get(r.Context(), orderID, id.UserID, id.IsAdmin())
		if err != nil {
			return err
		}
		w.Header().Set("Cache-Control", "no-store")
		return fnhttp.JSON(w, http.StatusOK, payments.ViewOf(p))
	}))
	return fnhttp.Routes(mux)
}
