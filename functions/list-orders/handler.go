// Package function is list-orders: GET /api/v1/orders answers the caller's
// orders, newest first, paginated with ?limit= (default 20, max 100) and
// ?cursor= as {items, next_cursor}. Only the caller's own orders are listed,
// admins included.
package function

import (
	"context"
	"log/slog"
	"net/http"

	"github.com/google/uuid"

	"github.com/shopfaas/shop/internal/auth"
	"github.com/shopfaas/shop/internal/config"
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

// Lister lists a user's orders (ordersdb.Store).
type Lister interface {
	List(ctx context.Context, userID, before uuid.UUID, limit int) ([]orders.Order, uuid.UUID, error)
}

type page struct {
	Items      []orders.View `json:"items"`
	NextCursor *string       `json:"next_cursor"`
}

// New returns the function's handler.
func New(store Lister, tokens *auth.Verifier, log *slog.Logger) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /api/v1/orders", fnhttp.Adapt(log, func(w http.ResponseWriter, r *http.Request) error {
		who, err := tokens.FromRequest(r)
		if err != nil {
			return err
		}
		limit, err := fnhttp.QueryInt(r, "limit", 20, 1, 100)
		if err != nil {
			return err
		}
		before := uuid.Nil
		if c := r.URL.Query().Get("cursor"); c != "" {
			if before, err = orders.ParseCursor(c); err != nil {
				return err
			}
		}
		list, next, err := store.List(r.Context(), who.UserID, before, limit)
		if err != nil {
			return err
		}
		out := page{Items: make([]orders.View, 0, len(list))}
		for _, o := range list {
			out.Items = append(out.Items, o.View())
		}
		if next != uuid.Nil {
			s := next.String()
			out.NextCursor = &s
		}
		w.Header().Set("Cache-Control", "no-store")
		return fnhttp.JSON(w, http.StatusOK, out)
	}))
	return fnhttp.Routes(mux)
}
