// Package function is list-notifications: GET /api/v1/users/me/notifications
// (?limit=, ?cursor=) lists the caller's own notifications, newest first, as
// {items:[{id, type, subject, order_id?, created_at}], next_cursor}. The caller
// is known only from the verified access token (secret jwt-verify-key).
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
	"github.com/shopfaas/shop/internal/ids"
	"github.com/shopfaas/shop/internal/notifications"
	"github.com/shopfaas/shop/internal/notifications/notificationsenv"
)

// Build reads the function's configuration from c and builds its handler.
// fnserve calls it on the first request, and again after a failed build.
func Build(c *config.Reader, log *slog.Logger) (http.Handler, error) {
	d, err := notificationsenv.Load(context.Background(), c, log, notificationsenv.Needs{Tokens: true})
	if err != nil {
		return nil, err
	}
	return New(d.Store, d.Tokens, log), nil
}

// Lister lists one user's notifications; notificationsdb.Store implements it.
type Lister interface {
	List(ctx context.Context, userID, after uuid.UUID, limit int) ([]notifications.Notification, bool, error)
}

// Page is one page of notifications.
type Page struct {
	Items      []notifications.View `json:"items"`
	NextCursor *string              `json:"next_cursor"`
}

// New returns the handler over store, verifying callers with tokens.
func New(store Lister, tokens *auth.Verifier, log *slog.Logger) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /api/v1/users/me/notifications", fnhttp.Adapt(log, func(w http.ResponseWriter, r *http.Request) error {
		who, err := tokens.FromRequest(r)
		if err != nil {
			return err
		}
		limit, err := fnhttp.QueryInt(r, "limit", 20, 1, 100)
		if err != nil {
			return err
		}
		after := uuid.Nil
		if c := r.URL.Query().Get("cursor"); c != "" {
			// A cursor is an id as this list writes it (ids.Exact:
			// never the zero id, which would be taken for the first
			// page); another spelling is refused. Any id so written is
			// read, one no page returned included: the list stays the
			// caller's own notifications, those with a smaller id.
			var ok bool
			if after, ok = ids.Exact(c); !ok {
				return fault.E(fault.Invalid, fault.CodeInvalidCursor, "cursor is not written as this list writes one")
			}
		}
		list, more, err := store.List(r.Context(), who.UserID, after, limit)
		if err != nil {
			return err
		}
		out := Page{Items: make([]notifications.View, 0, len(list))}
		for _, n := range list {
			out.Items = append(out.Items, n.View())
		}
		if more && len(list) > 0 {
			s := list[len(list)-1].ID.String()
			out.NextCursor = &s
		}
		w.Header().Set("Cache-Control", "no-store")
		return fnhttp.JSON(w, http.StatusOK, out)
	}))
	return fnhttp.Routes(mux)
}
