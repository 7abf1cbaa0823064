// Package function is create-order: POST /api/v1/orders places an order for
// the caller through the checkout saga (reserve stock → charge → confirmed;
// the sweep sells the stock later). Without items the caller's cart is ordered, as get-cart
// shows it (a line of a product no longer for sale is skipped, and stays in the cart), and
// its lines leave the cart only once the order is confirmed. With an Idempotency-Key header the same
// request gets the same answer (Idempotent-Replayed: true on replays). Prices,
// totals, user ids and statuses in the body are unknown fields (400).
//
// Answers: 201 confirmed order; 202 pending order (a service stayed
// unavailable, or, without an Idempotency-Key, the orders database failed as
// the order was written and could not tell whether it was; recover-orders
// finishes it); 402 payment_declined; 409 out_of_stock,
// idempotency_key_reused, request_in_progress, currency_mismatch (a cart
// priced in more than one currency, named as get-cart names it); 422 invalid requests, unknown
// products named in items, an empty cart (or one with nothing for sale); 503 a service the checkout needs is down (with a
// key, also when whether the order was written is not known yet: the same
// key asked again tells).
package function

import (
	"cmp"
	"context"
	"log/slog"
	"net/http"

	"github.com/shopfaas/shop/internal/auth"
	"github.com/shopfaas/shop/internal/config"
	"github.com/shopfaas/shop/internal/fault"
	"github.com/shopfaas/shop/internal/fnhttp"
	"github.com/shopfaas/shop/internal/orders"
	"github.com/shopfaas/shop/internal/orders/ordersenv"
	"github.com/shopfaas/shop/internal/telemetry"
)

// Build reads the function's configuration from c and builds its handler.
// fnserve calls it on the first request, and again after a failed build.
func Build(c *config.Reader, log *slog.Logger) (http.Handler, error) {
	d, err := ordersenv.Load(context.Background(), c, log, ordersenv.Needs{Tokens: true, Saga: true, Limit: true, Caller: "create-order"})
	if err != nil {
		return nil, err
	}
	return New(d.Saga, d.Tokens, log), nil
}

// Placer runs checkouts (saga.Saga).
type Placer interface {
	Place(ctx context.Context, who auth.Identity, req orders.PlaceRequest, key string) (orders.Checkout, error)
}

// New returns the function's handler.
func New(placer Placer, tokens *auth.Verifier, log *slog.Logger) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("POST /api/v1/orders", fnhttp.Adapt(log, func(w http.ResponseWriter, r *http.Request) error {
		who, err := tokens.FromRequest(r)
		if err != nil {
			return err
		}
		key, err := idempotencyKey(r.Header)
		if err != nil {
			return err
		}
		var req orders.PlaceRequest
		if err := fnhttp.Decode(r, &req, fnhttp.MaxBody); err != nil {
			return err
		}
		c, err := placer.Place(r.Context(), who, req, key)
		if err != nil {
			return err
		}
		w.Header().Set("Cache-Control", "no-store")
		if c.Replayed {
			w.Header().Set("Idempotent-Replayed", "true")
		} else {
			telemetry.ShopFrom(r.Context()).Order(string(c.Outcome()))
		}
		return answer(w, c)
	}))
	return fnhttp.Routes(mux)
}

// answer renders a checkout: 201 with the confirmed order, 202 with a
// still-pending one, or a problem naming the order in its instance member (so
// the client can read its timeline). It is a function of the checkout alone,
// so a replay is answered the very bytes of the first answer.
func answer(w http.ResponseWriter, c orders.Checkout) error {
	var err error
	switch c.Outcome() {
	case orders.OutcomeConfirmed:
		return fnhttp.JSON(w, http.StatusCreated, c.Order.View())
	case orders.OutcomePending:
		return fnhttp.JSON(w, http.StatusAccepted, c.Order.View())
	case orders.OutcomeDeclined:
		err = fault.E(fault.PaymentRequired, fault.CodePaymentDeclined, cmp.Or(c.Detail, "the payment was declined"))
	case orders.OutcomeTokenRefused:
		err = fault.E(fault.Invalid, fault.CodeInvalidPaymentToken, cmp.Or(c.Detail, "the payment token was refused"))
	case orders.OutcomeOutOfStock:
		err = fault.E(fault.Conflict, fault.CodeOutOfStock, cmp.Or(c.Detail, "not enough stock"))
	case orders.OutcomeCancelled:
		// An order its owner (or an admin) cancelled in the instant
		// since its confirmation, placed without an Idempotency-Key
		// (with one, the saga answers what the key was settled with).
		err = fault.E(fault.Conflict, fault.CodeNotCancellable, "the order was cancelled")
	default:
		err = fault.E(fault.Invalid, fault.CodeOrderRejected, cmp.Or(c.Detail, "the order was refused"))
	}
	p := fnhttp.ProblemFor(err)
	p.Instance = "/api/v1/orders/" + c.Order.ID.String()
	p.Write(w)
	return nil
}

// idempotencyKey is the request's Idempotency-Key: "" when it was not sent.
// Sent, it must be one valid key (orders.ValidKey): a header sent empty or
// twice is 422, never a checkout without a key, which a retry would place
// again.
func idempotencyKey(h http.Header) (string, error) {
	switch v := h.Values("Idempotency-Key"); len(v) {
	case 0:
		return "", nil
	case 1:
		return v[0], orders.ValidKey(v[0])
	default:
		return "", fault.E(fault.Invalid, fault.CodeInvalidRequest, "Idempotency-Key must be sent once")
	}
}
