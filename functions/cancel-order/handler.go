// Package function is cancel-order: POST /api/v1/orders/{id}/cancel cancels a
// confirmed order for its owner or an admin (404 for anyone else): the order
// becomes cancelled with order.cancelled.v1, its stock is restocked and its
// payment refunded. Only a confirmed order can be cancelled: a pending,
// payment_failed or already cancelled order is 409 not_cancellable, so a
// second cancel never refunds or restocks again.
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
	d, err := ordersenv.Load(context.Background(), c, log, ordersenv.Needs{Tokens: true, Saga: true, Caller: "cancel-order"})
	if err != nil {
		return nil, err
	}
	return New(d.Saga, d.Tokens, log), nil
}

// Canceller cancels orders (saga.Saga).
type Canceller interface {
	Cancel(ctx context.Context, who auth.Identity, orderID uuid.UUID) (orders.Order, error)
}

// New returns the function's handler. The request has no body; one that is
// sent is ignored.
func New(saga Canceller, tokens *auth.Verifier, log *slog.Logger) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("POST /api/v1/orders/{id}/cancel", fnhttp.Adapt(log, func(w http.ResponseWriter, r *http.Request) error {
		who, err := tokens.FromRequest(r)
		if err != nil {
			return err
		}
		id, ok := fnhttp.PathID(r, "id")
		if !ok {
			return fault.E(fault.NotFound, fault.CodeNotFound, "no such order")
		}
		o, err := saga.Cancel(r.Context(), who, id)
		if err != nil {
			return err
		}
		w.Header().Set("Cache-Control", "no-store")
		return fnhttp.JSON(w, http.StatusOK, o.View())
	}))
	return fnhttp.Routes(mux)
}
