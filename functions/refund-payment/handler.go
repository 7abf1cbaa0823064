// Package function is refund-payment, an internal function (POST /, internal
// credential required): it refunds an order's captured payment exactly once.
// An order that was declined or never charged is answered with its status
// ("declined" or "none"): there is nothing to refund. See docs/checkout.md.
package function

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/google/uuid"

	"github.com/shopfaas/shop/internal/config"
	"github.com/shopfaas/shop/internal/fnhttp"
	"github.com/shopfaas/shop/internal/payments"
	"github.com/shopfaas/shop/internal/payments/paymentsdb"
)

// handler is built on the first request, from the environment.
var handler = fnhttp.Lazy(build)

// Handle serves refund-payment.
func Handle(w http.ResponseWriter, r *http.Request) { handler.ServeHTTP(w, r) }

func build() (http.Handler, error) {
	c := config.FromOS()
	credential := c.Secret("internal-token", "", false)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	svc, err := paymentsdb.OpenService(ctx, c)
	if err != nil {
		return nil, err
	}
	return New(svc, credential, slog.Default()), nil
}

// Refunder refunds orders; payments.Service implements it.
type Refunder interface {
	Refund(ctx context.Context, orderID uuid.UUID) (payments.Payment, error)
}

// none is the answer for an order that was never charged.
type none struct {
	OrderID uuid.UUID       `json:"order_id"`
	Status  payments.Status `json:"status"`
}

// New returns the refund-payment handler over svc; callers must present
// credential in the X-Internal-Token header.
func New(svc Refunder, credential string, log *slog.Logger) http.Handler {
	return fnhttp.OrderCall(log, credential, func(ctx context.Context, orderID uuid.UUID) (any, error) {
		p, err := svc.Refund(ctx, orderID)
		if err != nil {
			return nil, err
		}
		if p.Status == payments.StatusNone {
			return none{OrderID: orderID, Status: p.Status}, nil
		}
		return payments.ViewOf(p), nil
	})
}
