// Package function is refund-payment, an internal function (POST /, internal
// credential required): it refunds an order's captured payment exactly once.
// An order that was declined or never charged is answered with its status
// ("declined" or "none"): there is nothing to refund. See docs/checkout.md.
package function

import (
	"context"
	"log/slog"
	"net/http"

	"github.com/google/uuid"

	"github.com/shopfaas/shop/internal/auth"
	"github.com/shopfaas/shop/internal/config"
	"github.com/shopfaas/shop/internal/fnhttp"
	"github.com/shopfaas/shop/internal/payments"
	"github.com/shopfaas/shop/internal/payments/paymentsenv"
)

// Build reads the function's configuration from c and builds its handler.
// fnserve calls it on the first request, and again after a failed build.
func Build(c *config.Reader, log *slog.Logger) (http.Handler, error) {
	d, err := paymentsenv.Load(context.Background(), c, log, paymentsenv.Needs{Internal: true})
	if err != nil {
		return nil, err
	}
	return New(d.Service, d.Internal, log), nil
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

// unstored is the answer for a payment the processor knows and our table
// does not: a View without the id, which only a stored payment has.
type unstored struct {
	OrderID     uuid.UUID       `json:"order_id"`
	Status      payments.Status `json:"status"`
	Amount      payments.Money  `json:"amount"`
	ProviderRef string          `json:"provider_ref"`
}

// New returns the refund-payment handler over svc; it admits only the
// internal callers routes.Table names for it (fnhttp.CheckInternal: 401
// without a valid credential, 403 for another caller). Answers: 200 the
// payment (refunded, declined) or the order's status none, 400 invalid_json,
// 422 invalid_refund (the processor holds no captured charge of the stored
// payment's reference and amount: our record and its disagree; or a capture
// whose recording was lost carries no customer, docs/checkout.md), 409
// idempotency_key_reused (the processor holds another charge's or amount's
// refund under the order's refund key; nothing refunded), 503/504
// processor_unavailable.
func New(svc Refunder, internal *auth.InternalVerifier, log *slog.Logger) http.Handler {
	return fnhttp.OrderCall(log, "refund-payment", internal, func(ctx context.Context, orderID uuid.UUID) (any, error) {
		p, err := svc.Refund(ctx, orderID)
		if err != nil {
			return nil, err
		}
		switch {
		case p.Status == payments.StatusNone:
			return none{OrderID: orderID, Status: p.Status}, nil
		case p.ID == uuid.Nil:
			// The processor refunded a charge we hold no row of
			// (payments.Service.unrecorded): there is no payment id to give.
			return unstored{OrderID: orderID, Status: p.Status, Amount: p.Amount, ProviderRef: p.ProviderRef}, nil
		}
		return payments.ViewOf(p), nil
	})
}
