// Package function is get-order-timeline: GET /api/v1/orders/{id}/timeline
// answers every saga step and event of an order, oldest first, as
// {steps:[{at, step, outcome, detail, trace_id}]}, to its owner or an admin;
// 404 to anyone else. trace_id names the trace that wrote the step ("" when
// none was active), so a stuck order leads to its trace and its log lines.
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
	d, err := ordersenv.Load(context.Background(), c, log, ordersenv.Needs{Tokens: true})
	if err != nil {
		return nil, err
	}
	return New(d.Store, d.Tokens, log), nil
}

// Store reads orders and their timelines (ordersdb.Store).
type Store interface {
	GetVisible(ctx context.Context, id uuid.UUID, who auth.Identity) (orders.Order, error)
	Timeline(ctx context.Context, orderID uuid.UUID) ([]orders.Step, error)
}

var errNotFound = fault.E(fault.NotFound, fault.CodeNotFound, "no such order")

// New returns the function's handler.
func New(store Store, tokens *auth.Verifier, log *slog.Logger) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /api/v1/orders/{id}/timeline", fnhttp.Adapt(log, func(w http.ResponseWriter, r *http.Request) error {
		who, err := tokens.FromRequest(r)
		if err != nil {
			return err
		}
		id, err := uuid.Parse(r.PathValue("id"))
		if err != nil {
			return errNotFound
		}
		if _, err := store.GetVisible(r.Context(), id, who); err != nil {
			return err
		}
		steps, err := store.Timeline(r.Context(), id)
		if err != nil {
			return err
		}
		if steps == nil {
			steps = []orders.Step{}
		}
		w.Header().Set("Cache-Control", "no-store")
		return fnhttp.JSON(w, http.StatusOK, map[string]any{"steps": steps})
	}))
	return fnhttp.Routes(mux)
}
