// Package function is get-order-timeline: GET /api/v1/orders/{id}/timeline
// answers the saga steps and events of an order, oldest first, paginated
// with ?limit= (default 100, max 500) and ?cursor=, as
// {steps:[{at, step, outcome, detail, trace_id}], next_cursor}, to its owner
// or an admin; 404 to anyone else. trace_id names the trace that wrote the
// step ("" when none was active), so a stuck order leads to its trace and its
// log lines.
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
	Timeline(ctx context.Context, orderID uuid.UUID, after int64, limit int) ([]orders.Step, int64, error)
}

// Page sizes: the default holds every entry of any order's timeline written
// since recovery stopped recording the runs of a stuck order that change
// nothing (saga.RecordedRecoveries); the cap bounds one answer whatever an
// older timeline holds.
const (
	defaultLimit = 100
	maxLimit     = 500
)

type page struct {
	Steps      []orders.Step `json:"steps"`
	NextCursor *string       `json:"next_cursor"`
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
		id, ok := fnhttp.PathID(r, "id")
		if !ok {
			return errNotFound
		}
		limit, err := fnhttp.QueryInt(r, "limit", defaultLimit, 1, maxLimit)
		if err != nil {
			return err
		}
		var after int64
		if c := r.URL.Query().Get("cursor"); c != "" {
			if after, err = orders.ParseTimelineCursor(c); err != nil {
				return err
			}
		}
		if _, err := store.GetVisible(r.Context(), id, who); err != nil {
			return err
		}
		steps, next, err := store.Timeline(r.Context(), id, after, limit)
		if err != nil {
			return err
		}
		out := page{Steps: steps}
		if out.Steps == nil {
			out.Steps = []orders.Step{}
		}
		if next != 0 {
			s := orders.TimelineCursor(next)
			out.NextCursor = &s
		}
		w.Header().Set("Cache-Control", "no-store")
		return fnhttp.JSON(w, http.StatusOK, out)
	}))
	return fnhttp.Routes(mux)
}
