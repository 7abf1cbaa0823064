// Package function is create-order: POST /api/v1/orders places an order for
// the caller through the checkout saga (reserve stock → charge → commit →
// confirmed). Without items the caller's cart is ordered, and emptied only
// once the order is confirmed. With an Idempotency-Key header the same
// request gets the same answer (Idempotent-Replayed: true on replays). Prices,
// totals, user ids and statuses in the body are unknown fields (400).
//
// Answers: 201 confirmed order; 202 pending order (a service stayed
// unavailable; recover-orders finishes it); 402 payment_declined; 409
// out_of_stock, idempotency_key_reused, request_in_progress; 422 invalid
// requests, unknown products, an empty cart.
package function

import (
	"context"
	"log/slog"
	"net/http"

	"github.com/shopfaas/shop/internal/auth"
	"github.com/shopfaas/shop/internal/config"
	"github.com/shopfaas/shop/internal/fnhttp"
	"github.com/shopfaas/shop/internal/orders"
	"github.com/shopfaas/shop/internal/orders/ordersenv"
	"github.com/shopfaas/shop/internal/orders/saga"
)

// handler is built on the first request, from the environment.
var handler = fnhttp.Lazy(func() (http.Handler, error) {
	env, err := ordersenv.Load(config.FromOS(), slog.Default(), true)
	if err != nil {
		return nil, err
	}
	return New(env.Tokens, env.Saga, slog.Default()), nil
})

// Handle serves the function (the OpenFaaS golang-middleware signature).
func Handle(w http.ResponseWriter, r *http.Request) { handler.ServeHTTP(w, r) }

// Placer runs checkouts (saga.Saga).
type Placer interface {
	Place(ctx context.Context, who auth.Identity, req orders.PlaceRequest, key string) (saga.Response, error)
}

// New returns the function's handler.
func New(tokens *auth.Tokens, placer Placer, log *slog.Logger) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("POST /api/v1/orders", fnhttp.Adapt(log, func(w http.ResponseWriter, r *http.Request) error {
		who, err := tokens.FromRequest(r)
		if err != nil {
			return err
		}
		var req orders.PlaceRequest
		if err := fnhttp.Decode(r, &req, fnhttp.MaxBody); err != nil {
			return err
		}
		res, err := placer.Place(r.Context(), who, req, r.Header.Get("Idempotency-Key"))
		if err != nil {
			return err
		}
		ct := "application/json"
		if res.Status >= 400 {
			ct = "application/problem+json"
		}
		w.Header().Set("Content-Type", ct)
		w.Header().Set("Cache-Control", "no-store")
		if res.Replayed {
			w.Header().Set("Idempotent-Replayed", "true")
		}
		w.WriteHeader(res.Status)
		_, _ = w.Write(res.Body)
		return nil
	}))
	return fnhttp.Routes(mux)
}
