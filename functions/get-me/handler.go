// Package function is the get-me function: GET /api/v1/users/me returns the
// account of the verified caller.
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
	"github.com/shopfaas/shop/internal/users"
	"github.com/shopfaas/shop/internal/users/usersenv"
)

// Build reads the function's configuration from c and builds its handler.
// fnserve calls it on the first request, and again after a failed build.
func Build(c *config.Reader, log *slog.Logger) (http.Handler, error) {
	d, err := usersenv.Load(context.Background(), c, log, usersenv.Needs{Tokens: true})
	if err != nil {
		return nil, err
	}
	return New(d.Store, d.Tokens, log), nil
}

// Getter loads an account; usersdb.Store is the real one. An unknown account
// is fault.NotFound.
type Getter interface {
	Get(ctx context.Context, id uuid.UUID) (users.User, error)
}

// errGone answers a valid token whose account no longer exists: to the client
// it is just an unusable token.
var errGone = fault.E(fault.Unauthenticated, fault.CodeUnauthenticated, "missing, invalid or expired access token")

// New serves GET /api/v1/users/me: 200 and the caller's account, 401
// unauthenticated for a missing, invalid or expired token and for a token
// whose account no longer exists. The caller is known only from the token.
func New(store Getter, tokens *auth.Verifier, log *slog.Logger) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /api/v1/users/me", fnhttp.Adapt(log, func(w http.ResponseWriter, r *http.Request) error {
		w.Header().Set("Cache-Control", "private, no-store")
		id, err := tokens.FromRequest(r)
		if err != nil {
			return err
		}
		u, err := store.Get(r.Context(), id.UserID)
		if fault.Is(err, fault.NotFound, "") {
			return fault.Wrap(err, errGone.Kind, errGone.Code, errGone.Message)
		}
		if err != nil {
			return err
		}
		return fnhttp.JSON(w, http.StatusOK, u)
	}))
	return fnhttp.Routes(mux)
}
