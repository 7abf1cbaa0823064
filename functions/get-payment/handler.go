// Package function is get-payment, GET /api/v1/orders/{id}/payment: the
// payment of an order, for its owner or an admin. Anyone else gets 404, like a
// missing payment, so the existence of other users' orders never leaks.
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
	"github.com/shopfaas/shop/internal/payments"
	"github.com/shopfaas/shop/internal/payments/paymentsenv"
)

// Build reads the function's configuration from c and builds its handler.
// fnserve calls it on the first request, and again after a failed build.
func Build(c *config.Reader, log *slog.Logger) (http.Handler, error) {
	d, err := paymentsenv.Load(context.Background(), c, log, paymentsenv.Needs{Tokens: true})
	if err != nil {
		return nil, err
	}
	return New(d.Service, d.Tokens, log), nil
}

// Getter reads an order's payment for a reader; payments.Service implements it.
type Getter interface {
	Get(ctx context.Context, orderID, reader uuid.UUID, admin bool) (payments.Payment, error)
}

var errNotFound = fault.E(fault.NotFound, fault.CodeNotFound, "no payment for this order")

// New returns the get-payment handler; the caller's identity comes only from
// the bearer token verified by tokens.
func New(svc Getter, tokens *auth.Verifier, log *slog.Logger) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /api/v1/orders/{id}/payment", fnhttp.Adapt(log, func(w http.ResponseWriter, r *http.Request) error {
		id, err := tokens.FromRequest(r)
		if err != nil {
			return err
		}
		orderID, ok := fnhttp.PathID(r, "id")
		if !ok {
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
