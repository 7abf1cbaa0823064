// Package function is charge-payment, an internal function (POST /, internal
// credential required): it charges an order once through the card processor.
// The amount comes from the orders service, which priced the order from the
// catalog, never from the end user. See docs/checkout.md.
package function

import (
	"context"
	"log/slog"
	"net/http"

	"github.com/shopfaas/shop/internal/auth"
	"github.com/shopfaas/shop/internal/config"
	"github.com/shopfaas/shop/internal/fnhttp"
	"github.com/shopfaas/shop/internal/ids"
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

// Charger charges orders; payments.Service implements it.
type Charger interface {
	Charge(ctx context.Context, req payments.ChargeRequest) (payments.Payment, error)
}

// maxBody bounds a charge request; it is a handful of short fields.
const maxBody = 4 << 10

// request is the body of charge-payment. Its ids decode only in their
// canonical form (ids.CanonicalID: 400 invalid_json otherwise), as
// docs/security.md says of every id a client sends.
type request struct {
	OrderID ids.CanonicalID `json:"order_id"`
	UserID  ids.CanonicalID `json:"user_id"`
	Amount  payments.Money  `json:"amount"`
	Token   string          `json:"token"`
}

// New returns the charge-payment handler over svc; it admits only the
// internal callers routes.Table names for it (fnhttp.CheckInternal: 401
// without a valid credential, 403 for another caller). Answers: 200 the captured
// payment, 400 invalid_json (an id not in its canonical form among them), 402
// payment_declined, 422 invalid_request or invalid_payment_token,
// 409 payment_mismatch, 503/504 processor_unavailable.
func New(svc Charger, internal *auth.InternalVerifier, log *slog.Logger) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("POST /", fnhttp.Adapt(log, func(w http.ResponseWriter, r *http.Request) error {
		if err := fnhttp.CheckInternal(r, internal, "charge-payment"); err != nil {
			return err
		}
		var body request
		if err := fnhttp.Decode(r, &body, maxBody); err != nil {
			return err
		}
		p, err := svc.Charge(r.Context(), payments.ChargeRequest{
			OrderID: body.OrderID.UUID(), UserID: body.UserID.UUID(), Amount: body.Amount, Token: body.Token})
		if err != nil {
			return err
		}
		return fnhttp.JSON(w, http.StatusOK, payments.ViewOf(p))
	}))
	return fnhttp.Routes(mux)
}
